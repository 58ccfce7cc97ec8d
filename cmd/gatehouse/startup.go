package main

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/ratelimit"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Store readiness: the store is pinged every storePingEvery, each ping bounded by
// storePingTimeout. A store that never answered keeps the server not ready; one that
// answered turns it not ready after storeDownAfter failed pings in a row (a blip of one
// ping does not take every replica out of Envoy's and Kubernetes' rotation at once),
// and ready again at the first ping that succeeds. Calls follow their fail mode
// meanwhile, whatever readiness says.
const (
	storePingEvery   = time.Second
	storePingTimeout = time.Second
	storeDownAfter   = 3
)

// openRuntime opens what the first good configuration names and what outlives every
// snapshot, then compiles that configuration again against it:
//  1. the verdict cache, sized by server.cache_max_bytes;
//  2. the counter store (store:), dialled now; a Redis that cannot be reached yet still
//     opens and keeps connecting, and readiness waits for it (watchStore);
//  3. the reloader's dependencies, so that every later load compiles against them (this
//     runs as the reloader's OnReload, under its lock: no load runs meanwhile);
//  4. the configuration compiled again with them, and put in force.
//
// The caller holds s.port.mu. On failure the server stays not ready and says why.
func (s *server) openRuntime(snap *config.Snapshot) (*config.Snapshot, error) {
	budget := int64(64 << 20)
	if b := snap.File.Server.CacheMaxBytes; b > 0 {
		budget = b
	}
	storeCfg := config.StoreFromFile(snap.File, filepath.Dir(snap.Path))
	cache, err := policy.NewCache(budget)
	if err != nil {
		s.log.Error("the verdict cache did not open: not ready", "error", err.Error())
		s.setReady(reasonStoreOpen)
		return nil, err
	}
	rt, closeRT, err := openStore(s.ctx, storeCfg, s.log, s.rlm)
	if err != nil {
		cache.Close()
		s.log.Error("the counter store did not open: not ready", "error", err.Error())
		s.setReady(reasonStoreOpen)
		return nil, err
	}
	s.closers = append(s.closers, cache.Close, closeRT)
	s.registerCacheMetrics(cache)
	s.deps.Cache, s.deps.Runtime = cache, rt
	if s.reload != nil {
		s.reload.Deps = s.deps
	}
	s.counters.Store(&rt.Store)
	s.watchStore(rt.Store)
	if snap, err = s.compileAgain(snap); err != nil {
		s.log.Error("no valid configuration yet: not ready", "error", err.Error())
		s.setReady(reasonNoConfig)
		return nil, err
	}
	return snap, nil
}

// compileAgain loads the configuration snap came from again, with the opened store
// and cache, and puts it in force.
// The file is read again: a snapshot's File is not compiled twice. When it changed
// meanwhile, the newer version is a load of its own (and the watch reloads it anyway).
func (s *server) compileAgain(first *config.Snapshot) (*config.Snapshot, error) {
	var snap *config.Snapshot
	var err error
	if first.Path == config.DemoPath {
		snap, err = config.LoadBytes(config.Demo, config.DemoPath, s.deps)
	} else {
		snap, err = config.Load(first.Path, s.deps)
	}
	if err != nil {
		return nil, err
	}
	s.store.Set(snap)
	if snap.Version != first.Version {
		s.metrics.ConfigLoadedAt(snap.Version, snap.LoadedAt)
	}
	return snap, nil
}

// counterStore returns the counter store, or one that is always unavailable before the
// first configuration opened it.
func (s *server) counterStore() ratelimit.Store {
	if st := s.counters.Load(); st != nil {
		return *st
	}
	return pendingStore{}
}

