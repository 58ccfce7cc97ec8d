package main

import (
	"context"
	"log/slog"

	"github.com/gatehouse/gatehouse/config"
	"google.golang.org/grpc"
)

// offlineRuntime returns the long-lived dependencies for validate and check: nothing
// persistent, nothing networked.
func offlineRuntime() (config.Runtime, func(), error) {
	return config.Runtime{}, func() {}, nil
}

// openRuntime opens the long-lived dependencies of a server.
func openRuntime(ctx context.Context, configPath string, log *slog.Logger) (config.Runtime, func(), error) {
	return config.Runtime{}, func() {}, nil
}

// registerRLS registers the rate-limit service.
func (s *server) registerRLS(g *grpc.Server) {}
