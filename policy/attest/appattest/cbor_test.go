package appattest_test

import (
	"bytes"
	"testing"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/attest/appattest"
	"github.com/gatehouse/gatehouse/policy/attest/appattest/appattesttest"
)

// nested returns n nested one-element CBOR arrays around 0, typed by hand: 0x81 is an
// array of one element.
func nested(n int) []byte { return append(bytes.Repeat([]byte{0x81}, n), 0x00) }

// TestMalformedCBOR: every malformed input is INVALID_ATTESTATION at the size or CBOR
// step, never a panic; sizes are bounded before parsing, at the exact limit and one byte
// over.
func TestMalformedCBOR(t *testing.T) {
	ca := appattesttest.NewCA(t0.AddDate(-1, 0, 0))
	dev := appattesttest.NewDevice()
	good := ca.Attest(dev, appattesttest.Attestation{AppID: appID}, t0)
	p := appattest.Params{AppID: appID, Roots: ca.Pool}
	withField := appattesttest.Marshal(map[string]any{"fmt": "apple-appattest", "attStmt": map[string]any{}, "authData": []byte{}, "extra": 1})
	for _, tc := range []struct {
		name string
		obj  []byte
		step appattest.Step
	}{
		{"empty", nil, appattest.StepCBOR},
		{"truncated by one byte", good[:len(good)-1], appattest.StepCBOR},
		{"truncated in half", good[:len(good)/2], appattest.StepCBOR},
		{"trailing byte", append(append([]byte(nil), good...), 0x00), appattest.StepCBOR},
		{"oversized: limit + 1", bytes.Repeat([]byte{0}, appattest.MaxAttestationBytes+1), appattest.StepSize},
		{"deeply nested", nested(10000), appattest.StepCBOR},
		{"nested 5 levels", nested(5), appattest.StepCBOR},
		{"indefinite-length map", []byte{0xbf, 0x63, 'f', 'm', 't', 0x60, 0xff}, appattest.StepCBOR},
		{"tagged", []byte{0xc0, 0x60}, appattest.StepCBOR},
		{"duplicate key", []byte{0xa2, 0x63, 'f', 'm', 't', 0x60, 0x63, 'f', 'm', 't', 0x60}, appattest.StepCBOR},
		{"unknown field", withField, appattest.StepCBOR},
		{"fmt not a string", []byte{0xa1, 0x63, 'f', 'm', 't', 0x01}, appattest.StepCBOR},
		{"huge byte string length", []byte{0xa1, 0x68, 'a', 'u', 't', 'h', 'D', 'a', 't', 'a', 0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, appattest.StepCBOR},
		{"array not map", []byte{0x80}, appattest.StepCBOR},
		{"17 map pairs", many(17), appattest.StepCBOR},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := appattest.VerifyAttestation(tc.obj, dev.KeyID, nil, p, t0)
			var e *appattest.Error
			if !asError(err, &e) || e.Code != policy.InvalidAttestation || e.Step != tc.step {
				t.Fatalf("err %v, want INVALID_ATTESTATION at %q", err, tc.step)
			}
		})
	}
	// At exactly the limit the size check passes (the object then fails to parse).
	atLimit := bytes.Repeat([]byte{0}, appattest.MaxAttestationBytes)
	if _, err := appattest.VerifyAttestation(atLimit, dev.KeyID, nil, p, t0); err == nil || err.(*appattest.Error).Step != appattest.StepCBOR {
		t.Fatalf("at the limit: %v", err)
	}
}

// many returns a CBOR map of n pairs int → int, typed by hand (n < 24).
func many(n int) []byte {
	b := []byte{0xa0 + byte(n)}
	for i := range n {
		b = append(b, byte(i), 0x00)
	}
	return b
}
