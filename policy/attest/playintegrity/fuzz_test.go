package playintegrity_test

import (
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/attest/playintegrity"
	"github.com/gatehouse/gatehouse/policy/attest/playintegrity/pitest"
	jose "github.com/go-jose/go-jose/v4"
)

// FuzzDecode feeds arbitrary tokens to the JWE layer: Decode never panics, refuses with
// one of the two documented codes, and accepts nothing but a token the keys made (GCM
// and the signature make forging one infeasible, so an accepted token carries the
// seeds' package).
func FuzzDecode(f *testing.F) {
	k := pitest.NewKeys(f)
	tok := pitest.Token(f, k, pitest.Good(pkg, pitest.Binding("GET", "/", ""), ts))
	f.Add(tok)
	f.Add(flip(tok, 3))
	f.Add(strings.Join(strings.Split(tok, ".")[:4], "."))
	f.Add(pitest.TokenRaw(f, k, []byte(`{"requestDetails":{"requestPackageName":"`+pkg+`"},"a":[[[[1]]]]}`), jose.ES256, jose.A256KW, jose.A256GCM))
	f.Add(pitest.TokenRaw(f, k, []byte(`{}`), jose.ES256, jose.DIRECT, jose.A256GCM))
	f.Add("eyJhbGciOiJBMjU2S1ciLCJlbmMiOiJBMjU2R0NNIn0....")
	f.Add("")
	keys := k.Verifier()
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > 1<<16 {
			return // the provider's size limit comes first
		}
		p, err := playintegrity.Decode(s, keys)
		switch {
		case err != nil && err.Code != policy.InvalidAttestation && err.Code != policy.AttestationFailed:
			t.Fatalf("code %s", err.Code)
		case err == nil && p.RequestDetails.RequestPackageName != pkg:
			t.Fatalf("accepted a token the keys did not make: %+v", p)
		}
	})
}

// FuzzPayload feeds arbitrary payloads through a genuine JWE and JWS, reaching the JSON
// decoding and the verdict checks: no panic, and a refusal is INVALID_ATTESTATION.
func FuzzPayload(f *testing.F) {
	k := pitest.NewKeys(f)
	f.Add([]byte(`{"requestDetails":{"requestPackageName":"` + pkg + `","timestampMillis":"1"},"deviceIntegrity":{"deviceRecognitionVerdict":["MEETS_VIRTUAL_INTEGRITY"]}}`))
	f.Add([]byte(`{"appIntegrity":{"certificateSha256Digest":["@@@",""]}}`))
	f.Add([]byte(`[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]`))
	f.Add([]byte(`{"a":"\"[[[[[[[[[[[[[[[[[[[[[[["}`))
	f.Add([]byte(`{"requestDetails":{"timestampMillis":99999999999999999999999}}`))
	keys := k.Verifier()
	pol := &playintegrity.Policy{PackageName: pkg, MinLevel: playintegrity.Strong, SigningCerts: [][32]byte{{1}}, RequireLicensed: true, PlayProtect: []string{"NO_ISSUES"}}
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) > 1<<14 {
			return
		}
		p, err := playintegrity.Decode(pitest.TokenRaw(t, k, body, jose.ES256, jose.A256KW, jose.A256GCM), keys)
		if err != nil {
			if err.Code != policy.InvalidAttestation {
				t.Fatalf("a genuine token refused with %s (%s)", err.Code, err.Reason)
			}
			return
		}
		pol.Genuine(p)
		pol.Verdicts(p)
		playintegrity.Binding(p)
	})
}
