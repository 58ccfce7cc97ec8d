// Package extauthz is the ext_authz adapter: it turns Envoy's CheckRequest into a
// policy.Input, asks the current rules for a Decision, and turns the Decision into a
// CheckResponse. It holds no policy of its own.
package extauthz

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/gatehouse/gatehouse/policy"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Observer is told of every decision, after the response is built (metrics, traces, logs).
type Observer interface {
	Observe(ctx context.Context, in *policy.Input, d *policy.Decision, id string, start time.Time)
}

// Options are a Server's optional parts.
type Options struct {
	Now      func() time.Time // default time.Now
	Observer Observer         // metrics and decision logs; nil: none
	Log      *slog.Logger     // default slog.Default()
	Tracing  *Tracing         // decision spans; nil: none
}

// Server implements envoy.service.auth.v3.Authorization.
type Server struct {
	authv3.UnimplementedAuthorizationServer
	rules func() *policy.Rules
	o     Options
}

// NewServer returns a Server. rules returns the rules in force (one atomic load); it
// returns nil until a configuration has loaded.
func NewServer(rules func() *policy.Rules, o Options) *Server {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	return &Server{rules: rules, o: o}
}

// Check decides one request. A denial is a normal response; a gRPC error means Gatehouse
// could not decide (no configuration yet, or a dependency failed under fail mode "error").
func (s *Server) Check(ctx context.Context, req *authv3.CheckRequest) (resp *authv3.CheckResponse, err error) {
	start := s.o.Now()
	defer func() {
		if p := recover(); p != nil {
			// A bug must not take the sidecar's gate down with it: answer "could not
			// decide" and let Envoy's failure mode apply.
			s.o.Log.Error("check panicked", "panic", fmt.Sprint(p))
			resp, err = nil, status.Error(codes.Internal, "internal error")
		}
	}()
	rules := s.rules()
	if rules == nil {
		return nil, status.Error(codes.Unavailable, "no configuration loaded yet")
	}
	c := &check{in: ToInput(req)}
	in, d := &c.in, &c.d
	var span trace.Span
	var own bool
	if s.o.Tracing != nil {
		ctx, span, own = s.o.Tracing.startSpan(ctx, in)
	}
	*d = rules.Decide(ctx, start, in)
	id := NewDecisionID()
	if span != nil {
		s.o.Tracing.endSpan(span, own, in, d, id, rules.Version())
	}
	if s.o.Observer != nil {
		s.o.Observer.Observe(ctx, in, d, id, start)
	}
	if d.Outcome == policy.Undecided {
		return nil, status.Error(codes.Unavailable, "could not decide")
	}
	return ToResponse(d, id), nil
}

// check is one Check's input and decision. Both outlive the call's frame (the pipeline's
// checkers and the observer take them by pointer), so they are allocated together.
type check struct {
	in policy.Input
	d  policy.Decision
}

// NewDecisionID returns a random 128-bit id in hex: it joins Envoy's access log, the
// trace and the decision log.
func NewDecisionID() string {
	var b [16]byte
	a, c := rand.Uint64(), rand.Uint64()
	for i := 0; i < 8; i++ {
		b[i], b[8+i] = byte(a>>(8*i)), byte(c>>(8*i))
	}
	return hex.EncodeToString(b[:])
}
