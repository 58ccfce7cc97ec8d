package device_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/attest"
	"github.com/gatehouse/gatehouse/policy/attest/attesttest"
	"github.com/gatehouse/gatehouse/policy/device"
	"github.com/gatehouse/gatehouse/policy/jwks"
)

// recordingLimiter admits everything and records which device each request was counted on.
type recordingLimiter struct{ devices []string }

func (l *recordingLimiter) Limit(_ context.Context, _ time.Time, req policy.LimitRequest) (policy.LimitResult, error) {
	l.devices = append(l.devices, req.Device)
	return policy.LimitResult{}, nil
}

// TestUnattestedDeviceHeaderNeverTrustedWhereAttestationIsRequired: an app that trusts the
// client's x-device-id header still never takes it as the device id on an endpoint that
// requires attestation (by its own setting or the app's), neither for the upstream header
// nor for the limits; where attestation is not required the header is used, so the table
// also proves the rule is not vacuous.
func TestUnattestedDeviceHeaderNeverTrustedWhereAttestationIsRequired(t *testing.T) {
	key := attesttest.NewKey(t, "ES256", "k1")
	provider := attest.New(attest.Config{Kind: attest.SignedToken, App: "a", CacheID: "t", Issuer: "https://attest.test",
		Algorithms: []string{"ES256"}, Keys: jwks.NewStatic(jwks.Key{ID: "k1", Alg: "ES256", Key: key.Private.Public()}),
		Claims: attest.ClaimNames{DeviceID: "device_id"}})
	claims := attesttest.Claims{"iss": "https://attest.test", "exp": now.Add(time.Minute).Unix()}
	noID := attesttest.Sign(t, key, claims, nil)
	withID := attesttest.Sign(t, key, attesttest.With(claims, "device_id", "attested-1"), nil)
	const h = "x-attestation-token"
	for _, tc := range []struct {
		name        string
		appRequired bool
		path        string
		headers     []string
		want        policy.Code
		device      string // the device id used (upstream and limits)
	}{
		// Refused or ignored: the header must not become the device id.
		{"require_endpoint/token_without_id", false, "/must", []string{h, noID, "x-device-id", "phone-1"}, "", ""},
		{"require_endpoint/no_token", false, "/must", []string{"x-device-id", "phone-1"}, policy.AttestationRequired, ""},
		{"require_endpoint/bad_token", false, "/must", []string{h, "junk", "x-device-id", "phone-1"}, policy.InvalidAttestation, ""},
		{"require_endpoint/token_disagrees", false, "/must", []string{h, withID, "x-device-id", "phone-1"}, policy.AttestationFailed, ""},
		{"app_required/token_without_id", true, "/api", []string{h, noID, "x-device-id", "phone-1"}, "", ""},
		{"app_required/no_token", true, "/api", []string{"x-device-id", "phone-1"}, policy.AttestationRequired, ""},
		{"app_required/token_disagrees", true, "/api", []string{h, withID, "x-device-id", "phone-1"}, policy.AttestationFailed, ""},
		{"optional/header_with_space", false, "/api", []string{"x-device-id", "phone 1"}, policy.AttestationFailed, ""},
		{"optional/header_too_long", false, "/api", []string{"x-device-id", strings.Repeat("p", attest.MaxDeviceIDBytes+1)}, policy.AttestationFailed, ""},
		{"optional/header_repeated", false, "/api", []string{"x-device-id", "phone-1, phone-2"}, policy.AttestationFailed, ""},
		// Used: the attested id, or the trusted header where attestation is optional.
		{"require_endpoint/attested", false, "/must", []string{h, withID}, "", "attested-1"},
		{"require_endpoint/attested_agrees", false, "/must", []string{h, withID, "x-device-id", "attested-1"}, "", "attested-1"},
		{"optional/trusted_header", false, "/api", []string{"x-device-id", "phone-1"}, "", "phone-1"},
		{"app_required/exempt_endpoint", true, "/open", []string{"x-device-id", "phone-1"}, "", "phone-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ch := device.New(device.Config{App: "a", Providers: []*attest.Provider{provider}, Required: tc.appRequired, TrustDeviceHeader: true})
			lim := &recordingLimiter{}
			app := &policy.App{Name: "a", TokenHashes: []policy.Hash{policy.HashCredential("a")}, AllEndpoints: true, Device: ch}
			r, err := policy.NewRules(policy.Options{Limiter: lim}, []*policy.App{app}, []*policy.Endpoint{
				{Name: "api", Path: "/api"},
				{Name: "must", Path: "/must", Attestation: policy.AttestRequire},
				{Name: "open", Path: "/open", Attestation: policy.AttestExempt},
			})
			if err != nil {
				t.Fatal(err)
			}
			in := attesttest.Request("a", tc.path, "192.0.2.10", tc.headers...)
			d := r.Decide(context.Background(), now, in)
			attesttest.Want(t, d, tc.want)
			if d.DeviceID != tc.device {
				t.Fatalf("device id %q, want %q", d.DeviceID, tc.device)
			}
			if tc.want != "" {
				return
			}
			if len(lim.devices) != 1 || lim.devices[0] != tc.device {
				t.Fatalf("limits counted on devices %q, want [%q]", lim.devices, tc.device)
			}
			for _, hd := range d.Upstream {
				if hd.Key == "x-gatehouse-device" && hd.Value != tc.device {
					t.Fatalf("upstream device header %q, want %q", hd.Value, tc.device)
				}
			}
		})
	}
}

// TestLicenseExpiresAtBoundary: a license is usable strictly before expires_at and
// LICENSE_EXPIRED from that instant on.
func TestLicenseExpiresAtBoundary(t *testing.T) {
	exp := now.Add(24 * time.Hour)
	cat := device.StaticCatalog{}
	h := policy.HashCredential("key-1")
	cat[h] = device.License{Hash: h, ExpiresAt: exp}
	ch := device.New(device.Config{App: "a", Licenses: &device.Licenses{Required: true, Catalog: cat}})
	app := &policy.App{Name: "a", TokenHashes: []policy.Hash{policy.HashCredential("a")}, AllEndpoints: true, Device: ch}
	r, err := policy.NewRules(policy.Options{}, []*policy.App{app}, []*policy.Endpoint{{Name: "api", Path: "/api"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		at   time.Time
		want policy.Code
	}{
		{"1s_before", exp.Add(-time.Second), ""},
		{"1ns_before", exp.Add(-1), ""},
		{"at_expires_at", exp, policy.LicenseExpired},
		{"1s_after", exp.Add(time.Second), policy.LicenseExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := attesttest.Request("a", "/api", "192.0.2.10", "x-license-key", "key-1")
			attesttest.Want(t, r.Decide(context.Background(), tc.at, in), tc.want)
		})
	}
}
