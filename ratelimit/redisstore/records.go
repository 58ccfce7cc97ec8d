package redisstore

// Records (state.Records): one Redis string per record, under the store's prefix, one
// key per command (Redis Cluster), through the store's call path (breaker, deadline,
// metrics, span).

import (
	"context"
	"fmt"
	"time"

	"github.com/gatehouse/gatehouse/ratelimit/state"
	"github.com/redis/rueidis"
)

var _ state.Records = (*Store)(nil)

// recKey is the Redis key of record key: escaped as counter parts are (so distinct keys
// never meet, and no brace of the key is a hash tag), in a hash tag of its own in
// cluster mode.
func (s *Store) recKey(key string) string {
	if s.cluster {
		return s.prefix + "rec:{" + state.KeyEscaper.Replace(key) + "}"
	}
	return s.prefix + "rec:" + state.KeyEscaper.Replace(key)
}

// pxOf is ttl in milliseconds for PX, rounded up: a positive ttl is never 0 (refused by
// Redis) nor shortened.
func pxOf(ttl time.Duration) int64 { return int64((ttl + time.Millisecond - 1) / time.Millisecond) }

// bulk reads a bulk string reply as a value of its own (never nil when ok; not aliasing
// the client's buffers), ok false for a nil reply.
func bulk(res rueidis.RedisResult) (val []byte, ok bool, err error) {
	str, err := res.ToString()
	if rueidis.IsRedisNil(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return append([]byte{}, str...), true, nil
}

// Create implements [state.Records]: SET NX GET PX (Redis 7.0 or later).
func (s *Store) Create(ctx context.Context, _ time.Time, key string, val []byte, ttl time.Duration) ([]byte, bool, error) {
	if err := state.CheckRecord(key, val, ttl); err != nil {
		return nil, false, err
	}
	var held []byte
	var exists bool
	err := s.call(ctx, "SET", func(r redisCall) error {
		var err error
		held, exists, err = bulk(r.do(r.c.B().Set().Key(s.recKey(key)).Value(string(val)).Nx().Get().
			PxMilliseconds(pxOf(ttl)).Build()))
		return err
	})
	if err != nil {
		return nil, false, err
	}
	if exists {
		return held, false, nil
	}
	return nil, true, nil
}

// Get implements [state.Records].
func (s *Store) Get(ctx context.Context, _ time.Time, key string) ([]byte, bool, error) {
	return s.read(ctx, "GET", key, func(c rueidis.Client, k string) rueidis.Completed { return c.B().Get().Key(k).Build() })
}

// Take implements [state.Records]: GETDEL, which of concurrent ones only one finds the
// record.
func (s *Store) Take(ctx context.Context, _ time.Time, key string) ([]byte, bool, error) {
	return s.read(ctx, "GETDEL", key, func(c rueidis.Client, k string) rueidis.Completed { return c.B().Getdel().Key(k).Build() })
}

// read runs the one-key command cmd builds for record key and reads its value.
func (s *Store) read(ctx context.Context, op, key string, cmd func(rueidis.Client, string) rueidis.Completed) ([]byte, bool, error) {
	if err := state.CheckRecordKey(key); err != nil {
		return nil, false, err
	}
	var val []byte
	var ok bool
	err := s.call(ctx, op, func(r redisCall) error {
		var err error
		val, ok, err = bulk(r.do(cmd(r.c, s.recKey(key))))
		return err
	})
	if err != nil {
		return nil, false, err
	}
	return val, ok, nil
}

// Swap implements [state.Records] with recSwapScript. A nil val deletes, so its ttl is
// not looked at.
func (s *Store) Swap(ctx context.Context, _ time.Time, key string, old, val []byte, ttl time.Duration) (bool, error) {
	if err := state.CheckSwap(key, old, val, ttl); err != nil {
		return false, err
	}
	args := []string{flag(old != nil), string(old), flag(val != nil), string(val), "0"}
	if val != nil {
		args[4] = fmt.Sprint(pxOf(ttl))
	}
	var n int64
	err := s.call(ctx, "EVALSHA", func(r redisCall) error {
		k := s.recKey(key)
		reply := r.do(r.c.B().Evalsha().Sha1(recSwapScript.sha).Numkeys(1).Key(k).Arg(args...).Build())
		if rerr, ok := rueidis.IsRedisErr(reply.Error()); ok && rerr.IsNoScript() {
			reply = r.do(r.c.B().Eval().Script(recSwapScript.text).Numkeys(1).Key(k).Arg(args...).Build())
		}
		var err error
		n, err = reply.AsInt64()
		return err
	})
	return err == nil && n == 1, err
}

func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}
