package extproc

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/login"
	"github.com/gatehouse/gatehouse/ratelimit"
)

// loginEnv is a login route in the protekt dialect over the rate limiter's lockout on
// the env's memory store: 3 failures within a minute lock for 10 minutes.
func loginEnv(t *testing.T, s *login.Settings) *phaseEnv {
	t.Helper()
	var e *phaseEnv
	r := Route{Dialect: policy.Protekt, Login: s}
	// The lockout needs the env's store: build the env, then its route.
	e = newPhaseEnv(t, Route{})
	eng, err := ratelimit.Compile(ratelimit.CompileInput{Lockout: ratelimit.LockoutConfig{MaxFailures: 3, Window: time.Minute, LockFor: 10 * time.Minute}}, e.store)
	if err != nil {
		t.Fatal(err)
	}
	r.Lockout = eng
	r.App, r.Endpoint = "a", "e"
	rs := NewRoutes(policy.Protekt)
	rs.Add(&r)
	e.c = serve(t, NewServer(func() *Routes { return rs }, Options{Now: e.clock, Observer: e}))
	return e
}

func attempt(email string, status int) call {
	return call{client: "192.0.2.1", method: "POST", path: "/v1/login", body: `{"email":"` + email + `","password":"p"}`, status: status}
}

// wantProtekt checks that ir is protekt's refusal with status and error code.
func wantProtekt(t *testing.T, ir *extprocv3.ImmediateResponse, status int, code string) {
	t.Helper()
	if ir == nil {
		t.Fatalf("went through, want %d %s", status, code)
	}
	var b struct {
		Error      string
		StatusCode int
	}
	if err := json.Unmarshal(ir.GetBody(), &b); err != nil {
		t.Fatalf("body %q: %v", ir.GetBody(), err)
	}
	if int(ir.GetStatus().GetCode()) != status || b.Error != code || b.StatusCode != status {
		t.Fatalf("answer %d %s, want %d %s", ir.GetStatus().GetCode(), ir.GetBody(), status, code)
	}
}

// TestLoginLockout: the 3rd failure locks the account; the next attempt, right or wrong,
// from another address and in another spelling, is refused before the upstream with
// account_locked 423 and Retry-After; the lock ends after lock_for.
func TestLoginLockout(t *testing.T) {
	e := loginEnv(t, &login.Settings{Field: []string{"email"}, FailStatuses: []int{401}, MaxBody: 1024})
	for i := range 3 {
		if ir := e.run(attempt("victim@example.com", 401)); ir != nil {
			t.Fatalf("attempt %d refused: %s", i+1, ir.GetBody())
		}
	}
	next := attempt("  VICTIM@example.com", 200)
	next.client = "198.51.100.7"
	ir := e.run(next)
	wantProtekt(t, ir, 423, "account_locked")
	if v, _ := header(ir, "retry-after"); v != "600" {
		t.Fatalf("retry-after %q, want 600", v)
	}
	e.advance(10*time.Minute - time.Second)
	if v, _ := header(e.run(next), "retry-after"); v != "1" {
		t.Fatalf("1s before the end: retry-after %q, want 1", v)
	}
	e.advance(time.Second)
	if ir := e.run(next); ir != nil {
		t.Fatalf("after lock_for: refused %s", ir.GetBody())
	}
}

// TestLoginSuccessResets: a success resets the account's count; statuses not listed
// count nothing.
func TestLoginSuccessResets(t *testing.T) {
	e := loginEnv(t, &login.Settings{Field: []string{"email"}, FailStatuses: []int{401}, MaxBody: 1024})
	for _, st := range []int{401, 401, 200, 401, 401, 403, 500, 429} {
		a := attempt("alice@example.com", st)
		a.client = "" // the address's count is not reset: keep it out
		if ir := e.run(a); ir != nil {
			t.Fatalf("status %d: refused %s", st, ir.GetBody())
		}
	}
	a := attempt("alice@example.com", 401)
	a.client = ""
	if ir := e.run(a); ir != nil {
		t.Fatal("locked after 2 failures since a success")
	}
	wantProtekt(t, e.run(a), 423, "account_locked")
}

