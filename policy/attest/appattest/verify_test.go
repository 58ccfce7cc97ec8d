package appattest_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/attest/appattest"
	"github.com/gatehouse/gatehouse/policy/attest/appattest/appattesttest"
)

const appID = "ABCDE12345.com.example.app"

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// The sample attestation object of Apple's App Attest validation guide, as published in
// https://developer.apple.com/documentation/devicecheck/attestation-object-validation-guide
// (the same object is used by github.com/takimoto3/app-attest, apple_guide_test.go).
// Its facts, read from the guide and the object's receipt: app id
// 1234567890.com.example.myapp, production, clientDataHash the 24 bytes
// "example_server_challenge" as they are (the guide hashes authData ‖ those bytes), key id
// base64 zgSY9YSD+7TaDXssY6WlOPVS1K3Lmk+pFhlcSWE+ZV0=, leaf valid 2026-04-20T18:13:12Z to
// 2026-04-23T18:13:12Z.
const (
	guideAppID = "1234567890.com.example.myapp"
	guideKeyID = "zgSY9YSD+7TaDXssY6WlOPVS1K3Lmk+pFhlcSWE+ZV0="
	guideCDH   = "example_server_challenge"
)

func guideObject(t testing.TB) []byte {
	t.Helper()
	b64, err := os.ReadFile("testdata/apple-guide-attestation.b64")
	if err != nil {
		t.Fatal(err)
	}
	obj, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b64)))
	if err != nil {
		t.Fatal(err)
	}
	return obj
}

func code(err error) policy.Code {
	var e *appattest.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return "not an *Error"
}

// TestAppleGuideSample: Apple's published sample verifies against the embedded root at a
// time inside its leaf's validity, and is refused for another app, in development, one
// second after its leaf expired, and with another clientDataHash.
func TestAppleGuideSample(t *testing.T) {
	obj := guideObject(t)
	keyID, _ := base64.StdEncoding.DecodeString(guideKeyID)
	at := time.Date(2026, 4, 21, 0, 0, 0, 0, time.UTC)
	notAfter := time.Date(2026, 4, 23, 18, 13, 12, 0, time.UTC)
	p := appattest.Params{AppID: guideAppID, Env: appattest.Production}
	got, err := appattest.VerifyAttestation(obj, keyID, []byte(guideCDH), p, at)
	if err != nil {
		t.Fatalf("Apple's sample refused: %v", err)
	}
	if !bytes.Equal(got.KeyID[:], keyID) || len(got.Receipt) == 0 {
		t.Fatalf("key id %x, receipt %d bytes", got.KeyID, len(got.Receipt))
	}
	if _, err := appattest.VerifyAttestation(obj, keyID, []byte(guideCDH), p, notAfter); err != nil {
		t.Fatalf("at NotAfter: %v", err)
	}
	for _, tc := range []struct {
		name string
		p    appattest.Params
		cdh  string
		at   time.Time
		want policy.Code
		step appattest.Step
	}{
		{"other app", appattest.Params{AppID: "1234567890.com.example.other"}, guideCDH, at, policy.AppTampered, appattest.StepRPID},
		{"development", appattest.Params{AppID: guideAppID, Env: appattest.Development}, guideCDH, at, policy.AttestationFailed, appattest.StepAAGUID},
		{"leaf expired", p, guideCDH, notAfter.Add(time.Second), policy.AttestationExpired, appattest.StepChain},
		{"hashed challenge", p, string(sha256sum(guideCDH)), at, policy.AttestationFailed, appattest.StepNonce},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := appattest.VerifyAttestation(obj, keyID, []byte(tc.cdh), tc.p, tc.at)
			var e *appattest.Error
			if !errors.As(err, &e) || e.Code != tc.want || e.Step != tc.step {
				t.Fatalf("err %v, want %s at %s", err, tc.want, tc.step)
			}
		})
	}
}

func sha256sum(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }

// TestEmbeddedRoot: the embedded root is Apple's (its SHA-256, typed from several
// independent publications of it) and verifies its own signature.
func TestEmbeddedRoot(t *testing.T) {
	pemBytes, err := os.ReadFile("apple-app-attestation-root-ca.pem")
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(pemBytes)
	sum := sha256.Sum256(block.Bytes)
	if hex.EncodeToString(sum[:]) != "1cb9823ba28ba6ad2d33a006941de2ae4f513ef1d4e831b9f7e0fa7b6242c932" {
		t.Fatalf("embedded root digest %x", sum)
	}
}

