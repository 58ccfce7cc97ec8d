package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSignVerify: `gatehouse sign verify` checks a captured response offline. The
// worked example of the README (signature computed with openssl dgst -sha256 -hmac)
// verifies; any change to what is signed does not, and says what was computed.
func TestSignVerify(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	body := filepath.Join(dir, "body.json")
	os.WriteFile(secret, []byte("example-signing-secret-0123456789\n"), 0o600)
	os.WriteFile(body, []byte(`{"ok":true}`), 0o600)
	const sig = "9f096055824739fe69c6d04592f25605581b59536b48f3f15ed549ea31ef0373"
	args := func(kv ...string) []string {
		a := map[string]string{"--secret-file": secret, "--nonce": "Qm9uam91ci1ub25jZS0x", "--status": "200",
			"--timestamp": "1767225600", "--signature": sig, "--body-file": body}
		for i := 0; i+1 < len(kv); i += 2 {
			a[kv[i]] = kv[i+1]
		}
		out := []string{"sign", "verify"}
		for _, k := range []string{"--secret-file", "--nonce", "--status", "--timestamp", "--signature", "--body-file"} {
			out = append(out, k, a[k])
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		change []string
		code   int
		out    string
	}{
		{"worked example", nil, 0, "OK"},
		{"other status", []string{"--status", "201"}, 1, "MISMATCH"},
		{"other nonce", []string{"--nonce", "Qm9uam91ci1ub25jZS0y"}, 1, "MISMATCH"},
		{"upper-case hex", []string{"--signature", strings.ToUpper(sig)}, 1, "lowercase hex"},
		{"bad status", []string{"--status", "two hundred"}, 2, "--status"},
		{"missing body file", []string{"--body-file", filepath.Join(dir, "absent")}, 2, "--body-file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(args(tc.change...)...)
			if code != tc.code || !strings.Contains(stdout+stderr, tc.out) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want %d and %q", code, stdout, stderr, tc.code, tc.out)
			}
			if tc.code == 0 && !strings.Contains(stdout, "4062edaf750fb8074e7e83e0c9028c94e32468a8b6f1614774328ef045150f93") {
				t.Fatalf("stdout %q does not show the body's SHA-256", stdout)
			}
		})
	}
	if code, stdout, _ := runCLI("sign", "verify", "--help"); code != 0 || !strings.HasPrefix(stdout, "usage: gatehouse sign verify") {
		t.Fatalf("help: exit %d %q", code, stdout)
	}
	if code, _, stderr := runCLI("sign", "forge"); code != 2 || !strings.Contains(stderr, "usage: gatehouse sign verify") {
		t.Fatalf("unknown subcommand: exit %d %q", code, stderr)
	}
}
