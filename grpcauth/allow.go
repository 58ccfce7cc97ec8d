package grpcauth

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// List is an allow-list of client identities. A nil *List allows every caller.
type List struct {
	uris []*url.URL
	dns  []string // lower-case
}

var dnsName = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// ParseIdentity checks one allow-list entry: a URI (a URI SAN such as the SPIFFE id
// spiffe://cluster.local/ns/x/sa/envoy, matched exactly) or a DNS name (a DNS SAN,
// matched without regard to case). Wildcards are not supported.
func ParseIdentity(s string) (*url.URL, string, error) {
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || strings.Contains(s, "*") {
			return nil, "", errors.New("not a URI of the form scheme://host/path (such as spiffe://cluster.local/ns/x/sa/envoy)")
		}
		return u, "", nil
	}
	d := strings.ToLower(s)
	if len(d) > 253 || !dnsName.MatchString(d) {
		return nil, "", errors.New("not a DNS name or a URI (wildcards are not supported)")
	}
	return nil, d, nil
}

// NewList builds a list of identities; every entry must parse (ParseIdentity).
func NewList(ids []string) (*List, error) {
	l := &List{}
	for i, s := range ids {
		u, d, err := ParseIdentity(s)
		if err != nil {
			return nil, fmt.Errorf("[%d]: %w", i, err)
		}
		if u != nil {
			l.uris = append(l.uris, u)
		} else {
			l.dns = append(l.dns, d)
		}
	}
	return l, nil
}

// allows reports whether the verified client certificate leaf names an identity on the
// list. Nothing is allocated.
func (l *List) allows(leaf *x509.Certificate) bool {
	if l == nil {
		return true
	}
	if leaf == nil {
		return false
	}
	for _, u := range leaf.URIs {
		for _, a := range l.uris {
			if sameURI(u, a) {
				return true
			}
		}
	}
	for _, d := range leaf.DNSNames {
		for _, a := range l.dns {
			if strings.EqualFold(d, a) {
				return true
			}
		}
	}
	return false
}

func sameURI(u, a *url.URL) bool {
	return u.Scheme == a.Scheme && strings.EqualFold(u.Host, a.Host) && u.Path == a.Path &&
		u.RawPath == a.RawPath && u.Opaque == a.Opaque && u.User == nil && u.RawQuery == "" && u.Fragment == ""
}

// Allow names who may call what. A nil list allows every caller; Refunds nil lets every
// caller allowed to call ShouldRateLimit send refunds too.
type Allow struct {
	Check     *List // Authorization/Check
	RateLimit *List // RateLimitService/ShouldRateLimit
	Refunds   *List // ShouldRateLimit with a descriptor with is_negative_hits
}

// Any reports whether any list is set; without one no interceptor is needed.
func (a Allow) Any() bool { return a.Check != nil || a.RateLimit != nil || a.Refunds != nil }

// The gRPC methods the lists guard.
const (
	MethodCheck           = "/envoy.service.auth.v3.Authorization/Check"
	MethodShouldRateLimit = "/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit"
	MethodProcess         = "/envoy.service.ext_proc.v3.ExternalProcessor/Process"
)

// open are the services every caller that completed the handshake may reach: health
// (load balancers and probes) and reflection (grpcurl). They read nothing private.
var open = []string{"/grpc.health.v1.Health/", "/grpc.reflection.v1.ServerReflection/", "/grpc.reflection.v1alpha.ServerReflection/"}

func isOpen(method string) bool {
	for _, p := range open {
		if strings.HasPrefix(method, p) {
			return true
		}
	}
	return false
}

// Guard applies Allow to gRPC calls.
type Guard struct {
	Allow Allow
	// CheckRefusal is the answer to a Check from a caller not on the list: a denial, not
	// an error, because Envoy turns an error into an allow under failure_mode_allow.
	CheckRefusal func() *authv3.CheckResponse
	// OnRefuse, when set, is told of every refused call (metrics, a sampled log).
	// reason is one of "check", "ratelimit", "refunds", "process", "method".
	OnRefuse func(ctx context.Context, method, reason string)
}

// Unary is the unary interceptor: Check, ShouldRateLimit (and its refunds) go through
// their lists; health and reflection are open; any other method is refused, so that a
// service registered later is closed until it has a list of its own.
func (g *Guard) Unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	switch info.FullMethod {
	case MethodCheck:
		if !g.Allow.Check.allows(Leaf(ctx)) {
			g.refused(ctx, info.FullMethod, "check")
			return g.CheckRefusal(), nil
		}
	case MethodShouldRateLimit:
		leaf := Leaf(ctx)
		if !g.Allow.RateLimit.allows(leaf) {
			return nil, g.deny(ctx, info.FullMethod, "ratelimit")
		}
		if r, ok := req.(*rlsv3.RateLimitRequest); ok && g.Allow.Refunds != nil && refunds(r) && !g.Allow.Refunds.allows(leaf) {
			return nil, g.deny(ctx, info.FullMethod, "refunds")
		}
	default:
		if !isOpen(info.FullMethod) {
			return nil, g.deny(ctx, info.FullMethod, "method")
		}
	}
	return h(ctx, req)
}

// Stream is the stream interceptor: health and reflection are open; the response
// phase (Process) is Envoy's, like Check, and goes through the Check list; any other
// stream is refused.
func (g *Guard) Stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if info.FullMethod == MethodProcess {
		if !g.Allow.Check.allows(Leaf(ss.Context())) {
			return g.deny(ss.Context(), info.FullMethod, "process")
		}
		return h(srv, ss)
	}
	if !isOpen(info.FullMethod) {
		return g.deny(ss.Context(), info.FullMethod, "method")
	}
	return h(srv, ss)
}

func (g *Guard) refused(ctx context.Context, method, reason string) {
	if g.OnRefuse != nil {
		g.OnRefuse(ctx, method, reason)
	}
}

func (g *Guard) deny(ctx context.Context, method, reason string) error {
	g.refused(ctx, method, reason)
	return status.Error(codes.PermissionDenied, "this client identity may not call this method")
}

// refunds reports whether a request gives units back.
func refunds(r *rlsv3.RateLimitRequest) bool {
	for _, d := range r.GetDescriptors() {
		if d.GetIsNegativeHits() {
			return true
		}
	}
	return false
}

// Leaf returns the caller's client certificate when the handshake verified it, or nil.
func Leaf(ctx context.Context) *x509.Certificate {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.VerifiedChains) == 0 || len(ti.State.VerifiedChains[0]) == 0 {
		return nil
	}
	return ti.State.VerifiedChains[0][0]
}
