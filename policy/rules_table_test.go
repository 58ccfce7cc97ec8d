package policy_test

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
)

// countsTowardLockout is hand-typed from the lockout rule (README, Security: Lockout) for
// a refusal by the device steps: a refusal counts when it is a wrong credential (what
// guessing produces), and no other refusal does. A code added to or dropped from
// pipeline.go wrongCredential without changing this table fails
// TestLockoutCountsEachWrongCredential.
var countsTowardLockout = map[policy.Code]bool{
	policy.AppNotFound:        true, // an app token nobody owns
	policy.InvalidToken:       true, // a forged or malformed user JWT
	policy.InvalidKey:         true, // a license key nobody issued
	policy.LicenseRevoked:     true, // a license key taken back
	policy.HWIDMismatch:       true, // a license used beyond its devices, or a contradicting device header
	policy.InvalidAttestation: true, // a malformed attestation credential
	policy.AttestationFailed:  true, // an attestation signed by someone else
	// UNAUTHORIZED counts only at the app step (TestLockoutCountsAtEachStep): past it, it
	// means a missing credential, which honest clients send too.
}

// TestLockoutCountsEachWrongCredential: every catalogue code a device step can produce
// is counted towards the lockout exactly when the table says so.
func TestLockoutCountsEachWrongCredential(t *testing.T) {
	for _, e := range policy.Catalogue() {
		t.Run(string(e.Code), func(t *testing.T) {
			lo := &fakeLockout{}
			app := &policy.App{Device: fakeDevice{device: policy.DeviceVerdict{Code: e.Code, Step: policy.StepAttest}}}
			r := newTestRules(t, policy.Options{Lockout: lo}, app, &policy.Endpoint{Name: "e", Path: "/e"})
			wantCode(t, r.Decide(context.Background(), t0, get("/e")), e.Code)
			counted := len(lo.failures()) == 1
			if counted != countsTowardLockout[e.Code] {
				t.Fatalf("counted %v, want %v (failures %v)", counted, countsTowardLockout[e.Code], lo.failures())
			}
			if counted && lo.failures()[0] != "ip:192.0.2.1" {
				t.Errorf("counted under %q, want ip:192.0.2.1", lo.failures()[0])
			}
		})
	}
}

// TestLockoutCountsAtEachStep: the app, identity and device steps each report their wrong
// credentials; the network step, a refused role and an outage never count.
func TestLockoutCountsAtEachStep(t *testing.T) {
	ue := newUserEnvRoles(t)
	for _, tc := range []struct {
		name   string
		app    *policy.App
		in     *policy.Input
		want   policy.Code
		counts bool
	}{
		{"app/unknown_token", nil, get("/e", "x-app-token", "guess"), policy.AppNotFound, true},
		{"app/repeated_token", nil, get("/e", "x-app-token", "tok,tok"), policy.Unauthorized, true},
		{"app/no_credential", nil, &policy.Input{Method: "GET", Path: "/e", Source: netip.MustParseAddr("192.0.2.1")}, policy.Unauthorized, true},
		{"app/wrong_api_key", nil, get("/e", "x-app-token", "", "x-api-key", "guess"), policy.Unauthorized, true},
		{"app/disabled", &policy.App{Disabled: true}, get("/e"), policy.AppDisabled, false},
		{"network/blocked", &policy.App{Device: fakeDevice{network: policy.DeviceVerdict{Code: policy.InvalidAttestation}}}, get("/e"), policy.InvalidAttestation, false},
		{"device/outage", &policy.App{Device: fakeDevice{device: policy.DeviceVerdict{Err: errors.New("down")}}}, get("/e"), policy.ServiceUnavailable, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lo := &fakeLockout{}
			r := newTestRules(t, policy.Options{Lockout: lo}, tc.app, &policy.Endpoint{Name: "e", Path: "/e"})
			wantCode(t, r.Decide(context.Background(), t0, tc.in), tc.want)
			if got := len(lo.failures()) == 1; got != tc.counts {
				t.Fatalf("counted %v, want %v", got, tc.counts)
			}
		})
	}
	for _, tc := range []struct {
		name   string
		tok    string
		want   policy.Code
		counts bool
	}{
		{"identity/forged_token", ue.forged(t), policy.InvalidToken, true},
		{"identity/expired_token", ue.token(t, "exp", t0.Add(-time.Hour).Unix()), policy.TokenExpired, false},
		{"identity/missing_role", ue.token(t), policy.Forbidden, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantCode(t, ue.decide(t0.Add(-time.Minute), tc.tok), tc.want)
			if got := len(ue.lockout.failures()) == 1; got != tc.counts {
				t.Fatalf("counted %v, want %v", got, tc.counts)
			}
			ue.lockout.fails = nil
		})
	}
}

