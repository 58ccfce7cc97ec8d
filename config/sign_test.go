package config

import (
	"os"
	"path/filepath"
	"testing"
)

// TestSigningCompiled: an app's sign block signs its endpoints (Check's rules and the
// response phase's routes alike); an endpoint's block replaces it, disabled opts out;
// the nonce store is wired; a changed secret file gives a new signer on reload.
func TestSigningCompiled(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("app.key", "0123456789abcdef0123456789abcdef\n")
	write("ep.key", "fedcba9876543210fedcba9876543210")
	write("config.yaml", `
apps:
  - name: a
    app_token_sha256: [aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa]
    endpoints: ["*"]
    response: {sign: {secret_file: app.key, replay_window: 2m}}
endpoints:
  - {name: plain, path: /plain}
  - {name: own, path: /own, response: {sign: {secret_file: ep.key, signature_header: x-sig}}}
  - {name: out, path: /out, response: {sign: {disabled: true}}}
`)
	load := func() *Snapshot {
		s, err := Load(filepath.Join(dir, "config.yaml"), Deps{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := load()
	app, _ := s.Rules.App("a")
	if app.Sign == nil || app.Sign.Window.String() != "2m0s" || app.Sign.SignatureHeader != "x-signature" {
		t.Fatalf("app signer %+v", app.Sign)
	}
	own := s.Response.Lookup("a", "own").Sign
	if own == nil || own == app.Sign || own.SignatureHeader != "x-sig" {
		t.Fatalf("endpoint signer %+v", own)
	}
	if r := s.Response.Lookup("a", "plain"); r == nil || r.Sign != app.Sign {
		t.Fatalf("plain route %+v, want the app's signer", r)
	}
	if r := s.Response.Lookup("a", "out"); r != nil {
		t.Fatalf("opted-out route %+v, want none", r)
	}
	before := app.Sign.Sign("", 200, 0, nil)
	write("app.key", "another-secret-of-at-least-32-bytes")
	app2, _ := load().Rules.App("a")
	if app2.Sign.Sign("", 200, 0, nil) == before {
		t.Fatal("a changed secret file signs as before")
	}
}
