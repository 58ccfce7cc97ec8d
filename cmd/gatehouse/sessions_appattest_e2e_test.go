package main

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy/attest/appattest/appattesttest"
)

// sessAppAttestConfig is an iOS app that requires attestation everywhere: App Attest
// assertions, or the session an enrolment or an assertion was exchanged for.
const sessAppAttestConfig = `
sessions:
  keys: [{id: k1, file: k1.pem}]
  active_key: k1
apps:
  - name: ios
    dialect: protekt
    app_token_sha256: ["{{T:ios}}"]
    endpoints: ["*"]
    attestation:
      required: true
      providers:
        - type: session
        - type: app_attest
          app_attest: {app_id: ` + e2eAppID + `, root_ca_file: root.pem}
endpoints:
  - {name: challenge, path: /v1/attest/challenge, methods: [POST], serve: challenge}
  - {name: exchange, path: /v1/attest/exchange, methods: [POST], serve: exchange}
  - {name: data, path: /v1/data}
`

// TestSessionsAppAttestEnrolE2E: challenge → App Attest enrolment at the exchange (the
// challenge consumed once) → the session as the credential, with the app-scoped device id
// → an assertion of the enrolled key exchanged too.
func TestSessionsAppAttestEnrolE2E(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	ca := appattesttest.NewCA(now.AddDate(-1, 0, 0))
	_, k1cfg := sessionsSetup(t, "") // for its k1.pem
	k1, err := os.ReadFile(filepath.Join(filepath.Dir(k1cfg), "k1.pem"))
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"k1.pem": k1, "root.pem": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Root.Raw})} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	srv := startServer(t, "--config", writeConfig(t, dir, sessAppAttestConfig))
	srv.waitReady(t)

	dev := appattesttest.NewDevice()
	chal := answer(t, sessPost(t, srv, "ios", "/v1/attest/challenge", "")).Challenge
	cdh := sha256.Sum256([]byte(chal))
	obj := ca.Attest(dev, appattesttest.Attestation{AppID: e2eAppID, ClientDataHash: cdh[:]}, now)
	body, _ := json.Marshal(map[string]string{"key_id": base64.StdEncoding.EncodeToString(dev.KeyID),
		"attestation": base64.StdEncoding.EncodeToString(obj), "challenge": chal})

	// Without a proof the app's required attestation is not waived: nothing to exchange.
	if d := sessPost(t, srv, "ios", "/v1/attest/exchange", "").GetDeniedResponse(); d.GetStatus().GetCode() != 403 {
		t.Fatalf("exchange without a proof: %d %s", d.GetStatus().GetCode(), d.GetBody())
	}
	s := answer(t, sessPost(t, srv, "ios", "/v1/attest/exchange", string(body)))
	// The device id: hex SHA-256(app ‖ 0 ‖ key id), as the App Attest section documents.
	sum := sha256.Sum256([]byte("ios\x00" + string(dev.KeyID)))
	if got := allowedDevice(t, sessPost(t, srv, "ios", "/v1/data", "", "x-session-token", s.SessionToken)); got != hex.EncodeToString(sum[:]) {
		t.Fatalf("device id %q, want %x", got, sum)
	}
	// The challenge was consumed: the same enrolment again is refused.
	refusal(t, sessPost(t, srv, "ios", "/v1/attest/exchange", string(body)), 403, "access_denied")
	// A broken enrolment body is INVALID_ATTESTATION, never a 500.
	broken := strings.Replace(string(body), `"key_id":"`, `"key_id":"!`, 1)
	refusal(t, sessPost(t, srv, "ios", "/v1/attest/exchange", broken), 403, "access_denied")

	// An assertion of the enrolled key is a proof too.
	cdh2 := sha256.Sum256([]byte("POST\n/v1/attest/exchange\n"))
	s2 := answer(t, sessPost(t, srv, "ios", "/v1/attest/exchange", "",
		"x-app-attest-key-id", base64.StdEncoding.EncodeToString(dev.KeyID),
		"x-app-attest-assertion", base64.StdEncoding.EncodeToString(dev.Assert(e2eAppID, 1, cdh2[:]))))
	if s2.SessionID == s.SessionID || s2.SessionToken == "" {
		t.Fatalf("assertion exchange: %+v", s2)
	}
}
