package main

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy/attest/appattest/appattesttest"
)

// Apple's published sample (see policy/attest/appattest/verify_test.go for its source
// and facts).
var appleSample = []string{"attest", "verify", "--type", "app-attest", "--app-id", "1234567890.com.example.myapp",
	"--key-id", "zgSY9YSD+7TaDXssY6WlOPVS1K3Lmk+pFhlcSWE+ZV0=", "--client-data-hash", "ZXhhbXBsZV9zZXJ2ZXJfY2hhbGxlbmdl"}

const appleSampleFile = "../../policy/attest/appattest/testdata/apple-guide-attestation.b64"

// TestAttestVerifyAppleSample: Apple's sample verifies at a time inside its leaf's
// validity (exit 0, every check ok) and is refused one second after the leaf expired
// (exit 1, the failing check named, the rest not checked).
func TestAttestVerifyAppleSample(t *testing.T) {
	code, stdout, stderr := runCLI(append(appleSample, "--at", "2026-04-21T00:00:00Z", appleSampleFile)...)
	if code != 0 || !strings.Contains(stdout, "verdict: VERIFIED") || strings.Count(stdout, "  ok ") != 11 {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, _ = runCLI(append(appleSample, "--at", "2026-04-23T18:13:13Z", appleSampleFile)...)
	if code != 1 || !strings.Contains(stdout, "FAIL  x5c chain: leaf certificate expired") ||
		!strings.Contains(stdout, "verdict: REFUSED ATTESTATION_EXPIRED") || !strings.Contains(stdout, "-     nonce (not checked)") {
		t.Fatalf("exit %d\n%s", code, stdout)
	}
}

// TestAttestVerifyAppAttest: a chain made in the test, trusted with --root, with the raw
// object and its base64, --challenge and --client-data-hash, and each kind of refusal.
func TestAttestVerifyAppAttest(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	ca := appattesttest.NewCA(now.AddDate(-1, 0, 0))
	dev := appattesttest.NewDevice()
	cdh := sha256.Sum256([]byte("server-challenge"))
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	root := write("root.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Root.Raw}))
	obj := ca.Attest(dev, appattesttest.Attestation{AppID: "TEAM123456.com.example.app", ClientDataHash: cdh[:]}, now)
	raw := write("att.cbor", obj)
	b64 := write("att.b64", []byte(base64.StdEncoding.EncodeToString(obj)+"\n"))
	keyID := base64.RawURLEncoding.EncodeToString(dev.KeyID)
	args := func(extra ...string) []string {
		return append([]string{"attest", "verify", "--type", "app-attest", "--app-id", "TEAM123456.com.example.app",
			"--key-id", keyID, "--root", root, "--at", "2026-03-01T12:00:00Z"}, extra...)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"raw, challenge", args("--challenge", "server-challenge", raw), 0, "verdict: VERIFIED"},
		{"base64, client data hash", args("--client-data-hash", base64.StdEncoding.EncodeToString(cdh[:]), b64), 0, "verdict: VERIFIED"},
		{"other challenge", args("--challenge", "server-challenge2", raw), 1, "REFUSED ATTESTATION_FAILED"},
		{"development", args("--challenge", "server-challenge", "--env", "development", raw), 1, "FAIL  aaguid"},
		{"apple root", append(args()[:8:8], "--challenge", "server-challenge", "--at", "2026-03-01T12:00:00Z", raw), 1, "FAIL  x5c chain"},
		{"both challenge forms", args("--challenge", "a", "--client-data-hash", "YQ==", raw), 2, ""},
		{"neither challenge form", args(raw), 2, ""},
		{"bad env", args("--challenge", "a", "--env", "staging", raw), 2, ""},
		{"bad at", args("--challenge", "a", "--at", "yesterday", raw), 2, ""},
		{"no file", args("--challenge", "a"), 2, ""},
		{"missing file", args("--challenge", "a", filepath.Join(dir, "nope")), 2, ""},
		{"short key id", []string{"attest", "verify", "--type", "app-attest", "--app-id", "T.b", "--key-id", "AAAA", "--challenge", "a", raw}, 2, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(tc.args...)
			if code != tc.code || !strings.Contains(stdout, tc.want) {
				t.Fatalf("exit %d, want %d and %q\n%s%s", code, tc.code, tc.want, stdout, stderr)
			}
		})
	}
	if code, stdout, _ := runCLI("attest", "verify", "--type", "app-attest", "--help"); code != 0 ||
		!strings.HasPrefix(stdout, "usage: gatehouse attest verify --type app-attest") {
		t.Fatalf("--help: exit %d %q", code, stdout)
	}
}
