package appattest_test

import (
	"testing"

	"github.com/gatehouse/gatehouse/policy/attest/appattest"
	"github.com/gatehouse/gatehouse/policy/attest/appattest/appattesttest"
)

// FuzzAttestation: no input panics or passes without a valid chain, and every refusal is
// an *Error with a code.
func FuzzAttestation(f *testing.F) {
	ca := appattesttest.NewCA(t0.AddDate(-1, 0, 0))
	dev := appattesttest.NewDevice()
	f.Add(ca.Attest(dev, appattesttest.Attestation{AppID: appID}, t0))
	f.Add(guideObject(f))
	f.Add(nested(50))
	p := appattest.Params{AppID: appID, Roots: appattesttest.NewCA(t0).Pool}
	f.Fuzz(func(t *testing.T, obj []byte) {
		_, err := appattest.VerifyAttestation(obj, dev.KeyID, nil, p, t0)
		var e *appattest.Error
		if err == nil || !asError(err, &e) || e.Code == "" {
			t.Fatalf("err %v", err)
		}
	})
}

// FuzzAssertion: no input panics, and none verifies without the device's signature.
func FuzzAssertion(f *testing.F) {
	dev := appattesttest.NewDevice()
	other := appattesttest.NewDevice()
	f.Add(dev.Assert(appID, 1, nil))
	f.Add(nested(50))
	f.Fuzz(func(t *testing.T, a []byte) {
		_, err := appattest.VerifyAssertion(a, nil, &other.Key.PublicKey, appID, 0)
		var e *appattest.Error
		if err == nil || !asError(err, &e) || e.Code == "" {
			t.Fatalf("err %v", err)
		}
	})
}
