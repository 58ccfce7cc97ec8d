package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/policy"
)

// TestBadDeviceConfigs: one file per validation rule of the device sections, each with
// the message it must produce (also in the file's first line).
func TestBadDeviceConfigs(t *testing.T) {
	for _, tc := range []struct{ file, want string }{
		{"approov_binding_self", "apps[0].attestation.providers[0].binding_header: must not be the token's own header"},
		{"approov_no_secret", "apps[0].attestation.providers[0]: set exactly one of secret_file, secret_env (HS256) and jwks (RS256)"},
		{"approov_secret_alg", "apps[0].attestation.providers[0].algorithms: a secret verifies HS256 only"},
		{"approov_secret_missing", "apps[0].attestation.providers[0].secret_env: cannot read the secret"},
		{"approov_short_secret", "apps[0].attestation.providers[0].secret_file: the secret must be base64 of at least 32 bytes"},
		{"device_bad_id", "apps[0].devices.block[0]: \"has space\" is not a device id"},
		{"device_header", "apps[0].devices.header: \"x device\" is not a valid header name"},
		{"firebase_alg", "apps[0].attestation.providers[0].algorithms: Firebase App Check tokens are RS256 only"},
		{"firebase_app_ids", "apps[0].attestation.providers[0].app_ids: needs at least one Firebase app id"},
		{"firebase_jwks_http", "apps[0].attestation.providers[0].jwks.url: must be https"},
		{"firebase_key_cache_6h", "apps[0].attestation.providers[0].jwks: refresh and max_age must be at most 6h0m0s"},
		{"firebase_project_number", "apps[0].attestation.providers[0].project_number: must be the numeric Firebase project number"},
		{"jwks_inline_and_file", "apps[0].attestation.providers[0].jwks: set only one of inline, file and url"},
		{"jwks_inline_bad", "apps[0].attestation.providers[0].jwks.inline: jwks: json: cannot unmarshal"},
		{"key_not_for_type", "apps[0].attestation.providers[0].binding_header: only for type approov"},
		{"leeway", "apps[0].attestation.leeway: must be between 0s and 5m"},
		{"license_bad_sha", "apps[0].licenses.keys[0].sha256: must be 64 hex digits"},
		{"license_dup", "apps[0].licenses.keys[1].sha256: is defined twice"},
		{"license_header", "apps[0].licenses.header: \"x license\" is not a valid header name"},
		{"license_key_max_devices", "apps[0].licenses.keys[0].max_devices: must be between 0 and 10000"},
		{"license_max_devices", "apps[0].licenses.max_devices: must be between 0 and 10000"},
		{"license_no_keys", "apps[0].licenses.keys: needs at least one license key"},
		{"license_state", "apps[0].licenses.keys[0].state: unknown state \"suspended\" (want active, revoked or expired)"},
		{"max_age_negative", "apps[0].attestation.providers[0].max_age: must not be negative"},
		{"max_token_bytes", "apps[0].attestation.max_token_bytes: must be between 512 and 65536"},
		{"min_app_version", "apps[0].attestation.providers[0].min_app_version: \"latest\" is not a version like 2.3.0"},
		{"network_bad_cidr", "apps[0].network.block[1]: \"10.0.0.0/33\" is not an address or CIDR range"},
		{"network_file_bad_line", "apps[0].network.block_file: bad-ips.txt line 3: not an address or CIDR range (the line is not shown: a file named by mistake may hold a secret)"},
		{"network_file_missing", "apps[0].network.allow_file: cannot read nope.txt: no such file or directory"},
		{"provider_header_bad", "apps[0].attestation.providers[0].header: \"x attestation\" is not a valid header name"},
		{"provider_header_dup", "apps[0].attestation.providers[1].header: \"x-attestation-token\" is already the header of providers[0]"},
		{"provider_type", "apps[0].attestation.providers[0].type: unknown provider type \"safetynet\""},
		{"required_no_providers", "apps[0].attestation.providers: required attestation needs at least one provider"},
		{"signed_alg_hs256", "apps[0].attestation.providers[0].algorithms[1]: unsupported algorithm \"HS256\""},
		{"signed_no_issuer", "apps[0].attestation.providers[0].issuer: is required"},
		{"signed_no_jwks", "apps[0].attestation.providers[0].jwks: set one of inline, file and url"},
		{"signing_cert", "apps[0].attestation.providers[0].signing_certs[0]: must be a SHA-256 digest in hex"},
		{"trust_header_required", "apps[0].devices.trust_device_header: cannot be combined with attestation.required"},
		{"unknown_key", "apps[0].attestation.providers[0].secret: unknown key"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join("testdata", "device", tc.file+".yaml")
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(b), "# Expected: "+tc.want) {
				t.Errorf("%s does not document its expected message", path)
			}
			_, err = Load(path, Deps{Offline: true})
			if err == nil {
				t.Fatalf("loaded without error, want %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("errors:\n%v\nwant one containing %q", err, tc.want)
			}
			var errs Errors
			if !errors.As(err, &errs) || len(errs) != 1 {
				n := len(errs)
				t.Errorf("%d errors, want exactly the one of this rule:\n%v", n, err)
			}
		})
	}
}

func TestGoodDeviceConfig(t *testing.T) {
	snap, err := Load(filepath.Join("testdata", "device", "good.yaml"), Deps{Offline: true})
	if err != nil {
		t.Fatal(err)
	}
	app, _ := snap.Rules.App("a")
	if app.Device == nil {
		t.Fatal("no device checker")
	}
}

// TestDemoSecureEndpoint: the demo keeps its facts and gains GET /v1/secure, which
// requires attestation.
func TestDemoSecureEndpoint(t *testing.T) {
	snap, err := LoadBytes(Demo, DemoPath, Deps{Offline: true})
	if err != nil {
		t.Fatal(err)
	}
	in := &policy.Input{Method: "GET", Path: "/v1/secure", RawPath: "/v1/secure", BodySize: -1,
		Headers: map[string]string{"x-app-token": "demo-app-token"}}
	d := snap.Rules.Decide(t.Context(), snap.LoadedAt, in)
	if d.Allowed() || d.Code != policy.AttestationRequired {
		t.Fatalf("GET /v1/secure without attestation: %v %s", d.Outcome, d.Code)
	}
	in.Path, in.RawPath = "/v1/hello", "/v1/hello"
	if d := snap.Rules.Decide(t.Context(), snap.LoadedAt, in); !d.Allowed() {
		t.Fatalf("GET /v1/hello denied: %s", d.Code)
	}
}
