package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/attest/playintegrity/pitest"
)

// TestPlayIntegrityReplayE2E: a Play Integrity token is accepted once. The same request
// replayed with the same token and binding value (what a replay proxy sends) is refused,
// as is the token on a request without a binding header configured; a fresh token for
// the same request is accepted.
func TestPlayIntegrityReplayE2E(t *testing.T) {
	k := pitest.NewKeys(t)
	dir := t.TempDir()
	for name, s := range map[string]string{"pi-decryption.key": k.DecryptionText() + "\n", "pi-verification.pem": k.VerificationPEM(t)} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	_, certHex := pitest.Cert("release")
	cfg := strings.ReplaceAll(piE2EConfig, "{{CERT}}", certHex)
	// A second app over the same keys, without a binding header: a token binds only the
	// method and target there.
	cfg = strings.Replace(cfg, "endpoints:\n  - {name: orders", `  - name: unbound
    app_token_sha256: ["{{T:unbound}}"]
    endpoints: ["*"]
    attestation:
      required: true
      providers:
        - type: play_integrity
          play_integrity:
            package_name: `+piE2EPackage+`
            decryption_key_file: pi-decryption.key
            verification_key_file: pi-verification.pem
endpoints:
  - {name: orders`, 1)
	srv := startServer(t, "--config", writeConfig(t, dir, cfg))
	srv.waitReady(t)

	const target = "/v1/orders?page=2"
	issued := time.Now()
	bound := pitest.Binding("GET", target, "n-1")
	tok := pitest.Token(t, k, pitest.Good(piE2EPackage, bound, issued))
	fresh := pitest.Token(t, k, pitest.Good(piE2EPackage, bound, issued.Add(-time.Millisecond)))
	unboundTok := pitest.Token(t, k, pitest.Good(piE2EPackage, pitest.Binding("GET", target, ""), issued))
	req := func(tok string) request {
		return request{path: target, headers: with(app("play"), "x-play-integrity", tok, "x-request-nonce", "n-1")}
	}
	unbound := request{path: target, headers: with(app("unbound"), "x-play-integrity", unboundTok)}
	runAttestCases(t, srv, []attestCase{
		atAllow("first_use", req(tok), ""),
		atDeny("replayed", req(tok), policy.AttestationFailed),
		atAllow("fresh_token", req(fresh), ""),
		atDeny("replayed_again", req(tok), policy.AttestationFailed),
		atAllow("unbound/first_use", unbound, ""),
		atDeny("unbound/replayed", unbound, policy.AttestationFailed),
	})
}
