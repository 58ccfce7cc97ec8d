package attest_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/attest/attesttest"
)

// now is the pipeline's clock in these tests; tokens are minted relative to it.
var now = time.Unix(1_750_000_000, 0)

const (
	signedIssuer  = "https://attest.test"
	fbProject     = "123456"
	fbApp         = "1:123456:android:abc"
	certDigest    = "aa11bb22cc33dd44ee55ff6600112233445566778899aabbccddeeff00112233"
	approovBearer = "Bearer user-session-token"
)

// env is a compiled configuration with one app per provider and the keys to mint tokens
// for each.
type env struct {
	rules      *policy.Rules
	cache      *policy.Cache
	es, rs, ed *attesttest.Key // in the signed_token JWKS file
	impostor   *attesttest.Key // ES256 with es's kid, not in any JWKS
	fb1, fb2   *attesttest.Key // Firebase keys; fb2 is published only after rotate
	fbJWKS     atomic.Pointer[[]byte]
	fbFetches  atomic.Int64
	secret     []byte // Approov HS256 secret
	dir        string
	jti        atomic.Int64
	keySources *config.KeySources
}

func token(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func newEnv(t testing.TB) *env { return newEnvWith(t, "200ms") }

// newEnvWith is newEnv with the Firebase key source's min_refresh.
func newEnvWith(t testing.TB, minRefresh string) *env {
	t.Helper()
	e := &env{
		es:       attesttest.NewKey(t, "ES256", "es-1"),
		rs:       attesttest.NewKey(t, "RS256", "rs-1"),
		ed:       attesttest.NewKey(t, "EdDSA", "ed-1"),
		impostor: attesttest.NewKey(t, "ES256", "es-1"),
		fb1:      attesttest.NewKey(t, "RS256", "fb-1"),
		fb2:      attesttest.NewKey(t, "RS256", "fb-2"),
		secret:   make([]byte, 32),
		dir:      t.TempDir(),
	}
	rand.Read(e.secret)
	jwks := attesttest.JWKS(e.fb1)
	e.fbJWKS.Store(&jwks)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		e.fbFetches.Add(1)
		w.Header().Set("content-type", "application/json")
		w.Write(*e.fbJWKS.Load())
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshakes cut short by Close
	t.Cleanup(srv.Close)
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(e.dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("keys.json", attesttest.JWKS(e.es, e.rs, e.ed))
	write("ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
	write("approov.key", []byte(base64.StdEncoding.EncodeToString(e.secret)+"\n"))

	cache, err := policy.NewCache(1 << 22)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cache.Close)
	e.cache = cache
	e.keySources = config.NewKeySources()
	t.Cleanup(e.keySources.Close)
	yaml := fmt.Sprintf(strings.ReplaceAll(testConfig, "min_refresh: 200ms", "min_refresh: "+minRefresh), token("signed"), token("firebase"), token("approov"), token("multi"), srv.URL, token("licensed"), token("lists"), token("optional"))
	snap, err := config.LoadBytes([]byte(yaml), filepath.Join(e.dir, "gatehouse.yaml"), config.Deps{Cache: cache, Keys: e.keySources})
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	e.rules = snap.Rules
	e.awaitFirebaseKeys(t)
	return e
}

// awaitFirebaseKeys waits until the Firebase key set's first fetch, which runs on its own
// from the start, has landed: on a loaded machine it can outlast fetch_wait, and a test's
// first request would then be refused for want of keys rather than for what it tests.
func (e *env) awaitFirebaseKeys(t testing.TB) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		d := e.decide(request("firebase", "/v1/secure", "x-firebase-appcheck", attesttest.Sign(t, e.fb1, e.firebaseClaims(), nil)))
		if d.Allowed() {
			return
		}
		if d.Code != policy.ServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("the Firebase key set did not load: %s", d.Code)
		}
	}
}

