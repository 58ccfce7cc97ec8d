package grpcauth

import (
	"context"
	"crypto/x509"
	"testing"

	"github.com/gatehouse/gatehouse/grpcauth/grpcauthtest"
	"google.golang.org/grpc"
)

type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s ctxStream) Context() context.Context { return s.ctx }

// TestGuardProcess: the response phase's stream is Envoy's, like Check: the Check list
// guards it; anyone else, and a caller only on the rate-limit list, is refused.
func TestGuardProcess(t *testing.T) {
	ca := grpcauthtest.NewCA(t, "test CA")
	cert := func(uri string) *x509.Certificate {
		return mustParse(t, ca.Pair(t, grpcauthtest.Leaf{URIs: []string{uri}, Client: true}))
	}
	envoy, billing := cert(envoyID), cert(billingID)
	checkList, _ := NewList([]string{envoyID})
	rlsList, _ := NewList([]string{billingID})
	g := &Guard{Allow: Allow{Check: checkList, RateLimit: rlsList}}
	for _, tc := range []struct {
		name string
		ctx  context.Context
		open bool
	}{
		{"listed caller", peerCtx(envoy, false), true},
		{"caller on the rate-limit list only", peerCtx(billing, false), false},
		{"no certificate", peerCtx(nil, false), false},
		{"plaintext", peerCtx(nil, true), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := g.Stream(nil, ctxStream{ctx: tc.ctx}, &grpc.StreamServerInfo{FullMethod: MethodProcess},
				func(any, grpc.ServerStream) error { return nil })
			if (err == nil) != tc.open {
				t.Fatalf("err %v, want open %v", err, tc.open)
			}
		})
	}
	t.Run("a method named like Process", func(t *testing.T) {
		err := g.Stream(nil, ctxStream{ctx: peerCtx(envoy, false)}, &grpc.StreamServerInfo{FullMethod: MethodProcess + "X"},
			func(any, grpc.ServerStream) error { return nil })
		if err == nil {
			t.Fatal("open")
		}
	})
}
