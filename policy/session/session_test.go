package session_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/session"
	"github.com/gatehouse/gatehouse/ratelimit/memstore"
	"github.com/gatehouse/gatehouse/ratelimit/state"
	"github.com/golang-jwt/jwt/v5"
)

// t0 is the tests' clock; nothing here reads the wall clock.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func ecKey(t testing.TB, id string) session.Key {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := session.NewKey(id, k)
	if err != nil {
		t.Fatal(err)
	}
	return sk
}

func edKey(t testing.TB, id string) session.Key {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := session.NewKey(id, k)
	if err != nil {
		t.Fatal(err)
	}
	return sk
}

func keySet(t testing.TB, active string, keys ...session.Key) *session.KeySet {
	t.Helper()
	ks, err := session.NewKeySet(keys, active)
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

func records() state.Records {
	return memstore.New(state.MemoryConfig{}, func() time.Time { return t0 })
}

// manager has no verdict cache, so that every verification looks at the store: tests
// never wait for a cache entry to expire.
func manager(t testing.TB, ks *session.KeySet, rec state.Records) *session.Manager {
	t.Helper()
	m, err := session.New(session.Settings{Keys: ks, Records: rec, TTL: 10 * time.Minute, RefreshTTL: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

var ctx = context.Background()

func start(t testing.TB, m *session.Manager, app, dev, lic string) session.Tokens {
	t.Helper()
	tk, err := m.Start(ctx, t0, session.Grant{App: app, DeviceID: dev, License: lic, Provider: "firebase_app_check", Verdicts: []string{"attested"}})
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

// TestLifecycle: start → verified with the device id → heartbeat extends → refresh turns
// the refresh token once → revoked session refused.
func TestLifecycle(t *testing.T) {
	m := manager(t, keySet(t, "k1", ecKey(t, "k1")), records())
	tk := start(t, m, "a", "dev-1", "")
	if o := m.VerifySession(ctx, t0, "a", tk.Session); o.Code != "" || o.Err != nil || o.DeviceID != "dev-1" {
		t.Fatalf("fresh session: %+v", o)
	}
	hb, code, err := m.Heartbeat(ctx, t0.Add(5*time.Minute), "a", tk.Session)
	if err != nil || code != "" || hb.SessionID != tk.SessionID || hb.Refresh != "" {
		t.Fatalf("heartbeat: %+v %s %v", hb, code, err)
	}
	if !hb.Expires.Equal(t0.Add(15 * time.Minute)) {
		t.Errorf("heartbeat expiry %v, want %v", hb.Expires, t0.Add(15*time.Minute))
	}
	rt, code, err := m.Refresh(ctx, t0.Add(6*time.Minute), "a", tk.Refresh)
	if err != nil || code != "" || rt.Refresh == "" || rt.Refresh == tk.Refresh || rt.SessionID != tk.SessionID {
		t.Fatalf("refresh: %+v %s %v", rt, code, err)
	}
	if _, code, _ := m.Refresh(ctx, t0.Add(7*time.Minute), "a", tk.Refresh); code != policy.RefreshTokenInvalid {
		t.Fatalf("reused refresh token: %q, want REFRESH_TOKEN_INVALID", code)
	}
	if err := m.Revoke(ctx, t0.Add(8*time.Minute), session.Target{SessionID: tk.SessionID}); err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{"first token": tk.Session, "refreshed token": rt.Session} {
		if o := m.VerifySession(ctx, t0.Add(8*time.Minute), "a", tok); o.Code != policy.SessionRevoked {
			t.Errorf("%s after revocation: %+v, want SESSION_REVOKED", name, o)
		}
	}
	if _, code, _ := m.Heartbeat(ctx, t0.Add(8*time.Minute), "a", rt.Session); code != policy.SessionRevoked {
		t.Errorf("heartbeat after revocation: %q", code)
	}
	if _, code, _ := m.Refresh(ctx, t0.Add(8*time.Minute), "a", rt.Refresh); code != policy.RefreshTokenInvalid {
		t.Errorf("refresh after revocation: %q", code)
	}
}

// TestExpiry: a session token is valid one second before exp, expired at exactly exp
// and after. TTL 10m from t0.
func TestExpiry(t *testing.T) {
	m := manager(t, keySet(t, "k1", edKey(t, "k1")), records())
	tk := start(t, m, "a", "dev-1", "")
	exp := t0.Add(10 * time.Minute)
	for _, tc := range []struct {
		at   time.Time
		want policy.Code
	}{{exp.Add(-time.Second), ""}, {exp, policy.SessionExpired}, {exp.Add(time.Second), policy.SessionExpired}} {
		if o := m.VerifySession(ctx, tc.at, "a", tk.Session); o.Code != tc.want {
			t.Errorf("at exp%+v: %q, want %q", tc.at.Sub(exp), o.Code, tc.want)
		}
		if _, code, _ := m.Heartbeat(ctx, tc.at, "a", tk.Session); code != tc.want {
			t.Errorf("heartbeat at exp%+v: %q, want %q", tc.at.Sub(exp), code, tc.want)
		}
	}
}

// TestRefreshRefusals: every way a refresh token can be wrong is REFRESH_TOKEN_INVALID.
// The refresh lifetime is 24h: valid 1s before, gone at exactly 24h.
func TestRefreshRefusals(t *testing.T) {
	m := manager(t, keySet(t, "k1", ecKey(t, "k1")), records())
	cases := []struct {
		name string
		tok  func(tk session.Tokens) string
		app  string
		at   time.Duration
		want policy.Code
	}{
		{"valid 1s before its expiry", func(tk session.Tokens) string { return tk.Refresh }, "a", 24*time.Hour - time.Second, ""},
		{"expired at exactly its ttl", func(tk session.Tokens) string { return tk.Refresh }, "a", 24 * time.Hour, policy.RefreshTokenInvalid},
		{"another app's", func(tk session.Tokens) string { return tk.Refresh }, "b", 0, policy.RefreshTokenInvalid},
		{"empty", func(session.Tokens) string { return "" }, "a", 0, policy.RefreshTokenInvalid},
		{"unknown, well formed", func(session.Tokens) string { return strings.Repeat("A", 52) }, "a", 0, policy.RefreshTokenInvalid},
		{"one character changed", func(tk session.Tokens) string { return flip(tk.Refresh) }, "a", 0, policy.RefreshTokenInvalid},
		{"the session token", func(tk session.Tokens) string { return tk.Session }, "a", 0, policy.RefreshTokenInvalid},
		{"lower case", func(tk session.Tokens) string { return strings.ToLower(tk.Refresh) }, "a", 0, policy.RefreshTokenInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tk := start(t, m, "a", "dev-1", "")
			_, code, err := m.Refresh(ctx, t0.Add(tc.at), tc.app, tc.tok(tk))
			if err != nil || code != tc.want {
				t.Fatalf("got %q, %v; want %q", code, err, tc.want)
			}
		})
	}
}

func flip(s string) string {
	b := []byte(s)
	if b[0] == 'A' {
		b[0] = 'B'
	} else {
		b[0] = 'A'
	}
	return string(b)
}

// TestTokenAttacks: tokens a client forges or bends are INVALID_TOKEN; another app's
// session is refused; a session unknown to the store is SESSION_NOT_FOUND.
func TestTokenAttacks(t *testing.T) {
	k1 := ecKey(t, "k1")
	rec := records()
	m := manager(t, keySet(t, "k1", k1), rec)
	tk := start(t, m, "a", "dev-1", "")
	parts := strings.Split(tk.Session, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	claims["sub"] = "dev-2"
	forged, _ := json.Marshal(claims)
	jwksDoc := string(m.Keys().JWKS())

	other := manager(t, keySet(t, "k1", ecKey(t, "k1")), rec) // same kid, another key
	foreign := start(t, other, "a", "dev-1", "")
	strangerKid := manager(t, keySet(t, "kx", ecKey(t, "kx")), rec)
	stranger := start(t, strangerKid, "a", "dev-1", "")

	cases := []struct {
		name, tok, app string
		want           policy.Code
	}{
		{"tampered payload", parts[0] + "." + base64.RawURLEncoding.EncodeToString(forged) + "." + parts[2], "a", policy.InvalidToken},
		{"signature cut", parts[0] + "." + parts[1] + ".", "a", policy.InvalidToken},
		{"alg none", unsigned(t, claims), "a", policy.InvalidToken},
		{"HS256 with the public JWKS as secret", hs256(t, claims, jwksDoc, "k1"), "a", policy.InvalidToken},
		{"HS256 with the key's x coordinate as secret", hs256(t, claims, xOf(t, jwksDoc), "k1"), "a", policy.InvalidToken},
		{"signed by another key under a known kid", foreign.Session, "a", policy.InvalidToken},
		{"signed by a key not in the set", stranger.Session, "a", policy.InvalidToken},
		{"another app's session", tk.Session, "b", policy.InvalidToken},
		{"garbage", "x.y.z", "a", policy.InvalidToken},
		{"oversized", strings.Repeat("a", session.MaxTokenBytes+1), "a", policy.InvalidToken},
		{"a valid session of another store", start(t, manager(t, keySet(t, "k1", k1), records()), "a", "dev-9", "").Session, "a", policy.SessionNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if o := m.VerifySession(ctx, t0, tc.app, tc.tok); o.Code != tc.want || o.DeviceID != "" {
				t.Fatalf("got %+v, want %q", o, tc.want)
			}
		})
	}
}

func unsigned(t *testing.T, claims map[string]any) string {
	s, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims(claims)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func hs256(t *testing.T, claims map[string]any, secret, kid string) string {
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims(claims))
	tok.Header["kid"], tok.Header["typ"] = kid, session.TokenType
	s, err := tok.SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func xOf(t *testing.T, doc string) string {
	var d struct{ Keys []struct{ X string } }
	if err := json.Unmarshal([]byte(doc), &d); err != nil || len(d.Keys) == 0 {
		t.Fatal("bad JWKS", err)
	}
	return d.Keys[0].X
}

// TestRotation: a session signed by the old key verifies while the old key is in the set
// (the new one active), and is refused once it is removed.
func TestRotation(t *testing.T) {
	k1, k2 := ecKey(t, "k1"), edKey(t, "k2")
	rec := records()
	old := start(t, manager(t, keySet(t, "k1", k1), rec), "a", "dev-1", "")
	rotated := manager(t, keySet(t, "k2", k1, k2), rec)
	if o := rotated.VerifySession(ctx, t0, "a", old.Session); o.Code != "" || o.DeviceID != "dev-1" {
		t.Fatalf("old kid while still in the set: %+v", o)
	}
	fresh := start(t, rotated, "a", "dev-1", "")
	if kid := headerKid(t, fresh.Session); kid != "k2" {
		t.Errorf("new sessions signed by %q, want k2", kid)
	}
	removed := manager(t, keySet(t, "k2", k2), rec)
	if o := removed.VerifySession(ctx, t0, "a", old.Session); o.Code != policy.InvalidToken {
		t.Errorf("old kid removed: %+v, want INVALID_TOKEN", o)
	}
	if o := removed.VerifySession(ctx, t0, "a", fresh.Session); o.Code != "" {
		t.Errorf("new kid: %+v", o)
	}
}

func headerKid(t *testing.T, tok string) string {
	h, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	var v struct{ Kid string }
	if err := json.Unmarshal(h, &v); err != nil {
		t.Fatal(err)
	}
	return v.Kid
}

// TestRevokeDeviceAndLicense: revoking a device (of an app) or a license revokes the
// sessions begun until then, not another app's device of the same id nor sessions begun
// later.
func TestRevokeDeviceAndLicense(t *testing.T) {
	m := manager(t, keySet(t, "k1", ecKey(t, "k1")), records())
	const lic = "6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b"
	dev := start(t, m, "a", "dev-1", "")
	devB := start(t, m, "b", "dev-1", "")
	licS := start(t, m, "a", "dev-2", lic)
	at := t0.Add(time.Minute)
	if err := m.Revoke(ctx, at, session.Target{App: "a", DeviceID: "dev-1"}); err != nil {
		t.Fatal(err)
	}
	if err := m.Revoke(ctx, at, session.Target{License: lic}); err != nil {
		t.Fatal(err)
	}
	later, err := m.Start(ctx, at.Add(time.Second), session.Grant{App: "a", DeviceID: "dev-1", Provider: "approov"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, app, tok string
		want           policy.Code
	}{
		{"device revoked", "a", dev.Session, policy.SessionRevoked},
		{"same device id, other app", "b", devB.Session, ""},
		{"license revoked", "a", licS.Session, policy.SessionRevoked},
		{"begun after the revocation", "a", later.Session, ""},
	} {
		if o := m.VerifySession(ctx, at.Add(2*time.Second), tc.app, tc.tok); o.Code != tc.want {
			t.Errorf("%s: %+v, want %q", tc.name, o, tc.want)
		}
	}
	for _, bad := range []session.Target{{}, {App: "a"}, {SessionID: "s", License: lic}, {DeviceID: "d"}} {
		if err := m.Revoke(ctx, at, bad); err != session.ErrTarget {
			t.Errorf("Revoke(%+v) = %v, want ErrTarget", bad, err)
		}
	}
}

// TestRevocationBound: a replica that looked at a session in the store trusts that look
// for the revocation-check interval (1h here) and no longer: revoked at t0 after a look
// at t0, the session is still accepted at t0+1h-1ns and refused at exactly t0+1h. A
// heartbeat always looks, and sees the revocation at once.
func TestRevocationBound(t *testing.T) {
	cache, err := policy.NewCache(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	ks := keySet(t, "k1", ecKey(t, "k1"))
	m, err := session.New(session.Settings{Keys: ks, Records: records(), Cache: cache, TTL: 2 * time.Hour, RevocationCheck: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	tk := start(t, m, "a", "dev-1", "")
	if o := m.VerifySession(ctx, t0, "a", tk.Session); o.Code != "" {
		t.Fatal(o)
	}
	cache.Wait()
	if err := m.Revoke(ctx, t0, session.Target{SessionID: tk.SessionID}); err != nil {
		t.Fatal(err)
	}
	if o := m.VerifySession(ctx, t0.Add(time.Hour-time.Nanosecond), "a", tk.Session); o.Code != "" || !o.CacheHit {
		t.Fatalf("1ns before the bound, from the cache: %+v", o)
	}
	if _, code, _ := m.Heartbeat(ctx, t0, "a", tk.Session); code != policy.SessionRevoked {
		t.Fatalf("heartbeat: %q, want SESSION_REVOKED", code)
	}
	if o := m.VerifySession(ctx, t0.Add(time.Hour), "a", tk.Session); o.Code != policy.SessionRevoked {
		t.Fatalf("at the bound: %+v, want SESSION_REVOKED", o)
	}
}
