package extauthz_test

import (
	"context"
	"net"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/extauthz"
	"github.com/gatehouse/gatehouse/policy"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// BenchmarkCheckGRPC measures a whole Check over loopback gRPC (client included) on the
// demo configuration; compare with BenchmarkNoopGRPC for the adapter's and pipeline's share.
func BenchmarkCheckGRPC(b *testing.B) {
	snap, err := config.LoadBytes(config.Demo, config.DemoPath, config.Deps{Offline: true})
	if err != nil {
		b.Fatal(err)
	}
	benchGRPC(b, extauthz.NewServer(func() *policy.Rules { return snap.Rules }, extauthz.Options{}))
}

type noop struct {
	authv3.UnimplementedAuthorizationServer
}

func (noop) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return &authv3.CheckResponse{Status: nil, HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{}}}, nil
}

// BenchmarkNoopGRPC is the same call against a server that does nothing.
func BenchmarkNoopGRPC(b *testing.B) { benchGRPC(b, noop{}) }

func benchGRPC(b *testing.B, srv authv3.AuthorizationServer) {
	g := grpc.NewServer()
	authv3.RegisterAuthorizationServer(g, srv)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go g.Serve(l)
	defer g.Stop()
	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	c := authv3.NewAuthorizationClient(conn)
	req := checkReq(map[string]string{"user-agent": "app/1.0", "x-request-id": "abc", "x-forwarded-for": "10.0.0.1", ":authority": "api.example.com"})
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Check(context.Background(), req); err != nil {
				b.Fatal(err)
			}
		}
	})
}
