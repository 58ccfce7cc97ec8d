package grpcauth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"strings"
	"testing"

	common "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"github.com/gatehouse/gatehouse/grpcauth/grpcauthtest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

func TestParseIdentity(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"spiffe://cluster.local/ns/x/sa/envoy", true},
		{"spiffe://cluster.local", true},
		{"envoy.gatehouse.svc", true},
		{"Envoy.Gatehouse.SVC", true},
		{"localhost", true},
		{"", false},
		{"*.gatehouse.svc", false},
		{"spiffe://cluster.local/ns/*/sa/envoy", false},
		{"spiffe:///ns/x", false},
		{"spiffe://user@cluster.local/ns/x", false},
		{"spiffe://cluster.local/ns/x?sa=envoy", false},
		{"spiffe://cluster.local/ns/x#frag", false},
		{"envoy gatehouse", false},
		{"-envoy.svc", false},
		{"envoy..svc", false},
		{"10.0.0.1:80", false},
		{strings.Repeat("a", 64) + ".svc", false},
	} {
		_, _, err := ParseIdentity(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("ParseIdentity(%q): err %v, want ok=%v", tc.in, err, tc.ok)
		}
	}
}

// TestListAllows: an identity matches only exactly (URI) or without regard to case
// (DNS); near misses that an attacker could get a CA to sign are refused.
func TestListAllows(t *testing.T) {
	ca := grpcauthtest.NewCA(t, "test CA")
	leaf := func(l grpcauthtest.Leaf) *x509.Certificate {
		l.Client = true
		return mustParse(t, ca.Pair(t, l))
	}
	list, err := NewList([]string{"spiffe://cluster.local/ns/gw/sa/envoy", "envoy.gw.svc"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		l    grpcauthtest.Leaf
		want bool
	}{
		{"listed SPIFFE id", grpcauthtest.Leaf{URIs: []string{"spiffe://cluster.local/ns/gw/sa/envoy"}}, true},
		{"listed SPIFFE id among others", grpcauthtest.Leaf{URIs: []string{"spiffe://other/x", "spiffe://cluster.local/ns/gw/sa/envoy"}}, true},
		{"trust domain in capitals", grpcauthtest.Leaf{URIs: []string{"spiffe://CLUSTER.local/ns/gw/sa/envoy"}}, true},
		{"listed DNS name", grpcauthtest.Leaf{DNS: []string{"envoy.gw.svc"}}, true},
		{"listed DNS name in capitals", grpcauthtest.Leaf{DNS: []string{"Envoy.GW.svc"}}, true},
		{"a longer path", grpcauthtest.Leaf{URIs: []string{"spiffe://cluster.local/ns/gw/sa/envoy/x"}}, false},
		{"a shorter path", grpcauthtest.Leaf{URIs: []string{"spiffe://cluster.local/ns/gw/sa/envo"}}, false},
		{"trailing slash", grpcauthtest.Leaf{URIs: []string{"spiffe://cluster.local/ns/gw/sa/envoy/"}}, false},
		{"path in capitals", grpcauthtest.Leaf{URIs: []string{"spiffe://cluster.local/ns/gw/sa/Envoy"}}, false},
		{"encoded path", grpcauthtest.Leaf{URIs: []string{"spiffe://cluster.local/ns/gw/sa/%65nvoy"}}, false},
		{"another scheme", grpcauthtest.Leaf{URIs: []string{"https://cluster.local/ns/gw/sa/envoy"}}, false},
		{"another trust domain", grpcauthtest.Leaf{URIs: []string{"spiffe://evil.local/ns/gw/sa/envoy"}}, false},
		{"with a query", grpcauthtest.Leaf{URIs: []string{"spiffe://cluster.local/ns/gw/sa/envoy?x=1"}}, false},
		{"with user info", grpcauthtest.Leaf{URIs: []string{"spiffe://u@cluster.local/ns/gw/sa/envoy"}}, false},
		{"DNS name as common name only", grpcauthtest.Leaf{CommonName: "envoy.gw.svc"}, false},
		{"DNS suffix", grpcauthtest.Leaf{DNS: []string{"x.envoy.gw.svc"}}, false},
		{"DNS prefix", grpcauthtest.Leaf{DNS: []string{"envoy.gw.svc.evil"}}, false},
		{"SPIFFE id as DNS name", grpcauthtest.Leaf{DNS: []string{"cluster.local"}}, false},
		{"nothing", grpcauthtest.Leaf{}, false},
	} {
		if got := list.allows(leaf(tc.l)); got != tc.want {
			t.Errorf("%s: allowed %v, want %v", tc.name, got, tc.want)
		}
	}
	if list.allows(nil) {
		t.Error("a caller without a verified certificate is allowed")
	}
	var none *List
	if !none.allows(nil) {
		t.Error("no list must allow every caller")
	}
}

func mustParse(t *testing.T, c tls.Certificate) *x509.Certificate {
	t.Helper()
	x, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// peerCtx is the context of a call from a peer whose handshake verified leaf (nil: a
// TLS peer without a client certificate; plain: no TLS at all).
func peerCtx(leaf *x509.Certificate, plain bool) context.Context {
	p := &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}}
	if !plain {
		ti := credentials.TLSInfo{}
		if leaf != nil {
			ti.State.VerifiedChains = [][]*x509.Certificate{{leaf}}
		}
		p.AuthInfo = ti
	}
	return peer.NewContext(context.Background(), p)
}

