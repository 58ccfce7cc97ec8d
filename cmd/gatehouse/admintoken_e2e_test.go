package main

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

// TestAdminTokenRotation: the admin token file is read again for every write, so that a
// rotated Secret takes effect without a restart: the old token stops working at once, the
// new one works, and a file that becomes unusable turns writes off (never back to the
// old token).
func TestAdminTokenRotation(t *testing.T) {
	dir := t.TempDir()
	const oldTok, newTok = "admin-token-old-0123456789", "admin-token-new-0123456789"
	// A Kubernetes Secret mount: the file is a symlink through ..data, swapped atomically.
	tokenDir := filepath.Join(dir, "secret")
	os.MkdirAll(filepath.Join(tokenDir, "v1"), 0o700)
	os.WriteFile(filepath.Join(tokenDir, "v1", "token"), []byte(oldTok+"\n"), 0o600)
	os.Symlink("v1", filepath.Join(tokenDir, "..data"))
	os.Symlink(filepath.Join("..data", "token"), filepath.Join(tokenDir, "token"))
	srv := startServer(t, "--config", writeConfig(t, dir, adminConfig), "--admin-token-file", filepath.Join(tokenDir, "token"))
	srv.waitReady(t)
	reload := func(tok string) int {
		code, _ := srv.admin(t, tok, "/-/reload", nil)
		return code
	}
	if code := reload(oldTok); code != http.StatusOK {
		t.Fatalf("the first token: %d, want 200", code)
	}

	os.MkdirAll(filepath.Join(tokenDir, "v2"), 0o700)
	os.WriteFile(filepath.Join(tokenDir, "v2", "token"), []byte(newTok+"\n"), 0o600)
	os.Symlink("v2", filepath.Join(tokenDir, "..data_tmp"))
	if err := os.Rename(filepath.Join(tokenDir, "..data_tmp"), filepath.Join(tokenDir, "..data")); err != nil {
		t.Fatal(err)
	}
	if code := reload(oldTok); code != http.StatusUnauthorized {
		t.Fatalf("the rotated-out token: %d, want 401", code)
	}
	if code := reload(newTok); code != http.StatusOK {
		t.Fatalf("the new token: %d, want 200", code)
	}

	os.WriteFile(filepath.Join(tokenDir, "v2", "token"), []byte("short\n"), 0o600)
	for _, tok := range []string{newTok, oldTok, "short"} {
		if code := reload(tok); code != http.StatusForbidden {
			t.Fatalf("token file too short, token %q: %d, want 403 (writes off)", tok, code)
		}
	}
	os.Remove(filepath.Join(tokenDir, "v2", "token"))
	if code := reload(newTok); code != http.StatusForbidden {
		t.Fatalf("token file gone: %d, want 403 (writes off)", code)
	}
}
