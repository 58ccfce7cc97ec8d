package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/ratelimit"
	"github.com/gatehouse/gatehouse/ratelimit/rls"
	"google.golang.org/grpc"
)

// offlineRuntime returns the long-lived dependencies for validate and check: an
// unpersisted memory store, nothing networked.
func offlineRuntime() (config.Runtime, func(), error) {
	st, err := ratelimit.OpenStore(context.Background(), ratelimit.StoreConfig{}, ratelimit.SystemClock)
	if err != nil {
		return config.Runtime{}, nil, err
	}
	return config.Runtime{Store: st}, func() { st.Close() }, nil
}

// openStore opens the counter store cfg describes (the memory store for the demo). It
// outlives every reload; its close flushes persisted counters.
func openStore(ctx context.Context, cfg ratelimit.StoreConfig, log *slog.Logger, m *ratelimit.Metrics) (config.Runtime, func(), error) {
	st, err := ratelimit.OpenStore(ctx, cfg, ratelimit.SystemClock)
	if err != nil {
		return config.Runtime{}, nil, fmt.Errorf("open the %s store: %w", storeType(cfg), err)
	}
	log.Info("counter store open", "type", storeType(cfg), "persisted_to", cfg.Memory.File)
	closeStore := func() {
		if err := st.Close(); err != nil {
			log.Error("closing the counter store", "error", err.Error())
		}
	}
	return config.Runtime{Store: st, StoreConfig: cfg, Metrics: m}, closeStore, nil
}

func storeType(c ratelimit.StoreConfig) string {
	if c.Type == "" {
		return "memory"
	}
	return c.Type
}

// registerRLS registers the rate-limit service; it reads the engine of the snapshot in
// force, one atomic load per call.
func (s *server) registerRLS(g *grpc.Server) {
	srv := rls.New(func() *ratelimit.Engine {
		if snap := s.store.Current(); snap != nil {
			return snap.Limits
		}
		return nil
	}, ratelimit.SystemClock)
	ok, over := s.metrics.RLSDuration.WithLabelValues("ok"), s.metrics.RLSDuration.WithLabelValues("over_limit")
	srv.Observe = func(_ string, overLimit bool, took time.Duration) {
		if overLimit {
			over.Observe(took.Seconds())
		} else {
			ok.Observe(took.Seconds())
		}
	}
	srv.Register(g)
}
