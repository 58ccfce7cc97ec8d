package policy_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/ratelimit/memstore"
	"github.com/gatehouse/gatehouse/ratelimit/state"
	"github.com/gatehouse/gatehouse/signature"
)

func testSigner(t *testing.T) *signature.Signer {
	t.Helper()
	s, err := signature.New([]byte("0123456789abcdef0123456789abcdef"), signature.Settings{Window: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const nonceA = "nonce-aaaaaaaaaaaaaaaa"

// TestNonceRequired: on a signing endpoint a request needs a valid nonce, used once
// within the replay window (per app); anything else is the dialect's bad request
// (VALIDATION_ERROR 400 in protectmyapi), and the decision carries what signs it.
func TestNonceRequired(t *testing.T) {
	sg := testSigner(t)
	store := memstore.New(state.MemoryConfig{}, state.SystemClock)
	eps := []*policy.Endpoint{{Name: "signed", Path: "/s", Sign: sg}, {Name: "plain", Path: "/p"}}
	r := newTestRules(t, policy.Options{Nonces: store}, nil, eps...)
	other := newTestRules(t, policy.Options{Nonces: store}, &policy.App{Name: "b"}, eps...)
	decide := func(r *policy.Rules, at time.Time, path string, kv ...string) policy.Decision {
		return r.Decide(context.Background(), at, get(path, kv...))
	}
	for _, tc := range []struct {
		name  string
		rules *policy.Rules
		at    time.Time
		path  string
		nonce []string
		want  policy.Code
		echo  string
	}{
		{"no nonce", r, t0, "/s", nil, policy.ValidationError, ""},
		{"too short", r, t0, "/s", []string{"x-nonce", strings.Repeat("a", 15)}, policy.ValidationError, ""},
		{"two merged", r, t0, "/s", []string{"x-nonce", nonceA + "," + nonceA}, policy.ValidationError, ""},
		{"first use", r, t0, "/s", []string{"x-nonce", nonceA}, "", nonceA},
		{"replay", r, t0.Add(time.Second), "/s", []string{"x-nonce", nonceA}, policy.ValidationError, nonceA},
		{"replay at the window's last instant", r, t0.Add(time.Minute - time.Nanosecond), "/s", []string{"x-nonce", nonceA}, policy.ValidationError, nonceA},
		{"other app, same nonce", other, t0.Add(time.Second), "/s", []string{"x-nonce", nonceA}, "", nonceA},
		{"after the window", r, t0.Add(time.Minute + time.Second), "/s", []string{"x-nonce", nonceA}, "", nonceA},
		{"endpoint that does not sign", r, t0, "/p", nil, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := decide(tc.rules, tc.at, tc.path, tc.nonce...)
			wantCode(t, d, tc.want)
			if tc.path == "/s" && (d.Signer != sg || d.Nonce != tc.echo || !d.SignedAt.Equal(tc.at)) {
				t.Fatalf("signer %p nonce %q at %v, want %p %q %v", d.Signer, d.Nonce, d.SignedAt, sg, tc.echo, tc.at)
			}
			if tc.path == "/p" && d.Signer != nil {
				t.Fatal("a decision on an endpoint that does not sign carries a signer")
			}
		})
	}
}

// TestNonceEarlyDenials: a denial before the app is known is signed too when the
// endpoint signs, and app-level signing applies unless the endpoint opts out.
func TestNonceEarlyDenials(t *testing.T) {
	sg := testSigner(t)
	store := memstore.New(state.MemoryConfig{}, state.SystemClock)
	r := newTestRules(t, policy.Options{Nonces: store}, &policy.App{Sign: sg},
		&policy.Endpoint{Name: "signed", Path: "/s", Sign: sg}, &policy.Endpoint{Name: "app", Path: "/a"},
		&policy.Endpoint{Name: "out", Path: "/o", NoSign: true})
	in := get("/s", "x-nonce", nonceA)
	in.Headers["x-app-token"] = "wrong"
	d := r.Decide(context.Background(), t0, in)
	wantCode(t, d, policy.AppNotFound)
	if d.Signer != sg || d.Nonce != nonceA {
		t.Fatalf("APP_NOT_FOUND: signer %p nonce %q, want signed with the nonce echoed", d.Signer, d.Nonce)
	}
	if d := r.Decide(context.Background(), t0, get("/a")); d.Code != policy.ValidationError || d.Signer != sg {
		t.Fatalf("app-level signing: %s signer %p", d.Code, d.Signer)
	}
	if d := r.Decide(context.Background(), t0, get("/o")); !d.Allowed() || d.Signer != nil {
		t.Fatalf("opted-out endpoint: %s signer %p", d.Code, d.Signer)
	}
}

// failingRecords is a store whose records cannot be reached: a real store cannot be made
// to fail on cue.
type failingRecords struct{}

func (failingRecords) Create(context.Context, time.Time, string, []byte, time.Duration) ([]byte, bool, error) {
	return nil, false, state.ErrUnavailable
}

// TestNonceStoreDown: a replay mark that cannot be written follows the fail mode.
func TestNonceStoreDown(t *testing.T) {
	sg := testSigner(t)
	for _, tc := range []struct {
		mode policy.FailMode
		want policy.Outcome
		code policy.Code
		step policy.Step
	}{
		{policy.FailClosed, policy.Deny, policy.ServiceUnavailable, policy.StepNonce},
		{policy.FailOpen, policy.Allow, "", policy.StepDone}, // allowed, and marked as failed open
		{policy.FailError, policy.Undecided, "", policy.StepNonce},
	} {
		r := newTestRules(t, policy.Options{Nonces: failingRecords{}, FailMode: tc.mode}, nil, &policy.Endpoint{Name: "s", Path: "/s", Sign: sg})
		d := r.Decide(context.Background(), t0, get("/s", "x-nonce", nonceA))
		if d.Outcome != tc.want || d.Code != tc.code || d.Step != tc.step || d.FailOpen != (tc.mode == policy.FailOpen) {
			t.Fatalf("mode %d: outcome %d code %q step %s", tc.mode, d.Outcome, d.Code, d.Step)
		}
	}
	// No store at all (nothing wired): the same as a store that is down.
	r := newTestRules(t, policy.Options{}, nil, &policy.Endpoint{Name: "s", Path: "/s", Sign: sg})
	if d := r.Decide(context.Background(), t0, get("/s", "x-nonce", nonceA)); d.Code != policy.ServiceUnavailable {
		t.Fatalf("no store: %s", d.Code)
	}
}

// TestNonceConcurrentReplays: an attacker firing one captured request many times at
// once gets exactly one through.
func TestNonceConcurrentReplays(t *testing.T) {
	store := memstore.New(state.MemoryConfig{}, state.SystemClock)
	r := newTestRules(t, policy.Options{Nonces: store}, nil, &policy.Endpoint{Name: "s", Path: "/s", Sign: testSigner(t)})
	const n = 32
	allowed := make(chan bool, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := r.Decide(context.Background(), t0, get("/s", "x-nonce", nonceA))
			allowed <- d.Allowed()
		}()
	}
	wg.Wait()
	close(allowed)
	count := 0
	for ok := range allowed {
		if ok {
			count++
		}
	}
	if count != 1 {
		t.Fatalf("%d of %d concurrent uses of one nonce allowed, want 1", count, n)
	}
}
