package policy_test

import (
	"context"
	"testing"

	"github.com/gatehouse/gatehouse/policy"
)

// TestCallerID: an allowed decision names its caller by an opaque, stable id: the hex
// SHA-256 of app, NUL, kind, NUL, id, where the kind is user (provider:sub), else
// device (the verified device id), else license (the presented key's hash), else none.
// The digests were computed with sha256sum, e.g. printf 'shop\0user\0users:u1'.
func TestCallerID(t *testing.T) {
	t.Run("user", func(t *testing.T) {
		f := newUserFixture(t)
		r := f.rules(t, policy.JWTVerifier{AnyIssuer: true, AnyAudience: true})
		d := f.decide(r, f.sign(t, nil))
		wantCode(t, d, "")
		if want := "a5da0fd5f6d1746aec70642908cf4c3be33f3d7c3ff1f1555b6be4601392ebbe"; d.Caller != want {
			t.Fatalf("caller %q, want %q", d.Caller, want)
		}
	})
	for _, tc := range []struct {
		name   string
		device policy.DeviceVerdict
		want   string
	}{
		{"device", policy.DeviceVerdict{DeviceID: "dev-1", License: "lic-hash"}, "c24736bb71b36526f725f3e34aa8492538747dfa0b60deac75107b830958e48b"},
		{"license", policy.DeviceVerdict{License: "lic-hash"}, "4191df134015d6341da5b603950bb5ff5c59573710c2e6a0f75c95ff510e0145"},
		{"none", policy.DeviceVerdict{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newTestRules(t, policy.Options{}, &policy.App{Device: fakeDevice{device: tc.device}}, &policy.Endpoint{Name: "e", Path: "/e"})
			d := r.Decide(context.Background(), t0, get("/e"))
			wantCode(t, d, "")
			if d.Caller != tc.want {
				t.Fatalf("caller %q, want %q", d.Caller, tc.want)
			}
		})
	}
}
