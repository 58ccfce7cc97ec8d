package config

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/attest/attesttest"
	"github.com/gatehouse/gatehouse/policy/attest/playintegrity/pitest"
)

// TestBadPlayIntegrityConfigs: one file per validation rule of play_integrity providers,
// each with the one message it must produce (also in the file's first line).
func TestBadPlayIntegrityConfigs(t *testing.T) {
	for _, tc := range []struct{ file, want string }{
		{"pi_binding_self", "apps[0].attestation.providers[0].binding_header: must not be the token's own header"},
		{"pi_decryption_key_bad", "apps[0].attestation.providers[0].play_integrity.decryption_key_file: short.key: the decryption key must be base64 of 32 bytes (an AES-256 key)"},
		{"pi_key_for_other_type", "apps[0].attestation.providers[0].play_integrity: only for type play_integrity"},
		{"pi_key_missing", "apps[0].attestation.providers[0].play_integrity.decryption_key_file: cannot read nope.key"},
		{"pi_key_required", "apps[0].attestation.providers[0].play_integrity.verification_key_file: is required"},
		{"pi_level", "apps[0].attestation.providers[0].play_integrity.min_device_level: unknown device level \"high\" (want basic, device or strong)"},
		{"pi_max_age", "apps[0].attestation.providers[0].max_age: must be at most 24h0m0s for play_integrity"},
		{"pi_missing", "apps[0].attestation.providers[0].play_integrity: is required for type play_integrity"},
		{"pi_not_for_type", "apps[0].attestation.providers[0].min_app_version: not for type play_integrity"},
		{"pi_package", "apps[0].attestation.providers[0].play_integrity.package_name: must be an Android package name like com.example.app"},
		{"pi_play_protect", "apps[0].attestation.providers[0].play_integrity.play_protect[1]: unknown verdict \"LOW_RISK\""},
		{"pi_unrecognized_no_certs", "apps[0].attestation.providers[0].play_integrity.allow_unrecognized_version: needs signing_certs"},
		{"pi_verification_key_bad", "apps[0].attestation.providers[0].play_integrity.verification_key_file: pi-decryption.key: the verification key is not a public key (SubjectPublicKeyInfo)"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join("testdata", "device", tc.file+".yaml")
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(b), "# Expected: "+tc.want) {
				t.Errorf("%s does not document its expected message", path)
			}
			_, err = Load(path, Deps{Offline: true})
			var errs Errors
			if !errors.As(err, &errs) || len(errs) != 1 || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("errors:\n%v\nwant exactly one, containing %q", err, tc.want)
			}
		})
	}
}

// TestPlayIntegrityKeyFileNeverQuoted: a key file holding something else (here a
// private key) is refused without its content in the message.
func TestPlayIntegrityKeyFileNeverQuoted(t *testing.T) {
	dir := t.TempDir()
	secret := "-----BEGIN PRIVATE KEY-----\nTUlJQ1NFQ1JFVA==\n-----END PRIVATE KEY-----\n"
	os.WriteFile(filepath.Join(dir, "v.key"), []byte(secret), 0o600)
	os.WriteFile(filepath.Join(dir, "d.key"), []byte("TUlJQ1NFQ1JFVA==\n"), 0o600)
	_, err := LoadBytes([]byte(piConfig("d.key", "v.key", "")), filepath.Join(dir, "g.yaml"), Deps{Offline: true})
	if err == nil {
		t.Fatal("loaded")
	}
	for _, s := range []string{"TUlJQ1NFQ1JFVA", "PRIVATE"} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("message quotes the file: %v", err)
		}
	}
}

// TestPlayIntegrityOffline: validate --offline without the key files warns and passes.
func TestPlayIntegrityOffline(t *testing.T) {
	snap, err := LoadBytes([]byte(piConfig("absent-d.key", "absent-v.key", "")), filepath.Join(t.TempDir(), "g.yaml"), Deps{Offline: true, MissingFilesOK: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Warnings) != 2 {
		t.Errorf("warnings %v, want one per key file", snap.Warnings)
	}
}

func piConfig(dec, ver, extra string) string {
	return fmt.Sprintf(`apps:
  - name: a
    app_token_sha256: [%s]
    endpoints: ["*"]
    attestation:
      required: true
      providers:
        - type: play_integrity
          binding_header: x-request-nonce
%s          play_integrity: {package_name: com.example.shop, decryption_key_file: %s, verification_key_file: %s}
endpoints:
  - {name: orders, path: /v1/orders}
`, hexSHA("app-a"), extra, dec, ver)
}

func hexSHA(s string) string {
	h := policy.HashCredential(s)
	return fmt.Sprintf("%x", h[:])
}

// TestPlayIntegrityCompiled: a configured provider decides a request end to end through
// the pipeline, with the key files in both formats the Play Console gives, and a new
// verification key (a rotated file) drops the cached verdicts.
func TestPlayIntegrityCompiled(t *testing.T) {
	k := pitest.NewKeys(t)
	dir := t.TempDir()
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("d.key", k.DecryptionText()+"\n")
	write("v.key", k.VerificationText(t)+"\n")
	write("v.pem", k.VerificationPEM(t))
	cache, err := policy.NewCache(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	now := time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)
	in := attesttest.Request("app-a", "/v1/orders", "192.0.2.1", "x-request-nonce", "n-1")
	in.RawPath = "/v1/orders?page=2"
	// Each token is accepted once: every accepted use below gets a token of its own (the
	// encryption is randomised, so one payload makes distinct tokens).
	goodToken := func() string {
		return pitest.Token(t, k, pitest.Good("com.example.shop", pitest.Binding("GET", "/v1/orders?page=2", "n-1"), now))
	}
	emuToken := func() string {
		return pitest.Token(t, k, pitest.Good("com.example.shop", pitest.Binding("GET", "/v1/orders?page=2", "n-1"), now).
			Set("deviceIntegrity", "deviceRecognitionVerdict", []string{"MEETS_VIRTUAL_INTEGRITY"}))
	}
	load := func(ver, extra string) *policy.Rules {
		snap, err := LoadBytes([]byte(piConfig("d.key", ver, extra)), filepath.Join(dir, "g.yaml"), Deps{Cache: cache})
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"d.key", ver} { // watched: a rotated key reloads
			if !slices.Contains(snap.Files, filepath.Join(dir, f)) {
				t.Errorf("%s not among the watched files %v", f, snap.Files)
			}
		}
		return snap.Rules
	}
	decide := func(r *policy.Rules, tok string) policy.Decision {
		in.Headers["x-play-integrity"] = tok
		return r.Decide(context.Background(), now, in)
	}
	for _, ver := range []string{"v.key", "v.pem"} {
		r := load(ver, "")
		good, emu := goodToken(), emuToken()
		attesttest.Want(t, decide(r, good), "")
		attesttest.Want(t, decide(r, emu), policy.EmulatorDetected)
		attesttest.Want(t, decide(load(ver, "          allow_emulator: true\n"), emu), "")
	}
	good := goodToken()
	attesttest.Want(t, decide(load("v.key", ""), good), "")
	cache.Wait()
	// Its second use is a replay (refused), but the verdict comes from the cache.
	if d := decide(load("v.key", ""), good); !d.CacheHit {
		t.Fatal("a reload that changes nothing dropped the cached verdict")
	}
	write("v.key", pitest.NewKeys(t).VerificationText(t))
	d := decide(load("v.key", ""), good)
	attesttest.Want(t, d, policy.AttestationFailed)
	if d.CacheHit {
		t.Error("a new verification key kept the verdict cached under the old one")
	}
}
