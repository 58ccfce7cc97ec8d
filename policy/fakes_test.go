package policy_test

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
)

// t0 is the injected clock of these tests; every instant is an offset from it.
var t0 = time.Unix(1_800_000_000, 0)

// fakeLockout records failed credentials; Locked answers what the test set.
type fakeLockout struct {
	mu     sync.Mutex
	fails  []string
	until  time.Time
	locked bool
	err    error
}

func (l *fakeLockout) Locked(_ context.Context, _ time.Time, _ ...string) (time.Time, bool, error) {
	return l.until, l.locked, l.err
}

func (l *fakeLockout) Fail(_ context.Context, _ time.Time, keys ...string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fails = append(l.fails, keys...)
	return nil
}

func (l *fakeLockout) failures() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.fails...)
}

// fakeLimiter answers res (or err) and records each request.
type fakeLimiter struct {
	res policy.LimitResult
	err error
	got []policy.LimitRequest
}

func (l *fakeLimiter) Limit(_ context.Context, _ time.Time, req policy.LimitRequest) (policy.LimitResult, error) {
	l.got = append(l.got, req)
	return l.res, l.err
}

// fakeDevice answers fixed verdicts for the network and device steps.
type fakeDevice struct{ network, device policy.DeviceVerdict }

func (f fakeDevice) Network(context.Context, time.Time, *policy.Input, netip.Addr, *policy.Endpoint) policy.DeviceVerdict {
	return f.network
}

func (f fakeDevice) Device(context.Context, time.Time, *policy.Input, *policy.Endpoint) policy.DeviceVerdict {
	return f.device
}

// newTestRules compiles one app (named "a", app token "tok", linked to every endpoint unless
// the test links some) with eps.
func newTestRules(t *testing.T, o policy.Options, app *policy.App, eps ...*policy.Endpoint) *policy.Rules {
	t.Helper()
	if app == nil {
		app = &policy.App{}
	}
	if app.Name == "" {
		app.Name = "a"
	}
	if app.TokenHashes == nil {
		app.TokenHashes = []policy.Hash{policy.HashCredential("tok")}
	}
	if app.Endpoints == nil {
		app.AllEndpoints = true
	}
	r, err := policy.NewRules(o, []*policy.App{app}, eps)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// get is a GET of path with app "a"'s token from 192.0.2.1, plus header name/value pairs.
func get(path string, kv ...string) *policy.Input {
	in := &policy.Input{Method: "GET", Path: path, RawPath: path, BodySize: -1,
		Source: netip.MustParseAddr("192.0.2.1"), Headers: map[string]string{"x-app-token": "tok"}}
	for i := 0; i+1 < len(kv); i += 2 {
		in.Headers[kv[i]] = kv[i+1]
	}
	return in
}

// wantCode fails unless d denied with code (empty: unless d allowed).
func wantCode(t *testing.T, d policy.Decision, code policy.Code) {
	t.Helper()
	if code == "" {
		if !d.Allowed() {
			t.Fatalf("denied %s at step %s (cause %q), want allowed", d.Code, d.Step, d.Cause)
		}
		return
	}
	if d.Outcome != policy.Deny || d.Code != code {
		t.Fatalf("outcome %d code %q at step %s, want a denial %s", d.Outcome, d.Code, d.Step, code)
	}
}

// header returns the value of the header key in hs.
func header(hs []policy.Header, key string) (string, bool) {
	for _, h := range hs {
		if h.Key == key {
			return h.Value, true
		}
	}
	return "", false
}
