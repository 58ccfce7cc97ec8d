package appattest_test

import (
	"errors"
	"testing"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/attest/appattest"
	"github.com/gatehouse/gatehouse/policy/attest/appattest/appattesttest"
)

func asError(err error, e **appattest.Error) bool { return errors.As(err, e) }

// TestVerifyAssertion: the counter must be strictly above the stored one (equal and
// lower refused, +1 accepted), signed by the enrolled key, for this app, over this
// clientDataHash.
func TestVerifyAssertion(t *testing.T) {
	dev := appattesttest.NewDevice()
	other := appattesttest.NewDevice()
	cdh := sha256sum("GET\n/v1/hello\n1700000000")
	const prev = 41
	for _, tc := range []struct {
		name    string
		a       []byte
		cdh     []byte
		want    policy.Code
		step    appattest.Step
		counter uint32
	}{
		{name: "counter + 1", a: dev.Assert(appID, prev+1, cdh), counter: prev + 1},
		{name: "counter jumps", a: dev.Assert(appID, 1000, cdh), counter: 1000},
		{name: "counter max", a: dev.Assert(appID, 1<<32-1, cdh), counter: 1<<32 - 1},
		{name: "counter equal", a: dev.Assert(appID, prev, cdh), want: policy.AttestationFailed, step: appattest.StepCounter},
		{name: "counter lower", a: dev.Assert(appID, prev-1, cdh), want: policy.AttestationFailed, step: appattest.StepCounter},
		{name: "counter 0", a: dev.Assert(appID, 0, cdh), want: policy.AttestationFailed, step: appattest.StepCounter},
		{name: "wrong key", a: other.Assert(appID, prev+1, cdh), want: policy.AttestationFailed, step: appattest.StepSignature},
		{name: "wrong clientDataHash", a: dev.Assert(appID, prev+1, sha256sum("GET\n/v1/hello\n1700000001")), want: policy.AttestationFailed, step: appattest.StepSignature},
		{name: "wrong app", a: dev.Assert("ABCDE12345.com.example.other", prev+1, cdh), want: policy.AppTampered, step: appattest.StepRPID},
		{name: "truncated", a: dev.Assert(appID, prev+1, cdh)[:20], want: policy.InvalidAttestation, step: appattest.StepCBOR},
		{name: "short authenticatorData", a: appattesttest.Marshal(map[string]any{"signature": []byte{1}, "authenticatorData": make([]byte, 36)}), want: policy.InvalidAttestation, step: appattest.StepAuthData},
		{name: "oversized", a: make([]byte, appattest.MaxAssertionBytes+1), want: policy.InvalidAttestation, step: appattest.StepSize},
		{name: "deeply nested", a: nested(100), want: policy.InvalidAttestation, step: appattest.StepCBOR},
		{name: "signature over garbage", a: appattesttest.Marshal(map[string]any{"signature": []byte{0x30, 0x00}, "authenticatorData": make([]byte, 37)}), want: policy.AttestationFailed, step: appattest.StepSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cd := cdh
			if tc.cdh != nil {
				cd = tc.cdh
			}
			n, err := appattest.VerifyAssertion(tc.a, cd, &dev.Key.PublicKey, appID, prev)
			if tc.want == "" {
				if err != nil || n != tc.counter {
					t.Fatalf("got %d, %v; want %d", n, err, tc.counter)
				}
				return
			}
			var e *appattest.Error
			if !asError(err, &e) || e.Code != tc.want || e.Step != tc.step {
				t.Fatalf("err %v, want %s at %q", err, tc.want, tc.step)
			}
		})
	}
}