// TestLoginBodies: every login body Gatehouse cannot read one account from is refused
// before the upstream, and counts nothing.
func TestLoginBodies(t *testing.T) {
	e := loginEnv(t, &login.Settings{Field: []string{"email"}, FailStatuses: []int{401}, MaxBody: 128})
	deep := strings.Repeat(`[`, 40) + strings.Repeat(`]`, 40)
	for _, tc := range []struct {
		name, body string
		status     int
		code       string
	}{
		{"duplicate key", `{"email":"v@x","email":"a@x"}`, 400, "access_denied"},
		{"duplicate key in another case", `{"email":"v@x","Email":"a@x"}`, 400, "access_denied"},
		{"missing field", `{"user":"v@x"}`, 400, "access_denied"},
		{"not a string", `{"email":["v@x"]}`, 400, "access_denied"},
		{"not JSON", `email=v@x`, 400, "access_denied"},
		{"deep nesting", `{"a":` + deep + `}`, 400, "access_denied"},
		{"body at the bound", `{"email":"v@x","p":"` + strings.Repeat("x", 128-22) + `"}`, 0, ""},                  // 128 bytes
		{"body over the bound", `{"email":"v@x","p":"` + strings.Repeat("x", 129-22) + `"}`, 413, "access_denied"}, // 129 bytes
	} {
		t.Run(tc.name, func(t *testing.T) {
			ir := e.run(call{client: "192.0.2.1", method: "POST", path: "/v1/login", body: tc.body, status: 401})
			if tc.code == "" {
				if ir != nil {
					t.Fatalf("refused %s", ir.GetBody())
				}
				return
			}
			wantProtekt(t, ir, tc.status, tc.code)
		})
	}
}

// TestLoginHeader: the account from a header; a header sent twice is refused.
func TestLoginHeader(t *testing.T) {
	e := loginEnv(t, &login.Settings{Header: "x-login", FailStatuses: []int{401, 403}})
	for range 3 {
		e.run(call{method: "POST", path: "/v1/login", headers: []string{"x-login", "bob"}, status: 403})
	}
	wantProtekt(t, e.run(call{method: "POST", path: "/v1/login", headers: []string{"x-login", "Bob"}, status: 200}), 423, "account_locked")
	wantProtekt(t, e.run(call{method: "POST", path: "/v1/login", headers: []string{"x-login", "eve", "x-login", "bob"}, status: 200}), 400, "access_denied")
	wantProtekt(t, e.run(call{method: "POST", path: "/v1/login", status: 200}), 400, "access_denied")
}

// TestLoginLocksAddress: failures over many accounts from one address lock the address
// (the pipeline's "ip:" key), so that a spray stops too.
func TestLoginLocksAddress(t *testing.T) {
	e := loginEnv(t, &login.Settings{Field: []string{"email"}, FailStatuses: []int{401}, MaxBody: 1024})
	for _, v := range []string{"a@x", "b@x", "c@x"} {
		e.run(attempt(v, 401))
	}
	wantProtekt(t, e.run(attempt("d@x", 200)), 423, "account_locked")
	other := attempt("d@x", 200)
	other.client = "192.0.2.2"
	if ir := e.run(other); ir != nil {
		t.Fatalf("another address refused: %s", ir.GetBody())
	}
}

// TestLoginLockoutAccentedSpellings: an upstream whose database compares without
// accents (MySQL's default collation) logs "vīctim" in as "victim"; three failures
// spread over accented spellings lock the plain account.
func TestLoginLockoutAccentedSpellings(t *testing.T) {
	e := loginEnv(t, &login.Settings{Field: []string{"email"}, FailStatuses: []int{401}, MaxBody: 1024})
	for i, spelling := range []string{"v\u012bctim@example.com", "v\u00edctim@example.com", "vi\u0308ctim@example.com"} {
		a := attempt(spelling, 401)
		a.client = "198.51.100." + string(rune('1'+i)) // a botnet: no address fails twice
		if ir := e.run(a); ir != nil {
			t.Fatalf("attempt %d refused: %s", i+1, ir.GetBody())
		}
	}
	next := attempt("victim@example.com", 200)
	next.client = "203.0.113.50"
	wantProtekt(t, e.run(next), 423, "account_locked")
}