// testConfig: the apps are named after their providers; %s are app-token digests and
// the Firebase JWKS URL.
const testConfig = `
server: {fail_mode: closed}
apps:
  - name: signed
    app_token_sha256: [%s]
    endpoints: ["*"]
    attestation:
      required: true
      providers:
        - type: signed_token
          issuer: https://attest.test
          jwks: {file: keys.json}
          max_age: 10m
          min_app_version: 2.0.0
          signing_certs: ["AA:11:BB:22:CC:33:DD:44:EE:55:FF:66:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33"]
  - name: firebase
    app_token_sha256: [%s]
    endpoints: ["*"]
    attestation:
      required: true
      providers:
        - type: firebase_app_check
          project_number: "123456"
          app_ids: ["1:123456:android:abc"]
          replay_protection: true
          jwks: {url: %[5]s, ca_file: ca.pem, min_refresh: 200ms}
  - name: approov
    app_token_sha256: [%[3]s]
    endpoints: ["*"]
    attestation:
      required: true
      providers:
        - type: approov
          secret_file: approov.key
          binding_header: authorization
  - name: multi
    app_token_sha256: [%[4]s]
    endpoints: ["*"]
    attestation:
      required: true
      providers:
        - type: signed_token
          issuer: https://attest.test
          jwks: {file: keys.json}
        - type: firebase_app_check
          project_number: "123456"
          app_ids: ["1:123456:android:abc"]
          jwks: {url: %[5]s, ca_file: ca.pem, min_refresh: 200ms}
        - type: approov
          secret_file: approov.key
  - name: licensed
    dialect: license
    app_token_sha256: [%[6]s]
    endpoints: ["*"]
    attestation:
      providers:
        - type: signed_token
          issuer: https://attest.test
          jwks: {file: keys.json}
  - name: lists
    app_token_sha256: [%[7]s]
    endpoints: ["*"]
    attestation:
      providers:
        - type: signed_token
          issuer: https://attest.test
          jwks: {file: keys.json}
    devices:
      block: [stolen-device]
    network:
      block: [203.0.113.0/24, "2001:db8:bad::/48", 198.51.100.7]
  - name: optional
    app_token_sha256: [%[8]s]
    endpoints: ["*"]
    devices: {trust_device_header: true}
    attestation:
      providers:
        - type: signed_token
          issuer: https://attest.test
          audience: optional
          jwks: {file: keys.json}
          allow_emulator: true
endpoints:
  - {name: secure, path: /v1/secure, methods: [GET]}
  - {name: must, path: /v1/must, attestation: require}
  - {name: open, path: /v1/open, attestation: exempt}
  - {name: heartbeat, path: /v1/heartbeat, heartbeat: true}
`

// signedClaims are valid claims for the signed app's provider.
func (e *env) signedClaims(aud string) attesttest.Claims {
	return attesttest.Claims{
		"iss": signedIssuer, "aud": aud, "iat": now.Add(-time.Minute).Unix(), "exp": now.Add(5 * time.Minute).Unix(),
		"device_id": "device-1", "app_version": "2.3.1", "signing_cert": certDigest,
	}
}

// firebaseClaims are valid App Check claims with a fresh jti.
func (e *env) firebaseClaims() attesttest.Claims {
	return attesttest.Claims{
		"iss": "https://firebaseappcheck.googleapis.com/" + fbProject,
		"aud": []string{"projects/" + fbProject, "projects/demo-project"},
		"sub": fbApp, "iat": now.Add(-time.Minute).Unix(), "exp": now.Add(time.Hour).Unix(),
		"jti": fmt.Sprintf("%s-%d", e.dir, e.jti.Add(1)), // the damper outlives envs: ids must not repeat
	}
}

// approovClaims are valid Approov claims bound to approovBearer.
func (e *env) approovClaims() attesttest.Claims {
	return attesttest.Claims{"exp": now.Add(5 * time.Minute).Unix(), "did": "approov-device", "pay": attesttest.Pay(approovBearer)}
}

// request builds a request from the Envoy source 192.0.2.10 with the app token of app
// and header name/value pairs.
func request(app, path string, kv ...string) *policy.Input {
	return attesttest.Request(app, path, "192.0.2.10", kv...)
}

func (e *env) decide(in *policy.Input) policy.Decision {
	return e.rules.Decide(context.Background(), now, in)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// rsaPublicDER is the RSA key's public half as PKIX DER: what an alg-confusion attacker
// uses as an HMAC secret.
func rsaPublicDER(t *testing.T, e *env) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(e.rs.Private.Public())
	if err != nil {
		t.Fatal(err)
	}
	return der
}