type lockoutUserEnv struct {
	*userEnv
	lockout *fakeLockout
}

// newUserEnvRoles is a user-token endpoint requiring the role admin, with a lockout.
func newUserEnvRoles(t *testing.T) *lockoutUserEnv {
	lo := &fakeLockout{}
	e := newUserEnv(t, 0, false, policy.UserAuth{Roles: []string{"admin"}}, policy.Options{Lockout: lo})
	return &lockoutUserEnv{userEnv: e, lockout: lo}
}

// TestLockedOutClient: a locked address is refused with ACCOUNT_LOCKED and the time left,
// whatever credential it sends, in its app's dialect; a lockout store error never denies.
func TestLockedOutClient(t *testing.T) {
	ep := &policy.Endpoint{Name: "e", Path: "/e"}
	locked := &fakeLockout{locked: true, until: t0.Add(90 * time.Second)}
	r := newTestRules(t, policy.Options{Lockout: locked}, &policy.App{Dialect: policy.Protekt}, ep)
	for _, in := range []*policy.Input{get("/e"), get("/e", "x-app-token", "guess")} {
		d := r.Decide(context.Background(), t0, in)
		wantCode(t, d, policy.AccountLocked)
		if d.RetryAfter != 90*time.Second || d.Step != policy.StepApp {
			t.Errorf("retry-after %v step %s, want 1m30s app", d.RetryAfter, d.Step)
		}
	}
	if d := r.Decide(context.Background(), t0, get("/e")); d.Dialect != policy.Protekt {
		t.Errorf("dialect %v, want the app's protekt", d.Dialect)
	}
	down := &fakeLockout{locked: true, until: t0.Add(time.Hour), err: errors.New("store down")}
	wantCode(t, newTestRules(t, policy.Options{Lockout: down}, nil, ep).Decide(context.Background(), t0, get("/e")), "")
	// Without a client address (a pipe) there is nothing to lock or count.
	noAddr := get("/e", "x-app-token", "guess")
	noAddr.Source = netip.Addr{}
	lo := &fakeLockout{locked: true, until: t0.Add(time.Hour)}
	wantCode(t, newTestRules(t, policy.Options{Lockout: lo}, nil, ep).Decide(context.Background(), t0, noAddr), policy.AppNotFound)
	if len(lo.failures()) != 0 {
		t.Errorf("counted %v without a client address", lo.failures())
	}
}

