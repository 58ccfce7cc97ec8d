package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy/attest/playintegrity/pitest"
)

// TestAttestVerifyPlayIntegrity: tokens made in the test, checked offline with the key
// files; each outcome's exit status, failing check and verdict line typed by hand.
func TestAttestVerifyPlayIntegrity(t *testing.T) {
	k := pitest.NewKeys(t)
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	dec, ver := write("dec.key", k.DecryptionText()+"\n"), write("ver.key", k.VerificationText(t)+"\n")
	pem := write("ver.pem", k.VerificationPEM(t))
	issued := time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)
	bind := pitest.Binding("GET", "/v1/orders", "n-1")
	good := func() pitest.Payload { return pitest.Good("com.example.shop", bind, issued) }
	token := func(name string, p pitest.Payload) string { return write(name, pitest.Token(t, k, p)+"\n") }
	tok := token("good.txt", good())
	_, certHex := pitest.Cert("release")
	base := func(extra ...string) []string {
		return append([]string{"attest", "verify", "--type", "play-integrity", "--package", "com.example.shop",
			"--decryption-key", dec, "--verification-key", ver, "--at", "2026-12-07T03:01:00Z"}, extra...)
	}
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		output []string
	}{
		{"verified", base("--request-hash", bind, "--signing-cert", certHex, "--require-licensed", "--play-protect", "NO_ISSUES", tok), 0,
			[]string{"  ok    decrypt (A256KW, A256GCM) and verify (ES256)", "  ok    requestDetails.requestHash", "  ok    appIntegrity.certificateSha256Digest", "verdict: VERIFIED"}},
		{"verified, PEM key, no binding given", append(base("--verification-key", pem), tok), 0,
			[]string{"  -     request binding (not checked: give --request-hash or --nonce)", "verdict: VERIFIED"}},
		{"classic nonce", base("--nonce", bind, token("classic.txt", good().Set("requestDetails", "requestHash", nil).Set("requestDetails", "nonce", bind))), 0,
			[]string{"  ok    requestDetails.nonce", "verdict: VERIFIED"}},
		{"another request hash", base("--request-hash", pitest.Binding("GET", "/v1/orders", "n-2"), tok), 1,
			[]string{"  FAIL  requestDetails.requestHash: ATTESTATION_FAILED", "verdict: REFUSED ATTESTATION_FAILED"}},
		{"1ms before the window ends", append(base("--at", "2026-12-07T03:05:29.999Z"), tok), 0, []string{"verdict: VERIFIED"}},
		{"at the end of the window", append(base("--at", "2026-12-07T03:05:30Z"), tok), 1,
			[]string{"  FAIL  requestDetails.timestampMillis within 5m0s (leeway 30s): ATTESTATION_EXPIRED", "verdict: REFUSED ATTESTATION_EXPIRED"}},
		{"another package", base(token("other.txt", pitest.Good("com.example.other", bind, issued))), 1,
			[]string{"  FAIL  requestDetails.requestPackageName: ATTESTATION_FAILED", "  FAIL  appIntegrity.packageName: APP_TAMPERED", "verdict: REFUSED ATTESTATION_FAILED"}},
		{"emulator, every check listed", base(token("emu.txt", good().Set("deviceIntegrity", "deviceRecognitionVerdict", []string{"MEETS_VIRTUAL_INTEGRITY"}))), 1,
			[]string{"  FAIL  deviceIntegrity: not an emulator: EMULATOR_DETECTED", "  FAIL  deviceIntegrity: at least device: DEVICE_COMPROMISED", "  -     accountDetails.appLicensingVerdict (not checked: licensing not required)",
				"  -     environmentDetails.playProtectVerdict (not checked", "  ok    appIntegrity.appRecognitionVerdict", `deviceRecognitionVerdict ["MEETS_VIRTUAL_INTEGRITY"]`, "verdict: REFUSED EMULATOR_DETECTED"}},
		{"emulator allowed", base("--allow-emulator", token("emu2.txt", good().Set("deviceIntegrity", "deviceRecognitionVerdict", []string{"MEETS_VIRTUAL_INTEGRITY"}))), 0,
			[]string{"verdict: VERIFIED"}},
		{"another certificate", base("--signing-cert", strings.Repeat("ab", 32), tok), 1,
			[]string{"  FAIL  appIntegrity.certificateSha256Digest: APP_TAMPERED", "verdict: REFUSED APP_TAMPERED"}},
		{"tampered", base(write("tampered.txt", strings.Replace(pitest.Token(t, k, good()), ".", ".A", 3))), 1,
			[]string{"  FAIL  decrypt (A256KW, A256GCM) and verify (ES256):", "  -     the payload's checks (not checked)", "verdict: REFUSED"}},
		{"another app's keys", base(write("foreign.txt", pitest.Token(t, pitest.NewKeys(t), good()))), 1,
			[]string{"does not decrypt with the app's decryption key", "verdict: REFUSED ATTESTATION_FAILED"}},
		{"oversized", base(write("huge.txt", strings.Repeat("A", 70000))), 1,
			[]string{"  FAIL  size: larger than 65536 bytes", "verdict: REFUSED INVALID_ATTESTATION"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\n%s%s", code, tc.code, stdout, stderr)
			}
			for _, want := range tc.output {
				if !strings.Contains(stdout, want) {
					t.Errorf("output lacks %q:\n%s", want, stdout)
				}
			}
		})
	}
}

// TestAttestVerifyPlayIntegrityUsage: bad usage exits 2 naming every problem, without
// quoting a key file; --help exits 0; the dispatcher lists the type.
func TestAttestVerifyPlayIntegrityUsage(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret.key")
	os.WriteFile(secret, []byte("c2VjcmV0LXNlY3JldC1zZWNyZXQ=\n"), 0o600)
	code, _, stderr := runCLI("attest", "verify", "--type", "play-integrity", "--decryption-key", secret, "--verification-key", secret,
		"--request-hash", "a", "--nonce", "b", "--min-device-level", "high", "--signing-cert", "zz")
	for _, want := range []string{"want exactly one FILE", "--package is required", "--decryption-key: the decryption key must be base64 of 32 bytes",
		"--verification-key:", "give at most one of --request-hash and --nonce", "--min-device-level: unknown device level", "--signing-cert:"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q: %s", want, stderr)
		}
	}
	if code != 2 || strings.Contains(stderr, "c2VjcmV0") {
		t.Errorf("exit %d; stderr %s", code, stderr)
	}
	if code, stdout, _ := runCLI("attest", "verify", "--type", "play-integrity", "--help"); code != 0 || !strings.Contains(stdout, "--decryption-key") {
		t.Errorf("--help: exit %d\n%s", code, stdout)
	}
	if code, stdout, _ := runCLI("attest", "--help"); code != 0 || !strings.Contains(stdout, "play-integrity") {
		t.Errorf("attest --help: exit %d\n%s", code, stdout)
	}
}
