package config

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/policy"
)

const sessionsYAML = `
sessions:
  keys:
    - {id: old, file: testdata/session/test-only-es256.pem}
    - {id: new, file: testdata/session/test-only-ed25519.pem}
  active_key: new
endpoints:
  - {name: exchange, path: /x, serve: exchange}
  - {name: refresh, path: /r, serve: refresh}
  - {name: heartbeat, path: /h, serve: heartbeat}
  - {name: jwks, path: /j, serve: jwks}
  - {name: challenge, path: /c, serve: challenge}
  - {name: pinned, path: /p, serve: refresh, attestation: require}
`

// TestSessionsCompile: the sessions section gives the snapshot its manager, publishing
// both keys; served endpoints get their attestation mode (heartbeat requires the session,
// refresh, jwks and challenge need none, exchange verifies any that is present) unless
// they set one.
func TestSessionsCompile(t *testing.T) {
	snap, err := LoadBytes([]byte(sessionsYAML), filepath.Join(".", "inline.yaml"), testDeps())
	if err != nil {
		t.Fatal(err)
	}
	if snap.Sessions == nil {
		t.Fatal("no session manager")
	}
	var doc struct {
		Keys []struct{ Kid, Kty, Alg string }
	}
	if err := json.Unmarshal(snap.Sessions.Keys().JWKS(), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Keys) != 2 || doc.Keys[0].Kid != "new" || doc.Keys[0].Alg != "EdDSA" || doc.Keys[1].Kid != "old" || doc.Keys[1].Alg != "ES256" {
		t.Errorf("JWKS %+v, want new (EdDSA) and old (ES256)", doc.Keys)
	}
	want := map[string]policy.AttestMode{"exchange": policy.AttestOptional, "refresh": policy.AttestExempt,
		"heartbeat": policy.AttestRequire, "jwks": policy.AttestExempt, "challenge": policy.AttestExempt, "pinned": policy.AttestRequire}
	for _, e := range snap.File.Endpoints {
		ep := snap.Rules.Endpoint(e.Name)
		if ep == nil || ep.Serve == nil || ep.Attestation != want[e.Name] {
			t.Errorf("%s: %+v, want served with attestation mode %d", e.Name, ep, want[e.Name])
		}
	}
}

// TestSessionsMissingKeyOffline: gatehouse validate --offline accepts a configuration whose
// session key files are not mounted (with a warning, the rest still checked); a plain load
// refuses it.
func TestSessionsMissingKeyOffline(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	write(t, path, `
sessions: {keys: [{id: k1, file: keys/k1.pem}], active_key: k1}
endpoints: [{name: x, path: /x, serve: exchange}]
`)
	if _, err := Load(path, Deps{Offline: true}); err == nil || !strings.Contains(err.Error(), "sessions.keys[0].file: cannot read the key") {
		t.Fatalf("plain load: %v", err)
	}
	s, err := Load(path, Deps{Offline: true, MissingFilesOK: true})
	if err != nil {
		t.Fatalf("offline load: %v", err)
	}
	want := "sessions.keys[0].file: keys/k1.pem is not present here; its content was not checked"
	if len(s.Warnings) != 1 || s.Warnings[0] != want {
		t.Fatalf("warnings %q, want %q", s.Warnings, want)
	}
}