// TestClientIPHops: the client address with 0 to 3 trusted proxies in front of Envoy.
// Entries are appended on the right by each proxy; anything left of the trusted hops is
// the client's to forge.
func TestClientIPHops(t *testing.T) {
	const four = "1.1.1.1, 192.0.2.7, 198.51.100.1, 203.0.113.9"
	for _, tc := range []struct {
		name string
		hops int
		xff  string // "-": no header
		want string // the Envoy source address is 10.0.0.1
	}{
		{"hops0_ignores_xff", 0, four, "10.0.0.1"},
		{"negative_hops", -1, four, "10.0.0.1"},
		{"hops1_no_header", 1, "-", "10.0.0.1"},
		{"hops1_empty_header", 1, "", "10.0.0.1"},
		{"hops1_one_entry", 1, "203.0.113.9", "203.0.113.9"},
		{"hops1_four_entries", 1, four, "203.0.113.9"},
		{"hops2_four_entries", 2, four, "198.51.100.1"},
		{"hops3_four_entries", 3, four, "192.0.2.7"},
		{"hops2_one_entry_too_short", 2, "203.0.113.9", "10.0.0.1"},
		{"hops3_two_entries_too_short", 3, "198.51.100.1, 203.0.113.9", "10.0.0.1"},
		{"hops3_three_entries", 3, "192.0.2.7, 198.51.100.1, 203.0.113.9", "192.0.2.7"},
		{"hops1_no_spaces", 1, "198.51.100.1,203.0.113.9", "203.0.113.9"},
		{"hops2_no_spaces", 2, "198.51.100.1,203.0.113.9", "198.51.100.1"},
		{"hops1_garbage", 1, "not-an-ip", "10.0.0.1"},
		{"hops2_garbage_at_hop", 2, "not-an-ip, 203.0.113.9", "10.0.0.1"},
		{"hops2_empty_entry", 2, ", 203.0.113.9", "10.0.0.1"},
		{"hops1_port_is_not_an_address", 1, "203.0.113.9:443", "10.0.0.1"},
		{"hops1_mapped_v4_unmapped", 1, "::ffff:203.0.113.9", "203.0.113.9"},
		{"hops1_v6", 1, "2001:db8::1", "2001:db8::1"},
		{"hops2_v6", 2, "2001:db8::1, 203.0.113.9", "2001:db8::1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := &policy.Input{Source: netip.MustParseAddr("10.0.0.1"), Headers: map[string]string{}}
			if tc.xff != "-" {
				in.Headers["x-forwarded-for"] = tc.xff
			}
			if got := in.ClientIP(tc.hops); got != netip.MustParseAddr(tc.want) {
				t.Fatalf("ClientIP(%d) with %q = %v, want %s", tc.hops, tc.xff, got, tc.want)
			}
		})
	}
}

// TestClientIPReachesLimitsAndLockout: the pipeline counts limits and lockouts under the
// address the configured hops pick, not the forgeable leftmost one nor Envoy's peer.
func TestClientIPReachesLimitsAndLockout(t *testing.T) {
	lim, lo := &fakeLimiter{}, &fakeLockout{}
	ep := &policy.Endpoint{Name: "e", Path: "/e"}
	r := newTestRules(t, policy.Options{TrustedHops: 2, Limiter: lim, Lockout: lo}, nil, ep)
	xff := "1.1.1.1, 192.0.2.7, 198.51.100.1"
	wantCode(t, r.Decide(context.Background(), t0, get("/e", "x-forwarded-for", xff)), "")
	if len(lim.got) != 1 || lim.got[0].IP != "192.0.2.7" {
		t.Fatalf("limit requests %+v, want IP 192.0.2.7", lim.got)
	}
	wantCode(t, r.Decide(context.Background(), t0, get("/e", "x-forwarded-for", xff, "x-app-token", "guess")), policy.AppNotFound)
	if !slices.Equal(lo.failures(), []string{"ip:192.0.2.7"}) {
		t.Fatalf("lockout failures %v, want [ip:192.0.2.7]", lo.failures())
	}
}

