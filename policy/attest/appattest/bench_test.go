package appattest_test

import (
	"testing"

	"github.com/gatehouse/gatehouse/policy/attest/appattest"
	"github.com/gatehouse/gatehouse/policy/attest/appattest/appattesttest"
)

// BenchmarkVerifyAttestation: one enrolment's verification (CBOR, chain, nonce, key).
func BenchmarkVerifyAttestation(b *testing.B) {
	ca := appattesttest.NewCA(t0.AddDate(-1, 0, 0))
	dev := appattesttest.NewDevice()
	cdh := sha256sum("challenge")
	obj := ca.Attest(dev, appattesttest.Attestation{AppID: appID, ClientDataHash: cdh}, t0)
	p := appattest.Params{AppID: appID, Roots: ca.Pool}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := appattest.VerifyAttestation(obj, dev.KeyID, cdh, p, t0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyAssertion: one assertion's verification (CBOR and one ECDSA P-256
// verification), without the store.
func BenchmarkVerifyAssertion(b *testing.B) {
	dev := appattesttest.NewDevice()
	cdh := sha256sum("GET\n/v1/hello\n1")
	a := dev.Assert(appID, 2, cdh)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := appattest.VerifyAssertion(a, cdh, &dev.Key.PublicKey, appID, 1); err != nil {
			b.Fatal(err)
		}
	}
}
