package main

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// reloadConfig is a small configuration; %s is the Approov secret file it names.
const reloadConfig = `
apps:
  - name: a
    app_token_sha256: ["{{T:a}}"]
    endpoints: ["*"]
    attestation:
      providers:
        - {type: approov, secret_file: %s}
endpoints:
  - {name: e, path: /e}
`

// shortVersion is the documented configuration version: the first 12 hex digits of the
// SHA-256 of the file's bytes.
func shortVersion(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:12]
}

// TestReloadOnDemand: POST /-/reload needs the admin token, loads the file now and
// answers with the version in force; a rejected file answers 422 with every problem,
// keeps the running configuration, and never shows a secret's content.
func TestReloadOnDemand(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "admin.token")
	os.WriteFile(tokenFile, []byte(testAdminToken+"\n"), 0o600)
	secret := filepath.Join(t.TempDir(), "approov.key")    // in another directory
	good := "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" // base64 of 32 bytes
	os.WriteFile(secret, []byte(good), 0o600)
	cfg := writeConfig(t, dir, strings.Replace(reloadConfig, "%s", secret, 1))
	srv := startServer(t, "--config", cfg, "--admin-token-file", tokenFile)
	srv.waitReady(t)
	v1 := shortVersion(t, cfg)

	if code, out := srv.admin(t, "", "/-/reload", nil); code != http.StatusUnauthorized {
		t.Fatalf("without the token: %d %v, want 401", code, out)
	}
	if code, out := srv.admin(t, "wrong-token-0123456789abcd", "/-/reload", nil); code != http.StatusUnauthorized {
		t.Fatalf("with a wrong token: %d %v, want 401", code, out)
	}
	if code, out := srv.admin(t, testAdminToken, "/-/reload", nil); code != http.StatusOK || out["version"] != v1 {
		t.Fatalf("reload: %d %v, want 200 with version %s", code, out, v1)
	}

	cfg = writeConfig(t, dir, "# second\n"+strings.Replace(reloadConfig, "%s", secret, 1))
	v2 := shortVersion(t, cfg)
	if code, out := srv.admin(t, testAdminToken, "/-/reload", nil); code != http.StatusOK || out["version"] != v2 {
		t.Fatalf("reload of a changed file: %d %v, want 200 with version %s", code, out, v2)
	}

	// A secret too short to use: rejected, and its content is not in the answer.
	const leaked = "c2hvcnQtc2VjcmV0LXZhbHVl"
	os.WriteFile(secret, []byte(leaked), 0o600)
	code, out := srv.admin(t, testAdminToken, "/-/reload", nil)
	if code != http.StatusUnprocessableEntity || out["version"] != v2 {
		t.Fatalf("reload of a bad secret: %d %v, want 422 with version %s still in force", code, out, v2)
	}
	problems, _ := out["problems"].([]any)
	want := "apps[0].attestation.providers[0].secret_file: the secret must be base64 of at least 32 bytes"
	if len(problems) != 1 || problems[0] != want {
		t.Fatalf("problems %v, want [%q]", problems, want)
	}
	if body := srv.body(t, "/metrics"); strings.Contains(body, leaked) {
		t.Fatal("the secret appears in /metrics")
	}
	if strings.Contains(srv.out.String(), leaked) {
		t.Fatal("the secret appears in the log")
	}
}

// TestReloadOnDemandWithoutFile: the embedded demo has no file to reload: 409, and the
// write API stays off without a token (403), as for every admin write.
func TestReloadOnDemandWithoutFile(t *testing.T) {
	srv := startServer(t)
	srv.waitReady(t)
	if code, out := srv.admin(t, testAdminToken, "/-/reload", nil); code != http.StatusForbidden {
		t.Fatalf("without a configured token: %d %v, want 403", code, out)
	}
	tokenFile := filepath.Join(t.TempDir(), "admin.token")
	os.WriteFile(tokenFile, []byte(testAdminToken), 0o600)
	srv = startServer(t, "--admin-token-file", tokenFile)
	srv.waitReady(t)
	if code, out := srv.admin(t, testAdminToken, "/-/reload", nil); code != http.StatusConflict {
		t.Fatalf("demo configuration: %d %v, want 409", code, out)
	}
}
