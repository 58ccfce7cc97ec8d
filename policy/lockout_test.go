package policy_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/policy"
)

// TestLockoutCountsOnlyWrongCredentials: guessing app tokens locks an address out, but
// refusals that are not wrong credentials (an identity provider that cannot be reached)
// never do.
func TestLockoutCountsOnlyWrongCredentials(t *testing.T) {
	sum := sha256.Sum256([]byte("good-token"))
	cfg := strings.ReplaceAll(`
lockout: {max_failures: 2, window: 1m, lock_for: 10m, key: [ip]}
jwt_providers:
  - {name: down, issuer: https://id.test, audiences: [api], jwks: {url: "https://127.0.0.1:1/jwks", min_refresh: 1ms}}
apps:
  - {name: a, app_token_sha256: [HASH], endpoints: ["*"]}
endpoints:
  - {name: open, path: /open}
  - {name: needs-user, path: /user, user: {provider: down}}
`, "HASH", hex.EncodeToString(sum[:]))
	snap, err := config.LoadBytes([]byte(cfg), "lockout.yaml", config.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	req := func(ip, path, token string, extra ...string) policy.Decision {
		in := &policy.Input{Method: "GET", Path: path, Source: netip.MustParseAddr(ip),
			Headers: map[string]string{"x-app-token": token}}
		for i := 0; i+1 < len(extra); i += 2 {
			in.Headers[extra[i]] = extra[i+1]
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return snap.Rules.Decide(ctx, t0, in) // one instant: no window boundary falls between the guesses
	}
	// A well-formed token, so that verification reaches the (unreachable) keys.
	b64 := base64.RawURLEncoding.EncodeToString
	jwt := b64([]byte(`{"alg":"ES256","typ":"JWT","kid":"k"}`)) + "." + b64([]byte(`{"sub":"u","exp":9999999999}`)) + "." + b64(make([]byte, 64))
	for i := 0; i < 3; i++ {
		if d := req("10.0.0.1", "/user", "good-token", "authorization", "Bearer "+jwt); d.Code != policy.ServiceUnavailable {
			t.Fatalf("keys unreachable: got %s", d.Code)
		}
	}
	if d := req("10.0.0.1", "/open", "good-token"); !d.Allowed() {
		t.Fatalf("an identity-provider outage locked the client out: %s", d.Code)
	}
	for i := 0; i < 2; i++ {
		if d := req("10.0.0.2", "/open", "guess"); d.Code != policy.AppNotFound {
			t.Fatalf("guess %d: %s", i, d.Code)
		}
	}
	if d := req("10.0.0.2", "/open", "good-token"); d.Code != policy.AccountLocked {
		t.Fatalf("after two wrong tokens: %s, want ACCOUNT_LOCKED", d.Code)
	}
}
