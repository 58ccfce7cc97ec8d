package attest_test

import (
	"context"
	"testing"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/attest"
	"github.com/gatehouse/gatehouse/policy/attest/attesttest"
)

// FuzzCheck: no credential, however malformed, panics or passes, and every refusal is a
// code of the failure mapping.
func FuzzCheck(f *testing.F) {
	k := attesttest.NewKey(f, "ES256", "ES256")
	p := benchProvider(attest.SignedToken, k, nil)
	valid := attesttest.Sign(f, k, attesttest.Claims{"iss": signedIssuer, "aud": "bench", "exp": now.Unix() + 60}, nil)
	for _, s := range []string{valid, "", ".", "..", "a.b.c", "e30.e30.", valid[:len(valid)-3], valid + "x"} {
		f.Add(s)
	}
	allowed := map[policy.Code]bool{policy.InvalidAttestation: true, policy.AttestationFailed: true, policy.AttestationExpired: true,
		policy.DeviceCompromised: true, policy.EmulatorDetected: true, policy.DebuggerDetected: true, policy.AppTampered: true}
	f.Fuzz(func(t *testing.T, tok string) {
		o := p.Check(context.Background(), now, request("", "/"), tok, nil)
		if o.Err != nil {
			t.Fatalf("undecided: %v", o.Err)
		}
		if o.Code == "" && tok != valid {
			t.Fatalf("accepted %q", tok)
		}
		if o.Code != "" && !allowed[o.Code] {
			t.Fatalf("code %s", o.Code)
		}
	})
}