const (
	envoyID   = "spiffe://cluster.local/ns/gw/sa/envoy"
	billingID = "spiffe://cluster.local/ns/billing/sa/refunder"
)

var refusal = &authv3.CheckResponse{}

// TestGuard: each method is judged by its own list; refunds by theirs as well; health
// and reflection are open; a method without a list is refused.
func TestGuard(t *testing.T) {
	ca := grpcauthtest.NewCA(t, "test CA")
	cert := func(uri string) *x509.Certificate {
		return mustParse(t, ca.Pair(t, grpcauthtest.Leaf{URIs: []string{uri}, Client: true}))
	}
	envoy, billing, other := cert(envoyID), cert(billingID), cert("spiffe://cluster.local/ns/x/sa/y")
	lst := func(ids ...string) *List {
		l, err := NewList(ids)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	g := &Guard{
		Allow:        Allow{Check: lst(envoyID), RateLimit: lst(envoyID, billingID), Refunds: lst(billingID)},
		CheckRefusal: func() *authv3.CheckResponse { return refusal },
	}
	spend := &rlsv3.RateLimitRequest{Domain: "d", Descriptors: []*common.RateLimitDescriptor{{Entries: []*common.RateLimitDescriptor_Entry{{Key: "k", Value: "v"}}}}}
	refund := &rlsv3.RateLimitRequest{Domain: "d", Descriptors: []*common.RateLimitDescriptor{
		{Entries: []*common.RateLimitDescriptor_Entry{{Key: "k", Value: "v"}}},
		{Entries: []*common.RateLimitDescriptor_Entry{{Key: "k", Value: "w"}}, IsNegativeHits: true}}}
	const (
		passed  = "passed"
		refused = "check refusal"
		denied  = "PermissionDenied"
	)
	for _, tc := range []struct {
		name   string
		ctx    context.Context
		method string
		req    any
		want   string
	}{
		{"listed Check", peerCtx(envoy, false), MethodCheck, &authv3.CheckRequest{}, passed},
		{"unlisted Check", peerCtx(billing, false), MethodCheck, &authv3.CheckRequest{}, refused},
		{"Check without a certificate", peerCtx(nil, false), MethodCheck, &authv3.CheckRequest{}, refused},
		{"Check in plaintext", peerCtx(nil, true), MethodCheck, &authv3.CheckRequest{}, refused},
		{"listed ShouldRateLimit", peerCtx(envoy, false), MethodShouldRateLimit, spend, passed},
		{"other listed ShouldRateLimit", peerCtx(billing, false), MethodShouldRateLimit, spend, passed},
		{"unlisted ShouldRateLimit", peerCtx(other, false), MethodShouldRateLimit, spend, denied},
		{"refund by a caller only on the ratelimit list", peerCtx(envoy, false), MethodShouldRateLimit, refund, denied},
		{"refund by a listed refunder", peerCtx(billing, false), MethodShouldRateLimit, refund, passed},
		{"refund by an unlisted caller", peerCtx(other, false), MethodShouldRateLimit, refund, denied},
		{"health from anyone", peerCtx(nil, true), "/grpc.health.v1.Health/Check", nil, passed},
		{"a method without a list", peerCtx(envoy, false), "/envoy.service.ext_proc.v3.ExternalProcessor/Process", nil, denied},
		{"a method named like health", peerCtx(nil, false), "/grpc.health.v1.HealthX/Check", nil, denied},
		{"a method named like Check", peerCtx(billing, false), MethodCheck + "/", nil, denied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := g.Unary(tc.ctx, tc.req, &grpc.UnaryServerInfo{FullMethod: tc.method},
				func(context.Context, any) (any, error) { return passed, nil })
			got := ""
			switch {
			case err != nil && status.Code(err) == codes.PermissionDenied:
				got = denied
			case err != nil:
				t.Fatalf("error %v", err)
			case resp == refusal:
				got = refused
			case resp == passed:
				got = passed
			}
			if got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestGuardRefundsFollowRateLimit: without a refunds list, whoever may call
// ShouldRateLimit may send refunds, and nobody else.
func TestGuardRefundsFollowRateLimit(t *testing.T) {
	ca := grpcauthtest.NewCA(t, "test CA")
	envoy := mustParse(t, ca.Pair(t, grpcauthtest.Leaf{URIs: []string{envoyID}, Client: true}))
	other := mustParse(t, ca.Pair(t, grpcauthtest.Leaf{URIs: []string{billingID}, Client: true}))
	l, _ := NewList([]string{envoyID})
	g := &Guard{Allow: Allow{RateLimit: l}}
	refund := &rlsv3.RateLimitRequest{Descriptors: []*common.RateLimitDescriptor{{IsNegativeHits: true}}}
	info := &grpc.UnaryServerInfo{FullMethod: MethodShouldRateLimit}
	h := func(context.Context, any) (any, error) { return "ok", nil }
	if _, err := g.Unary(peerCtx(envoy, false), refund, info, h); err != nil {
		t.Fatalf("listed refund: %v", err)
	}
	if _, err := g.Unary(peerCtx(other, false), refund, info, h); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("unlisted refund: %v", err)
	}
}

// TestGuardStreams: only health and reflection stream.
func TestGuardStreams(t *testing.T) {
	g := &Guard{Allow: Allow{Check: &List{}}}
	for _, tc := range []struct {
		method string
		open   bool
	}{
		{"/grpc.health.v1.Health/Watch", true},
		{"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", true},
		{"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", true},
		{"/envoy.service.ext_proc.v3.ExternalProcessor/Process", false},
		{MethodCheck, false},
	} {
		err := g.Stream(nil, fakeStream{}, &grpc.StreamServerInfo{FullMethod: tc.method}, func(any, grpc.ServerStream) error { return nil })
		if (err == nil) != tc.open {
			t.Errorf("%s: err %v, open %v", tc.method, err, tc.open)
		}
	}
}

type fakeStream struct{ grpc.ServerStream }

func (fakeStream) Context() context.Context { return context.Background() }

// BenchmarkGuardCheck is the cost the allow-list adds to a Check (compare with the
// Check benchmarks in extauthz): it must allocate nothing.
func BenchmarkGuardCheck(b *testing.B) {
	ca := grpcauthtest.NewCA(b, "CA")
	c := ca.Pair(b, grpcauthtest.Leaf{URIs: []string{"spiffe://cluster.local/ns/a/sa/b", envoyID}, Client: true})
	leaf, _ := x509.ParseCertificate(c.Certificate[0])
	l, _ := NewList([]string{"spiffe://cluster.local/ns/other/sa/x", envoyID, "envoy.gw.svc"})
	g := &Guard{Allow: Allow{Check: l}}
	ctx := peerCtx(leaf, false)
	info := &grpc.UnaryServerInfo{FullMethod: MethodCheck}
	req := &authv3.CheckRequest{}
	h := func(context.Context, any) (any, error) { return nil, nil }
	b.ReportAllocs()
	for b.Loop() {
		if _, err := g.Unary(ctx, req, info, h); err != nil {
			b.Fatal(err)
		}
	}
}
