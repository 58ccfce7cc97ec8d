package main

// End-to-end tests of the play_integrity provider: tokens made as Google makes them
// (keys generated here, written to the key files the configuration names), sent through
// the real gRPC server started by run(), each refusal with its documented status and body.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/attest/playintegrity/pitest"
	jose "github.com/go-jose/go-jose/v4"
)

const piE2EPackage = "com.example.shop"

// piE2EConfig: app "play" requires Play Integrity on every endpoint, binds tokens to
// x-request-nonce, and accepts only its release certificate; {{CERT}} is its hex digest.
const piE2EConfig = `
apps:
  - name: play
    app_token_sha256: ["{{T:play}}"]
    endpoints: ["*"]
    attestation:
      required: true
      providers:
        - type: play_integrity
          binding_header: x-request-nonce
          max_age: 2m
          signing_certs: ["{{CERT}}"]
          play_integrity:
            package_name: ` + piE2EPackage + `
            decryption_key_file: pi-decryption.key
            verification_key_file: pi-verification.pem
            min_device_level: device
            require_licensed: true
            play_protect: [NO_ISSUES, NO_DATA]
endpoints:
  - {name: orders, path: /v1/orders, methods: [GET, POST]}
`

// TestPlayIntegrityE2E: the provider's failure mapping over real gRPC Check requests.
func TestPlayIntegrityE2E(t *testing.T) {
	k := pitest.NewKeys(t)
	dir := t.TempDir()
	for name, s := range map[string]string{"pi-decryption.key": k.DecryptionText() + "\n", "pi-verification.pem": k.VerificationPEM(t)} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	_, certHex := pitest.Cert("release")
	srv := startServer(t, "--config", writeConfig(t, dir, strings.ReplaceAll(piE2EConfig, "{{CERT}}", certHex)))
	srv.waitReady(t)

	const target = "/v1/orders?page=2"
	bind := pitest.Binding("GET", target, "n-1")
	issued := time.Now() // the server's clock is the wall clock; the window is 2m
	good := func() pitest.Payload { return pitest.Good(piE2EPackage, bind, issued) }
	tok := pitest.Token(t, k, good())
	req := func(tok string, kv ...string) request {
		return request{path: target, headers: with(app("play"), append([]string{"x-play-integrity", tok, "x-request-nonce", "n-1"}, kv...)...)}
	}
	post := req(tok)
	post.method = "POST"
	segs := strings.Split(tok, ".")
	segs[3] = strings.Repeat("A", len(segs[3]))
	tampered := strings.Join(segs, ".")
	body := []byte(`{"requestDetails":{"requestPackageName":"` + piE2EPackage + `"}}`)

	runAttestCases(t, srv, []attestCase{
		atAllow("ok/standard", req(tok), ""),
		atAllow("ok/classic_nonce", req(pitest.Token(t, k, good().Set("requestDetails", "requestHash", nil).Set("requestDetails", "nonce", bind))), ""),
		atAllow("ok/strong_device", req(pitest.Token(t, k, good().Set("deviceIntegrity", "deviceRecognitionVerdict", []string{"MEETS_BASIC_INTEGRITY", "MEETS_DEVICE_INTEGRITY", "MEETS_STRONG_INTEGRITY"}))), ""),
		atAllow("ok/play_protect_no_data", req(pitest.Token(t, k, good().Set("environmentDetails", "playProtectVerdict", "NO_DATA"))), ""),

		atDeny("required/no_token", request{path: target, headers: app("play")}, policy.AttestationRequired),
		atDeny("malformed/not_a_jwe", req("not.a.token"), policy.InvalidAttestation),
		atDeny("malformed/oversized", req(strings.Repeat("A", 9000)), policy.InvalidAttestation),
		atDeny("malformed/rsa_oaep", req(pitest.TokenRaw(t, k, body, jose.ES256, jose.RSA_OAEP, jose.A256GCM)), policy.InvalidAttestation),
		atDeny("malformed/jws_hs256", req(pitest.TokenRaw(t, k, body, jose.HS256, jose.A256KW, jose.A256GCM)), policy.InvalidAttestation),
		atDeny("genuine/tampered_ciphertext", req(tampered), policy.AttestationFailed),
		atDeny("genuine/another_apps_keys", req(pitest.Token(t, pitest.NewKeys(t), good())), policy.AttestationFailed),
		atDeny("genuine/another_package", req(pitest.Token(t, k, pitest.Good("com.example.other", bind, issued))), policy.AttestationFailed),
		atDeny("binding/another_method", post, policy.AttestationFailed),
		atDeny("binding/another_nonce", req(tok, "x-request-nonce", "n-2"), policy.AttestationFailed),
		atDeny("binding/another_query", request{path: "/v1/orders?page=3", headers: req(tok).headers}, policy.AttestationFailed),
		atDeny("fresh/too_old", req(pitest.Token(t, k, pitest.Good(piE2EPackage, bind, issued.Add(-3*time.Minute)))), policy.AttestationExpired),
		atDeny("fresh/from_the_future", req(pitest.Token(t, k, pitest.Good(piE2EPackage, bind, issued.Add(10*time.Minute)))), policy.AttestationFailed),
		atDeny("verdict/emulator", req(pitest.Token(t, k, good().Set("deviceIntegrity", "deviceRecognitionVerdict", []string{"MEETS_VIRTUAL_INTEGRITY"}))), policy.EmulatorDetected),
		atDeny("verdict/basic_only", req(pitest.Token(t, k, good().Set("deviceIntegrity", "deviceRecognitionVerdict", []string{"MEETS_BASIC_INTEGRITY"}))), policy.DeviceCompromised),
		atDeny("verdict/no_device_verdict", req(pitest.Token(t, k, good().Set("deviceIntegrity", "deviceRecognitionVerdict", nil))), policy.DeviceCompromised),
		atDeny("verdict/unrecognized_version", req(pitest.Token(t, k, good().Set("appIntegrity", "appRecognitionVerdict", "UNRECOGNIZED_VERSION"))), policy.AppTampered),
		atDeny("verdict/resigned_app", req(pitest.Token(t, k, good().Set("appIntegrity", "certificateSha256Digest", []string{func() string { c, _ := pitest.Cert("attacker"); return c }()}))), policy.AppTampered),
		atDeny("verdict/unlicensed", req(pitest.Token(t, k, good().Set("accountDetails", "appLicensingVerdict", "UNLICENSED"))), policy.AttestationFailed),
		atDeny("verdict/play_protect_high_risk", req(pitest.Token(t, k, good().Set("environmentDetails", "playProtectVerdict", "HIGH_RISK"))), policy.DeviceCompromised),
	})

	t.Run("credential removed from the upstream request", func(t *testing.T) {
		resp, err := srv.check(t, req(pitest.Token(t, k, good()))) // tok was accepted once already
		if err != nil {
			t.Fatal(err)
		}
		ok := resp.GetOkResponse()
		if ok == nil {
			t.Fatalf("denied: %s", describe(resp))
		}
		removed := false
		for _, h := range ok.GetHeadersToRemove() {
			removed = removed || h == "x-play-integrity"
		}
		if !removed {
			t.Errorf("x-play-integrity not removed (removed %v)", ok.GetHeadersToRemove())
		}
	})
}
