package policy_test

import (
	"context"
	"testing"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/jwks"
)

// TestCallerID: an allowed decision on an app or endpoint with a response phase names its caller by an opaque, stable id: the hex
// SHA-256 of app, NUL, kind, NUL, id, where the kind is user (provider:sub), else
// device (the verified device id), else license (the presented key's hash), else none.
// The digests were computed with sha256sum, e.g. printf 'shop\0user\0users:u1'.
func TestCallerID(t *testing.T) {
	t.Run("user", func(t *testing.T) {
		f := newUserFixture(t)
		v := &policy.JWTVerifier{Name: "users", AnyIssuer: true, AnyAudience: true, Algorithms: []string{"ES256"},
			Keys: jwks.NewStatic(jwks.Key{ID: "k1", Alg: "ES256", Key: &f.key.PublicKey})}
		app := &policy.App{Name: "shop", TokenHashes: []policy.Hash{policy.HashCredential("app-token")}, AllEndpoints: true}
		ep := &policy.Endpoint{Name: "profile", Path: "/v1/profile", User: &policy.UserAuth{Verifier: v}, Caller: true}
		r, err := policy.NewRules(policy.Options{Version: "v1"}, []*policy.App{app}, []*policy.Endpoint{ep})
		if err != nil {
			t.Fatal(err)
		}
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
		{"device", policy.DeviceVerdict{DeviceID: "dev-1", Attested: true, License: "lic-hash"}, "c24736bb71b36526f725f3e34aa8492538747dfa0b60deac75107b830958e48b"},
		// A device id the client only claims (a trusted device header) names no caller.
		{"claimed device", policy.DeviceVerdict{DeviceID: "dev-1", License: "lic-hash"}, "4191df134015d6341da5b603950bb5ff5c59573710c2e6a0f75c95ff510e0145"},
		{"license", policy.DeviceVerdict{License: "lic-hash"}, "4191df134015d6341da5b603950bb5ff5c59573710c2e6a0f75c95ff510e0145"},
		{"none", policy.DeviceVerdict{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newTestRules(t, policy.Options{}, &policy.App{Device: fakeDevice{device: tc.device}, Caller: true}, &policy.Endpoint{Name: "e", Path: "/e"})
			d := r.Decide(context.Background(), t0, get("/e"))
			wantCode(t, d, "")
			if d.Caller != tc.want {
				t.Fatalf("caller %q, want %q", d.Caller, tc.want)
			}
		})
	}
	// Not asked for (no response phase on the app or endpoint): not computed.
	r := newTestRules(t, policy.Options{}, &policy.App{Device: fakeDevice{device: policy.DeviceVerdict{DeviceID: "dev-1"}}}, &policy.Endpoint{Name: "e", Path: "/e"})
	if d := r.Decide(context.Background(), t0, get("/e")); d.Caller != "" {
		t.Fatalf("caller %q computed without a response phase", d.Caller)
	}
}