// TestFailModePrecedence: the most specific fail mode that is set wins (endpoint over app
// over server); nothing set is closed. The table is typed by hand.
func TestFailModePrecedence(t *testing.T) {
	const (
		I = policy.FailModeInherit
		C = policy.FailClosed
		O = policy.FailOpen
		E = policy.FailError
	)
	for _, tc := range []struct {
		name                  string
		server, app, endpoint policy.FailMode
		want                  policy.FailMode
	}{
		{"all_inherit", I, I, I, C},
		{"server_open", O, I, I, O},
		{"server_error", E, I, I, E},
		{"server_closed", C, I, I, C},
		{"app_open_over_server_closed", C, O, I, O},
		{"app_closed_over_server_open", O, C, I, C},
		{"app_error_over_server_open", O, E, I, E},
		{"endpoint_closed_over_server_open", O, I, C, C},
		{"endpoint_open_over_server_closed", C, I, O, O},
		{"endpoint_open_over_app_error", C, E, O, O},
		{"endpoint_closed_over_app_open", E, O, C, C},
		{"endpoint_error_over_app_open", O, O, E, E},
		{"app_closed_over_server_error", E, C, I, C},
		{"endpoint_only", I, I, O, O},
		{"app_only", I, E, I, E},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lim := &fakeLimiter{err: errors.New("store unreachable")}
			r := newTestRules(t, policy.Options{FailMode: tc.server, Limiter: lim}, &policy.App{FailMode: tc.app},
				&policy.Endpoint{Name: "e", Path: "/e", FailMode: tc.endpoint})
			d := r.Decide(context.Background(), t0, get("/e"))
			switch tc.want {
			case C:
				wantCode(t, d, policy.ServiceUnavailable)
				if d.FailOpen || d.Step != policy.StepLimits {
					t.Errorf("closed: fail-open %v step %s", d.FailOpen, d.Step)
				}
			case O:
				wantCode(t, d, "")
				if v, _ := header(d.Upstream, "x-gatehouse-fail-open"); !d.FailOpen || v != "true" || d.Cause == "" {
					t.Errorf("open: fail-open %v header %q cause %q", d.FailOpen, v, d.Cause)
				}
			case E:
				if d.Outcome != policy.Undecided || d.Code != "" {
					t.Errorf("error: outcome %d code %q, want undecided", d.Outcome, d.Code)
				}
			}
		})
	}
}

// TestFailOpenRunsLaterSteps: failing open on one dependency still runs the steps after it;
// a refusal later on stays a refusal.
func TestFailOpenRunsLaterSteps(t *testing.T) {
	secret := policy.NewSecret("s", "v", t0)
	for _, tc := range []struct {
		name string
		app  *policy.App
		ep   *policy.Endpoint
		lim  *fakeLimiter
		want policy.Code
	}{
		{"network_outage_then_device_refusal", &policy.App{FailMode: policy.FailOpen, Device: fakeDevice{
			network: policy.DeviceVerdict{Err: errors.New("down")}, device: policy.DeviceVerdict{Code: policy.InvalidKey}}},
			&policy.Endpoint{Name: "e", Path: "/e"}, nil, policy.InvalidKey},
		{"device_outage_then_limit", &policy.App{FailMode: policy.FailOpen, Device: fakeDevice{device: policy.DeviceVerdict{Err: errors.New("down")}}},
			&policy.Endpoint{Name: "e", Path: "/e"}, &fakeLimiter{res: policy.LimitResult{Code: policy.RateLimited, RetryAfter: 7 * time.Second}}, policy.RateLimited},
		{"limit_outage_then_secret", &policy.App{FailMode: policy.FailOpen},
			&policy.Endpoint{Name: "e", Path: "/e", Inject: []policy.Injection{{Header: "authorization", Secret: secret}}},
			&fakeLimiter{err: errors.New("down")}, policy.SecretExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := policy.Options{}
			if tc.lim != nil {
				o.Limiter = tc.lim
			}
			d := newTestRules(t, o, tc.app, tc.ep).Decide(context.Background(), t0, get("/e"))
			wantCode(t, d, tc.want)
			if tc.want == policy.RateLimited && d.RetryAfter != 7*time.Second {
				t.Errorf("retry-after %v, want the limiter's 7s", d.RetryAfter)
			}
		})
	}
}
