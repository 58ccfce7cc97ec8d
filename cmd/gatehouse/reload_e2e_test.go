package main

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
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

var versionForm = regexp.MustCompile(`^[0-9a-f]{12}$`)

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

	if code, out := srv.admin(t, "", "/-/reload", nil); code != http.StatusUnauthorized {
		t.Fatalf("without the token: %d %v, want 401", code, out)
	}
	if code, out := srv.admin(t, "wrong-token-0123456789abcd", "/-/reload", nil); code != http.StatusUnauthorized {
		t.Fatalf("with a wrong token: %d %v, want 401", code, out)
	}
	// The version names the main file and every file it reads: an unchanged set keeps it,
	// a change to either file moves it.
	code, out := srv.admin(t, testAdminToken, "/-/reload", nil)
	v1, _ := out["version"].(string)
	if code != http.StatusOK || !versionForm.MatchString(v1) {
		t.Fatalf("reload: %d %v, want 200 with a 12-digit version", code, out)
	}
	if code, out := srv.admin(t, testAdminToken, "/-/reload", nil); code != http.StatusOK || out["version"] != v1 {
		t.Fatalf("reload of the same files: %d %v, want 200 with version %s", code, out, v1)
	}
	os.WriteFile(secret, []byte("ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA="), 0o600)
	code, out = srv.admin(t, testAdminToken, "/-/reload", nil)
	if v, _ := out["version"].(string); code != http.StatusOK || !versionForm.MatchString(v) || v == v1 {
		t.Fatalf("reload after the secret changed: %d %v, want 200 with a version other than %s", code, out, v1)
	}
	v1, _ = out["version"].(string)

	cfg = writeConfig(t, dir, "# second\n"+strings.Replace(reloadConfig, "%s", secret, 1))
	code, out = srv.admin(t, testAdminToken, "/-/reload", nil)
	v2, _ := out["version"].(string)
	if code != http.StatusOK || !versionForm.MatchString(v2) || v2 == v1 {
		t.Fatalf("reload of a changed file: %d %v, want 200 with a version other than %s", code, out, v1)
	}

	// A secret too short to use: rejected, and its content is not in the answer.
	const leaked = "c2hvcnQtc2VjcmV0LXZhbHVl"
	os.WriteFile(secret, []byte(leaked), 0o600)
	code, out = srv.admin(t, testAdminToken, "/-/reload", nil)
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
	srv := startServer(t, "--demo")
	srv.waitReady(t)
	if code, out := srv.admin(t, testAdminToken, "/-/reload", nil); code != http.StatusForbidden {
		t.Fatalf("without a configured token: %d %v, want 403", code, out)
	}
	tokenFile := filepath.Join(t.TempDir(), "admin.token")
	os.WriteFile(tokenFile, []byte(testAdminToken), 0o600)
	srv = startServer(t, "--demo", "--admin-token-file", tokenFile)
	srv.waitReady(t)
	if code, out := srv.admin(t, testAdminToken, "/-/reload", nil); code != http.StatusConflict {
		t.Fatalf("demo configuration: %d %v, want 409", code, out)
	}
}

// watchedConfig blocks the client addresses listed in a file; %s is its path.
const watchedConfig = `
apps:
  - name: a
    app_token_sha256: ["{{T:a}}"]
    endpoints: ["*"]
    network: {block_file: %s}
endpoints:
  - {name: e, path: /e}
`

// eventually polls cond until it holds, for at most 30 seconds (only a broken watcher
// takes that long).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestReloadOnReferencedFile: a running server reloads when a file its configuration
// names changes in another directory: a client newly on the block list is refused; a
// bad list is rejected (counted) and the running configuration keeps refusing it.
func TestReloadOnReferencedFile(t *testing.T) {
	list := filepath.Join(t.TempDir(), "blocked.txt")
	os.WriteFile(list, []byte("192.0.2.1\n"), 0o600)
	cfg := writeConfig(t, t.TempDir(), strings.Replace(watchedConfig, "%s", list, 1))
	srv := startServer(t, "--config", cfg)
	srv.waitReady(t)
	req := request{path: "/e", source: "198.51.100.7", headers: app("a")}
	if resp, err := srv.check(t, req); err != nil || resp.GetOkResponse() == nil {
		t.Fatalf("before the change: %v %s, want allowed", err, describe(resp))
	}

	// The watcher subscribes to the list's directory in the background: write again
	// now and then (each write restarts the 250ms debounce, so not at every poll) until
	// a reload has seen the change.
	polls := 0
	eventually(t, "the client to be blocked", func() bool {
		if polls%50 == 0 {
			os.WriteFile(list, []byte("192.0.2.1\n198.51.100.7\n"), 0o600)
		}
		polls++
		resp, err := srv.check(t, req)
		if d := resp.GetDeniedResponse(); err == nil && d != nil {
			if d.GetStatus().GetCode() != 403 || bodyCode(t, d.GetBody()) != "FORBIDDEN" {
				t.Fatalf("blocked client: %s, want 403 FORBIDDEN", describe(resp))
			}
			return true
		}
		return false
	})

	os.WriteFile(list, []byte("198.51.100.7/33\n"), 0o600)
	eventually(t, "the bad list to be rejected", func() bool {
		return strings.Contains(srv.body(t, "/metrics"), `gatehouse_config_reloads_total{result="failure"} 1`)
	})
	if resp, err := srv.check(t, req); err != nil || resp.GetDeniedResponse() == nil {
		t.Fatalf("after a bad list: %v %s, want still blocked", err, describe(resp))
	}
}