// TestVerifyAttestation: a chain and keys made in the test, each rule broken once.
func TestVerifyAttestation(t *testing.T) {
	ca := appattesttest.NewCA(t0.AddDate(-1, 0, 0))
	dev := appattesttest.NewDevice()
	cdh := sha256sum("challenge")
	notAfter := t0.Add(48 * time.Hour)
	base := appattesttest.Attestation{AppID: appID, ClientDataHash: cdh, NotAfter: notAfter}
	p := appattest.Params{AppID: appID, Roots: ca.Pool}
	other := appattesttest.NewDevice()
	for _, tc := range []struct {
		name   string
		edit   func(*appattesttest.Attestation)
		p      func(*appattest.Params)
		keyID  []byte
		cdh    []byte
		at     time.Time
		want   policy.Code
		step   appattest.Step
		noRoot bool
	}{
		{name: "valid"},
		{name: "at leaf NotAfter", at: notAfter},
		{name: "leaf NotAfter + 1s", at: notAfter.Add(time.Second), want: policy.AttestationExpired, step: appattest.StepChain},
		{name: "leaf not yet valid", edit: func(a *appattesttest.Attestation) { a.NotBefore = t0.Add(time.Second) }, want: policy.AttestationFailed, step: appattest.StepChain},
		{name: "leaf NotBefore = now", edit: func(a *appattesttest.Attestation) { a.NotBefore = t0 }},
		{name: "other root", noRoot: true, want: policy.AttestationFailed, step: appattest.StepChain},
		{name: "apple root for a test chain", p: func(p *appattest.Params) { p.Roots = nil }, want: policy.AttestationFailed, step: appattest.StepChain},
		{name: "wrong rp id", edit: func(a *appattesttest.Attestation) { a.AppID = "ABCDE12345.com.example.ap" }, want: policy.AppTampered, step: appattest.StepRPID},
		{name: "other team", edit: func(a *appattesttest.Attestation) { a.AppID = "ZZZZZ12345.com.example.app" }, want: policy.AppTampered, step: appattest.StepRPID},
		{name: "development aaguid, production configured", edit: func(a *appattesttest.Attestation) { a.AAGUID = appattesttest.AAGUIDDevelopment }, want: policy.AttestationFailed, step: appattest.StepAAGUID},
		{name: "production aaguid, development configured", p: func(p *appattest.Params) { p.Env = appattest.Development }, want: policy.AttestationFailed, step: appattest.StepAAGUID},
		{name: "development both", edit: func(a *appattesttest.Attestation) { a.AAGUID = appattesttest.AAGUIDDevelopment }, p: func(p *appattest.Params) { p.Env = appattest.Development }},
		{name: "bad nonce", edit: func(a *appattesttest.Attestation) { a.Nonce = sha256sum("x") }, want: policy.AttestationFailed, step: appattest.StepNonce},
		{name: "short nonce", edit: func(a *appattesttest.Attestation) { a.Nonce = []byte{1, 2} }, want: policy.InvalidAttestation, step: appattest.StepNonce},
		{name: "other clientDataHash", cdh: sha256sum("other challenge"), want: policy.AttestationFailed, step: appattest.StepNonce},
		{name: "key id of another key", keyID: other.KeyID, want: policy.AttestationFailed, step: appattest.StepKeyID},
		{name: "key id truncated", keyID: dev.KeyID[:31], want: policy.AttestationFailed, step: appattest.StepKeyID},
		{name: "leaf certifies another key", edit: func(a *appattesttest.Attestation) { a.CertKey = &other.Key.PublicKey }, keyID: other.KeyID, want: policy.AttestationFailed, step: appattest.StepCredential},
		{name: "counter 1", edit: func(a *appattesttest.Attestation) { a.Counter = 1 }, want: policy.AttestationFailed, step: appattest.StepCounter},
		{name: "credential id differs", edit: func(a *appattesttest.Attestation) { a.CredID = other.KeyID }, want: policy.AttestationFailed, step: appattest.StepCredential},
		{name: "fmt packed", edit: func(a *appattesttest.Attestation) { a.Fmt = "packed" }, want: policy.InvalidAttestation, step: appattest.StepFormat},
		{name: "extension map after key", edit: func(a *appattesttest.Attestation) { a.Trailing = appattesttest.Marshal(map[string]int{"x": 1}) }},
		{name: "garbage after key", edit: func(a *appattesttest.Attestation) { a.Trailing = []byte{0xff} }, want: policy.InvalidAttestation, step: appattest.StepAuthData},
		{name: "two items after key", edit: func(a *appattesttest.Attestation) { a.Trailing = []byte{0x01, 0x02} }, want: policy.InvalidAttestation, step: appattest.StepAuthData},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := base
			if tc.edit != nil {
				tc.edit(&a)
			}
			pp := p
			if tc.p != nil {
				tc.p(&pp)
			}
			if tc.noRoot {
				pp.Roots = appattesttest.NewCA(t0.AddDate(-1, 0, 0)).Pool
			}
			keyID, cd, at := dev.KeyID, cdh, t0
			if tc.keyID != nil {
				keyID = tc.keyID
			}
			if tc.cdh != nil {
				cd = tc.cdh
			}
			if !tc.at.IsZero() {
				at = tc.at
			}
			obj := ca.Attest(dev, a, t0)
			got, err := appattest.VerifyAttestation(obj, keyID, cd, pp, at)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if !got.PublicKey.Equal(&dev.Key.PublicKey) {
					t.Fatal("returned another key")
				}
				return
			}
			var e *appattest.Error
			if !errors.As(err, &e) || e.Code != tc.want || e.Step != tc.step {
				t.Fatalf("err %v, want %s at %q", err, tc.want, tc.step)
			}
		})
	}
}

func hexs(b []byte) string { return hex.EncodeToString(b) }