// watchStore pings st until the server stops and sets readiness from the answers. The
// first ping is made at once, so that the gRPC port opens with the store's state known.
func (s *server) watchStore(st ratelimit.Store) {
	ping := func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), storePingTimeout)
		defer cancel()
		err := ratelimit.Ping(ctx, st)
		if err != nil {
			s.log.Debug("store ping failed", "error", err.Error())
		}
		return err == nil
	}
	up := ping()
	s.setStoreUp(up)
	if !up {
		s.log.Warn("the counter store does not answer yet: not ready until it does")
	}
	stop, done := make(chan struct{}), make(chan struct{})
	s.closers = append(s.closers, func() { close(stop); <-done })
	go func() {
		defer close(done)
		t := time.NewTicker(storePingEvery)
		defer t.Stop()
		failed := 0
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			if ping() {
				failed = 0
				if !up {
					s.log.Info("the counter store answers: ready")
				}
				up = true
			} else if failed++; up && failed >= storeDownAfter {
				s.log.Error("the counter store does not answer: not ready", "failed_pings", failed)
				up = false
			}
			s.setStoreUp(up)
		}
	}()
}

// readiness is what /readyz and the health service report: ready when a configuration
// is in force (no config reason) and the store answers.
type readiness struct {
	mu        sync.Mutex
	config    string // why the configuration side is not ready; "" when it is
	storeDown bool
}

// setReady sets the configuration side of readiness: ready when reason is "", otherwise
// not ready for that reason (a fixed text: never the file's content).
func (s *server) setReady(reason string) {
	s.ready.mu.Lock()
	defer s.ready.mu.Unlock()
	s.ready.config = reason
	s.publishReady()
}

// setStoreUp sets the store side of readiness.
func (s *server) setStoreUp(up bool) {
	s.ready.mu.Lock()
	defer s.ready.mu.Unlock()
	s.ready.storeDown = !up
	s.publishReady()
}

// publishReady sets /readyz and the health service; the caller holds s.ready.mu.
func (s *server) publishReady() {
	reason := s.ready.config
	if reason == "" && s.ready.storeDown {
		reason = reasonStore
	}
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if reason == "" {
		st = healthpb.HealthCheckResponse_SERVING
	}
	s.notReady.Store(&reason)
	s.health.SetServingStatus("", st)
	s.health.SetServingStatus("gatehouse", st)
}

// errPending is the answer of the store before the first configuration opened it.
var errPending = fmt.Errorf("%w: the store opens with the first configuration", ratelimit.ErrUnavailable)

// pendingStore stands for the counter store until the first good configuration opens
// the real one: a compile needs a store, and which one to open is known only from a
// configuration that compiled. The snapshot compiled against it never serves a call
// (the gRPC port opens after the real store); an admin call meanwhile is told the store
// is unavailable.
type pendingStore struct{}

var (
	_ ratelimit.Store    = pendingStore{}
	_ ratelimit.Credits  = pendingStore{}
	_ ratelimit.Bindings = pendingStore{}
	_ ratelimit.Records  = pendingStore{}
)

func (pendingStore) Apply(context.Context, time.Time, []ratelimit.Op, []ratelimit.Outcome) error {
	return errPending
}
func (pendingStore) Adjust(context.Context, ratelimit.Key, int64) (int64, error) {
	return 0, errPending
}
func (pendingStore) Bind(context.Context, string, string, int) (bool, int, error) {
	return false, 0, errPending
}
func (pendingStore) ResetBindings(context.Context, string) error { return errPending }
func (pendingStore) Close() error                                { return nil }

// Records (state.Records): unavailable until the store opens.
func (pendingStore) Create(context.Context, time.Time, string, []byte, time.Duration) ([]byte, bool, error) {
	return nil, false, errPending
}
func (pendingStore) Get(context.Context, time.Time, string) ([]byte, bool, error) {
	return nil, false, errPending
}
func (pendingStore) Swap(context.Context, time.Time, string, []byte, []byte, time.Duration) (bool, error) {
	return false, errPending
}
func (pendingStore) Take(context.Context, time.Time, string) ([]byte, bool, error) {
	return nil, false, errPending
}
