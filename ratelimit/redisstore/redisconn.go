package redisstore

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

// errDialInCall is what a store call gets when it finds a connection that is not made:
// it is made in the background, never within the call's timeout.
var errDialInCall = errors.New("connection not ready: reconnecting in the background")

// warmKey marks the contexts of the warm-up, whose dials go ahead.
type warmKey struct{}

// connWarden keeps store calls from dialling Redis. The client dials a connection the
// first time a command needs one, within that command's context: a store call would
// spend its timeout on TCP, TLS and the handshake instead of its command, and fail,
// again and again while each new attempt is cut short. Instead:
//  1. a client is warmed before any call uses it (connect): every connection of every
//     node dialled, the scripts loaded;
//  2. a dial asked for within a store call's bounded context is refused at once: the
//     call fails fast (its fail mode answers), calls stop going to Redis (up is false)
//     and rewarm dials again in the background, with the dial timeout;
//  3. the client's own dials, made with unbounded contexts (start-up, cluster topology
//     refresh, sentinel failover), and the warm-up's go ahead.
//
// A call that passed the up check just before a connection broke can still wait for
// the background dial (at most the dial timeout): that window is one call wide.
type connWarden struct {
	up          atomic.Bool
	kick        chan struct{}
	dialTimeout time.Duration
	wires       int // connections per node (pipeline_multiplex)
}

func (w *connWarden) init(dialTimeout time.Duration, wires int) {
	w.kick = make(chan struct{}, 1)
	w.dialTimeout = dialTimeout
	w.wires = wires
}

// dial is the client's dialer (rueidis DialCtxFn).
func (w *connWarden) dial(ctx context.Context, dst string, d *net.Dialer, cfg *tls.Config) (net.Conn, error) {
	if ctx.Done() != nil && ctx.Value(warmKey{}) == nil {
		w.down()
		return nil, errDialInCall
	}
	if cfg != nil {
		return (&tls.Dialer{NetDialer: d, Config: cfg}).DialContext(ctx, "tcp", dst)
	}
	return d.DialContext(ctx, "tcp", dst)
}

// down stops calls from going to Redis and asks rewarm for a fresh warm-up.
func (w *connWarden) down() {
	w.up.Store(false)
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// warm dials every connection of every node of c and loads the scripts, so that the
// first calls find them ready. It fails when a node does not answer PING.
func (w *connWarden) warm(c rueidis.Client, prefix string) error {
	ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), warmKey{}, true), 2*w.dialTimeout)
	defer cancel()
	for _, n := range c.Nodes() {
		if err := n.Do(ctx, n.B().Ping().Build()).Error(); err != nil {
			return err
		}
		for _, sc := range []*luaScript{&applyScript, &gcraScript, &returnScript} {
			_ = n.Do(ctx, n.B().ScriptLoad().Script(sc.text).Build()).Error() // else the first call loads it
		}
		// Keyed commands go to one of a node's connections at random: enough of them
		// reach every one (each stays unreached with a chance of e^-16).
		for i := 0; w.wires > 1 && i < 16*w.wires; i++ {
			_ = n.Do(ctx, n.B().Exists().Key(prefix+"warm").Build()).Error()
		}
	}
	return nil
}

// rewarm warms the client again each time a call found a connection down, every
// reconnectEvery until it succeeds, and then lets calls through again.
func (w *connWarden) rewarm(s *Store) {
	defer s.wg.Done()
	for {
		select {
		case <-s.done:
			return
		case <-w.kick:
		}
		for {
			if box := s.client.Load(); box != nil && w.warm(box.c, s.prefix) == nil {
				w.up.Store(true)
				break
			}
			select {
			case <-s.done:
				return
			case <-time.After(reconnectEvery):
			}
		}
	}
}
