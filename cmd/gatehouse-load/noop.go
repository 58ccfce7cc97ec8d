package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"github.com/gatehouse/gatehouse/extproc/extproctest"
	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// noopAuthz is the baseline ext_authz server: every Check is allowed.
type noopAuthz struct {
	authv3.UnimplementedAuthorizationServer
}

func (noopAuthz) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return &authv3.CheckResponse{
		Status:       &status.Status{Code: int32(codes.OK)},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{}},
	}, nil
}

// noopRLS is the baseline rate-limit server: every descriptor is under its limit.
type noopRLS struct {
	rlsv3.UnimplementedRateLimitServiceServer
}

func (noopRLS) ShouldRateLimit(_ context.Context, req *rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error) {
	st := make([]*rlsv3.RateLimitResponse_DescriptorStatus, len(req.GetDescriptors()))
	for i := range st {
		st[i] = &rlsv3.RateLimitResponse_DescriptorStatus{Code: rlsv3.RateLimitResponse_OK}
	}
	return &rlsv3.RateLimitResponse{OverallCode: rlsv3.RateLimitResponse_OK, Statuses: st}, nil
}

// discardTraces, discardMetrics and discardLogs form an OTLP/gRPC collector that drops
// every export (for --otlp-sink).
type discardTraces struct {
	coltracepb.UnimplementedTraceServiceServer
}

func (discardTraces) Export(context.Context, *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

type discardMetrics struct {
	colmetricspb.UnimplementedMetricsServiceServer
}

func (discardMetrics) Export(context.Context, *colmetricspb.ExportMetricsServiceRequest) (*colmetricspb.ExportMetricsServiceResponse, error) {
	return &colmetricspb.ExportMetricsServiceResponse{}, nil
}

type discardLogs struct {
	collogspb.UnimplementedLogsServiceServer
}

func (discardLogs) Export(context.Context, *collogspb.ExportLogsServiceRequest) (*collogspb.ExportLogsServiceResponse, error) {
	return &collogspb.ExportLogsServiceResponse{}, nil
}

func runNoop(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("noop", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: gatehouse-load noop --addr 127.0.0.1:PORT\n\n"+
			"No-op Envoy ext_authz (Check → OK), rate-limit (ShouldRateLimit → OK) and ext_proc (Process →\n"+
			"CONTINUE to every message) gRPC server,\n"+
			"plus grpc.health.v1 and a discarding OTLP collector (traces, metrics, logs). Runs until SIGTERM/SIGINT.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	lis, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := grpc.NewServer()
	authv3.RegisterAuthorizationServer(srv, noopAuthz{})
	rlsv3.RegisterRateLimitServiceServer(srv, noopRLS{})
	extprocv3.RegisterExternalProcessorServer(srv, extproctest.Noop{})
	coltracepb.RegisterTraceServiceServer(srv, discardTraces{})
	colmetricspb.RegisterMetricsServiceServer(srv, discardMetrics{})
	collogspb.RegisterLogsServiceServer(srv, discardLogs{})
	healthpb.RegisterHealthServer(srv, health.NewServer()) // "" is SERVING by default

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	done := make(chan struct{})
	go func() { srv.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		srv.Stop()
	}
	return nil
}
