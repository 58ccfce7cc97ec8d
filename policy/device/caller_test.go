package device_test

import (
	"context"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/attest"
	"github.com/gatehouse/gatehouse/policy/attest/attesttest"
	"github.com/gatehouse/gatehouse/policy/device"
	"github.com/gatehouse/gatehouse/policy/jwks"
)

// TestTrustedDeviceHeaderNeverNamesTheCaller: the caller id scopes a client's
// idempotency keys (a stored response is replayed to the same caller). A device id the
// client merely claims in a trusted x-device-id header must not name the caller, or a
// client could set another's device id and be answered with that client's stored
// responses; only an attested device id does. The digest is printf
// 'a\0device\0attested-1' | sha256sum.
func TestTrustedDeviceHeaderNeverNamesTheCaller(t *testing.T) {
	key := attesttest.NewKey(t, "ES256", "k1")
	provider := attest.New(attest.Config{Kind: attest.SignedToken, App: "a", CacheID: "t", Issuer: "https://attest.test",
		Algorithms: []string{"ES256"}, Keys: jwks.NewStatic(jwks.Key{ID: "k1", Alg: "ES256", Key: key.Private.Public()}),
		Claims: attest.ClaimNames{DeviceID: "device_id"}})
	claims := attesttest.Claims{"iss": "https://attest.test", "exp": now.Add(time.Minute).Unix()}
	withID := attesttest.Sign(t, key, attesttest.With(claims, "device_id", "attested-1"), nil)
	ch := device.New(device.Config{App: "a", Providers: []*attest.Provider{provider}, TrustDeviceHeader: true})
	app := &policy.App{Name: "a", TokenHashes: []policy.Hash{policy.HashCredential("a")}, AllEndpoints: true, Device: ch, Caller: true}
	r, err := policy.NewRules(policy.Options{}, []*policy.App{app}, []*policy.Endpoint{{Name: "api", Path: "/api"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, device, caller string
		headers              []string
	}{
		{"attested", "attested-1", "f6e45e2e35924c4b45fdf516a88c169e1ac01f6ef5f67a61917d321890774bd6", []string{"x-attestation-token", withID}},
		{"claimed in the trusted header", "attested-1", "", []string{"x-device-id", "attested-1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := r.Decide(context.Background(), now, attesttest.Request("a", "/api", "192.0.2.10", tc.headers...))
			attesttest.Want(t, d, "")
			if d.DeviceID != tc.device || d.Caller != tc.caller {
				t.Fatalf("device %q caller %q, want %q and %q", d.DeviceID, d.Caller, tc.device, tc.caller)
			}
		})
	}
}
