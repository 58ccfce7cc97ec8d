package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/gatehouse/gatehouse/policy/attest/playintegrity/pitest"
)

// sessPIConfig is an Android app that requires attestation everywhere: a Play Integrity
// token bound to x-request-nonce, or the session one was exchanged for. {{CERT}} is the
// release certificate's hex digest.
const sessPIConfig = `
sessions:
  keys: [{id: k1, file: k1.pem}]
  active_key: k1
apps:
  - name: android
    app_token_sha256: ["{{T:android}}"]
    endpoints: ["*"]
    attestation:
      required: true
      providers:
        - type: session
        - type: play_integrity
          binding_header: x-request-nonce
          max_age: 2m
          signing_certs: ["{{CERT}}"]
          play_integrity:
            package_name: ` + piE2EPackage + `
            decryption_key_file: pi-decryption.key
            verification_key_file: pi-verification.pem
            min_device_level: device
endpoints:
  - {name: exchange, path: /v1/attest/exchange, methods: [POST], serve: exchange}
  - {name: refresh, path: /v1/attest/refresh, methods: [POST], serve: refresh}
  - {name: data, path: /v1/data, methods: [GET]}
`

// pmaRefusal checks a protectmyapi-dialect denial: HTTP status and error.code, typed
// from 000_*.txt.
func pmaRefusal(t *testing.T, resp *authv3.CheckResponse, status int, code string) {
	t.Helper()
	d := resp.GetDeniedResponse()
	if d == nil || int(d.GetStatus().GetCode()) != status {
		t.Fatalf("want HTTP %d %s: %s", status, code, describe(resp))
	}
	var b struct {
		Success *bool `json:"success"`
		Error   struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(d.GetBody()), &b); err != nil || b.Success == nil || *b.Success || b.Error.Code != code {
		t.Fatalf("body %s, want error.code %q", d.GetBody(), code)
	}
}

// TestSessionsPlayIntegrityE2E: a Play Integrity token (minted here as Google does, bound
// to the exchange request) is a proof the exchange accepts: the session it returns is then
// the credential of a request that requires attestation. A bad verdict, a token bound to
// another request, another app's keys and no proof at all are refused with their codes.
func TestSessionsPlayIntegrityE2E(t *testing.T) {
	k := pitest.NewKeys(t)
	dir := t.TempDir()
	_, k1cfg := sessionsSetup(t, "") // for its k1.pem
	k1, err := os.ReadFile(filepath.Join(filepath.Dir(k1cfg), "k1.pem"))
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"k1.pem": k1, "pi-decryption.key": []byte(k.DecryptionText() + "\n"),
		"pi-verification.pem": []byte(k.VerificationPEM(t))} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	_, certHex := pitest.Cert("release")
	srv := startServer(t, "--config", writeConfig(t, dir, strings.ReplaceAll(sessPIConfig, "{{CERT}}", certHex)))
	srv.waitReady(t)

	issued := time.Now() // the server's clock is the wall clock; the window is 2m
	bind := pitest.Binding("POST", "/v1/attest/exchange", "n-1")
	good := func() pitest.Payload { return pitest.Good(piE2EPackage, bind, issued) }
	exchange := func(tok string) *authv3.CheckResponse {
		return sessPost(t, srv, "android", "/v1/attest/exchange", "", "x-play-integrity", tok, "x-request-nonce", "n-1")
	}

	s := answer(t, exchange(pitest.Token(t, k, good())))
	if s.SessionToken == "" || s.RefreshToken == "" {
		t.Fatalf("exchange answered %+v, want a session", s)
	}
	// Play Integrity names no device: neither does its session.
	if dev := allowedDevice(t, sessPost(t, srv, "android", "/v1/data", "", "x-session-token", s.SessionToken)); dev != "" {
		t.Fatalf("session request forwarded device id %q, want none", dev)
	}
	pmaRefusal(t, sessPost(t, srv, "android", "/v1/data", ""), 403, "ATTESTATION_REQUIRED")
	// The session refreshes like any other.
	r := answer(t, sessPost(t, srv, "android", "/v1/attest/refresh", `{"refresh_token":"`+s.RefreshToken+`"}`))
	if r.SessionID != s.SessionID || r.SessionToken == "" {
		t.Fatalf("refresh answered %+v, want the same session", r)
	}
	allowedDevice(t, sessPost(t, srv, "android", "/v1/data", "", "x-session-token", r.SessionToken))

	for _, tc := range []struct {
		name, tok, code string
	}{
		{"emulator", pitest.Token(t, k, good().Set("deviceIntegrity", "deviceRecognitionVerdict", []string{"MEETS_VIRTUAL_INTEGRITY"})), "EMULATOR_DETECTED"},
		{"basic integrity only", pitest.Token(t, k, good().Set("deviceIntegrity", "deviceRecognitionVerdict", []string{"MEETS_BASIC_INTEGRITY"})), "DEVICE_COMPROMISED"},
		{"unrecognized app", pitest.Token(t, k, good().Set("appIntegrity", "appRecognitionVerdict", "UNRECOGNIZED_VERSION")), "APP_TAMPERED"},
		{"bound to another request", pitest.Token(t, k, pitest.Good(piE2EPackage, pitest.Binding("GET", "/v1/data", "n-1"), issued)), "ATTESTATION_FAILED"},
		{"another app's keys", pitest.Token(t, pitest.NewKeys(t), good()), "ATTESTATION_FAILED"},
		{"too old", pitest.Token(t, k, pitest.Good(piE2EPackage, bind, issued.Add(-3*time.Minute))), "ATTESTATION_EXPIRED"},
		{"not a token", "not.a.token", "INVALID_ATTESTATION"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pmaRefusal(t, exchange(tc.tok), 403, tc.code)
		})
	}
	pmaRefusal(t, sessPost(t, srv, "android", "/v1/attest/exchange", "", "x-request-nonce", "n-1"), 403, "ATTESTATION_REQUIRED")
}
