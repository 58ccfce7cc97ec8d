package attest_test

import (
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/attest/attesttest"
)

// mappingCase is one request against the failure mapping (README.md): the row it
// exercises is in its name.
type mappingCase struct {
	name    string
	headers []string // name/value pairs besides the app token
	want    policy.Code
	device  string // verified device id when allowed
}

func runMapping(t *testing.T, e *env, app, path string, cases []mappingCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := e.decide(request(app, path, tc.headers...))
			attesttest.Want(t, d, tc.want)
			if tc.want == "" && d.DeviceID != tc.device {
				t.Errorf("device id %q, want %q", d.DeviceID, tc.device)
			}
			if tc.want != "" && d.Step != policy.StepAttest && d.Step != policy.StepLicense && d.Step != policy.StepNetwork {
				t.Errorf("decided at step %s", d.Step)
			}
		})
	}
}

func TestSignedTokenFailureMapping(t *testing.T) {
	e := newEnv(t)
	h := "x-attestation-token"
	ok := e.signedClaims("signed")
	sign := func(c attesttest.Claims) string { return attesttest.Sign(t, e.es, c, nil) }
	runMapping(t, e, "signed", "/v1/secure", []mappingCase{
		{name: "ok/ES256", headers: []string{h, sign(ok)}, device: "device-1"},
		{name: "ok/RS256", headers: []string{h, attesttest.Sign(t, e.rs, ok, nil)}, device: "device-1"},
		{name: "ok/EdDSA", headers: []string{h, attesttest.Sign(t, e.ed, ok, nil)}, device: "device-1"},
		{name: "ok/no_device_id_claim", headers: []string{h, sign(attesttest.With(ok, "device_id", nil))}},

		{name: "1_required/no_credential", want: policy.AttestationRequired},
		{name: "1_required/other_providers_header_ignored", headers: []string{"approov-token", sign(ok)}, want: policy.AttestationRequired},

		{name: "2_invalid/not_a_jwt", headers: []string{h, "not-a-token"}, want: policy.InvalidAttestation},
		{name: "2_invalid/bad_base64", headers: []string{h, "e30.e30.!!!"}, want: policy.InvalidAttestation},
		{name: "2_invalid/empty_header", headers: []string{h, "  "}, want: policy.InvalidAttestation},
		{name: "2_invalid/duplicated_header", headers: []string{h, sign(ok) + ", " + sign(ok)}, want: policy.InvalidAttestation},
		{name: "2_invalid/oversized", headers: []string{h, sign(attesttest.With(ok, "pad", strings.Repeat("x", 9000)))}, want: policy.InvalidAttestation},
		{name: "2_invalid/alg_none", headers: []string{h, attesttest.Unsigned(t, ok, map[string]any{"kid": "es-1"})}, want: policy.InvalidAttestation},
		{name: "2_invalid/alg_HS256_with_public_key_as_secret", headers: []string{h, attesttest.SignHS256(t, rsaPublicDER(t, e), ok, map[string]any{"kid": "rs-1"})}, want: policy.InvalidAttestation},
		{name: "2_invalid/alg_ES256_claims_RSA_key", headers: []string{h, attesttest.Sign(t, e.es, ok, map[string]any{"kid": "rs-1"})}, want: policy.InvalidAttestation},
		{name: "2_invalid/unknown_kid_after_refresh", headers: []string{h, attesttest.Sign(t, e.es, ok, map[string]any{"kid": "nobody"})}, want: policy.InvalidAttestation},
		{name: "2_invalid/missing_exp", headers: []string{h, sign(attesttest.With(ok, "exp", nil))}, want: policy.InvalidAttestation},
		{name: "2_invalid/missing_iat_with_max_age", headers: []string{h, sign(attesttest.With(ok, "iat", nil))}, want: policy.InvalidAttestation},
		{name: "2_invalid/exp_not_a_number", headers: []string{h, sign(attesttest.With(ok, "exp", "tomorrow"))}, want: policy.InvalidAttestation},
		{name: "2_invalid/malformed_device_id", headers: []string{h, sign(attesttest.With(ok, "device_id", "a\r\nx-evil: 1"))}, want: policy.InvalidAttestation},

		{name: "3_failed/bad_signature", headers: []string{h, attesttest.Sign(t, e.impostor, ok, nil)}, want: policy.AttestationFailed},
		{name: "3_failed/wrong_issuer", headers: []string{h, sign(attesttest.With(ok, "iss", "https://evil.test"))}, want: policy.AttestationFailed},
		{name: "3_failed/wrong_audience_other_app", headers: []string{h, sign(attesttest.With(ok, "aud", "multi"))}, want: policy.AttestationFailed},
		{name: "3_failed/wrong_issuer_beats_expired", headers: []string{h, sign(attesttest.With(ok, "iss", "x", "exp", now.Add(-time.Hour).Unix()))}, want: policy.AttestationFailed},
		{name: "3_failed/not_yet_valid_nbf", headers: []string{h, sign(attesttest.With(ok, "nbf", now.Add(time.Minute).Unix()))}, want: policy.AttestationFailed},
		{name: "3_failed/issued_in_future", headers: []string{h, sign(attesttest.With(ok, "iat", now.Add(time.Minute).Unix()))}, want: policy.AttestationFailed},
		{name: "3_failed/device_header_disagrees", headers: []string{h, sign(ok), "x-device-id", "device-2"}, want: policy.AttestationFailed},
		{name: "ok/device_header_agrees", headers: []string{h, sign(ok), "x-device-id", "device-1"}, device: "device-1"},

		{name: "4_expired/exp_past", headers: []string{h, sign(attesttest.With(ok, "exp", now.Add(-time.Minute).Unix()))}, want: policy.AttestationExpired},
		{name: "4_expired/too_old", headers: []string{h, sign(attesttest.With(ok, "iat", now.Add(-11*time.Minute).Unix()))}, want: policy.AttestationExpired},
		{name: "4_expired/beats_verdict", headers: []string{h, sign(attesttest.With(ok, "exp", now.Add(-time.Minute).Unix(), "emulator", true))}, want: policy.AttestationExpired},

		{name: "5_verdict/compromised", headers: []string{h, sign(attesttest.With(ok, "compromised", true))}, want: policy.DeviceCompromised},
		{name: "5_verdict/compromised_beats_emulator", headers: []string{h, sign(attesttest.With(ok, "compromised", true, "emulator", true))}, want: policy.DeviceCompromised},
		{name: "5_verdict/emulator", headers: []string{h, sign(attesttest.With(ok, "emulator", true))}, want: policy.EmulatorDetected},
		{name: "5_verdict/emulator_string_true", headers: []string{h, sign(attesttest.With(ok, "emulator", "true"))}, want: policy.EmulatorDetected},
		{name: "5_verdict/debugger", headers: []string{h, sign(attesttest.With(ok, "debugger", true))}, want: policy.DebuggerDetected},
		{name: "5_verdict/tampered", headers: []string{h, sign(attesttest.With(ok, "tampered", true))}, want: policy.AppTampered},
		{name: "5_verdict/unknown_signing_cert", headers: []string{h, sign(attesttest.With(ok, "signing_cert", strings.Repeat("0", 64)))}, want: policy.AppTampered},
		{name: "5_verdict/app_version_below_minimum", headers: []string{h, sign(attesttest.With(ok, "app_version", "1.9.9"))}, want: policy.AttestationFailed},
		{name: "5_verdict/app_version_prerelease_of_minimum", headers: []string{h, sign(attesttest.With(ok, "app_version", "2.0.0-rc.1"))}, want: policy.AttestationFailed},
		{name: "ok/verdict_flags_false", headers: []string{h, sign(attesttest.With(ok, "emulator", false, "compromised", "false"))}, device: "device-1"},
	})
}

func TestSignedTokenAllowSwitches(t *testing.T) {
	e := newEnv(t)
	tok := attesttest.Sign(t, e.es, attesttest.With(e.signedClaims("optional"), "emulator", true), nil)
	attesttest.Want(t, e.decide(request("optional", "/v1/secure", "x-attestation-token", tok)), "")
	tok = attesttest.Sign(t, e.es, attesttest.With(e.signedClaims("optional"), "debugger", true), nil)
	attesttest.Want(t, e.decide(request("optional", "/v1/secure", "x-attestation-token", tok)), policy.DebuggerDetected)
}

func TestFirebaseFailureMapping(t *testing.T) {
	e := newEnv(t)
	h := "x-firebase-appcheck"
	sign := func(c attesttest.Claims, hdr map[string]any) string { return attesttest.Sign(t, e.fb1, c, hdr) }
	es := attesttest.NewKey(t, "ES256", "fb-1")
	runMapping(t, e, "firebase", "/v1/secure", []mappingCase{
		{name: "ok", headers: []string{h, sign(e.firebaseClaims(), nil)}},
		{name: "1_required/no_credential", want: policy.AttestationRequired},
		{name: "2_invalid/not_a_jwt", headers: []string{h, "abc.def"}, want: policy.InvalidAttestation},
		{name: "2_invalid/duplicated_header", headers: []string{h, "a.b.c,d.e.f"}, want: policy.InvalidAttestation},
		{name: "2_invalid/typ_not_JWT", headers: []string{h, sign(e.firebaseClaims(), map[string]any{"typ": "at+jwt"})}, want: policy.InvalidAttestation},
		{name: "2_invalid/typ_missing", headers: []string{h, sign(e.firebaseClaims(), map[string]any{"typ": nil})}, want: policy.InvalidAttestation},
		{name: "2_invalid/alg_ES256", headers: []string{h, attesttest.Sign(t, es, e.firebaseClaims(), nil)}, want: policy.InvalidAttestation},
		{name: "2_invalid/alg_none", headers: []string{h, attesttest.Unsigned(t, e.firebaseClaims(), map[string]any{"kid": "fb-1"})}, want: policy.InvalidAttestation},
		{name: "2_invalid/unknown_kid_after_refresh", headers: []string{h, attesttest.Sign(t, e.fb2, e.firebaseClaims(), nil)}, want: policy.InvalidAttestation},
		{name: "2_invalid/missing_jti_with_replay_protection", headers: []string{h, sign(attesttest.With(e.firebaseClaims(), "jti", nil), nil)}, want: policy.InvalidAttestation},
		{name: "3_failed/bad_signature", headers: []string{h, attesttest.Sign(t, &attesttest.Key{ID: "fb-1", Alg: "RS256", Private: e.rs.Private}, e.firebaseClaims(), nil)}, want: policy.AttestationFailed},
		{name: "3_failed/wrong_issuer", headers: []string{h, sign(attesttest.With(e.firebaseClaims(), "iss", "https://firebaseappcheck.googleapis.com/999"), nil)}, want: policy.AttestationFailed},
		{name: "3_failed/wrong_audience", headers: []string{h, sign(attesttest.With(e.firebaseClaims(), "aud", []string{"projects/999"}), nil)}, want: policy.AttestationFailed},
		{name: "3_failed/app_not_allowed", headers: []string{h, sign(attesttest.With(e.firebaseClaims(), "sub", "1:123456:ios:zzz"), nil)}, want: policy.AttestationFailed},
		{name: "4_expired/exp_past", headers: []string{h, sign(attesttest.With(e.firebaseClaims(), "exp", now.Add(-time.Minute).Unix()), nil)}, want: policy.AttestationExpired},
	})
}

func TestApproovFailureMapping(t *testing.T) {
	e := newEnv(t)
	h := "approov-token"
	ok := e.approovClaims()
	sign := func(c attesttest.Claims) string { return attesttest.SignHS256(t, e.secret, c, nil) }
	auth := []string{"authorization", approovBearer}
	hs := func(kv ...string) []string { return append(kv, auth...) }
	runMapping(t, e, "approov", "/v1/secure", []mappingCase{
		{name: "ok", headers: hs(h, sign(ok)), device: "approov-device"},
		{name: "1_required/no_credential", headers: auth, want: policy.AttestationRequired},
		{name: "2_invalid/not_a_jwt", headers: hs(h, "...."), want: policy.InvalidAttestation},
		{name: "2_invalid/duplicated_header", headers: hs(h, sign(ok)+","+sign(ok)), want: policy.InvalidAttestation},
		{name: "2_invalid/alg_RS256", headers: hs(h, attesttest.Sign(t, e.rs, ok, nil)), want: policy.InvalidAttestation},
		{name: "2_invalid/alg_none", headers: hs(h, attesttest.Unsigned(t, ok, nil)), want: policy.InvalidAttestation},
		{name: "2_invalid/missing_exp", headers: hs(h, sign(attesttest.With(ok, "exp", nil))), want: policy.InvalidAttestation},
		{name: "3_failed/bad_signature_failed_device", headers: hs(h, attesttest.SignHS256(t, []byte("a-key-the-backend-does-not-have!!"), ok, nil)), want: policy.AttestationFailed},
		{name: "3_failed/binding_mismatch", headers: []string{h, sign(ok), "authorization", "Bearer someone-else"}, want: policy.AttestationFailed},
		{name: "3_failed/binding_header_missing", headers: []string{h, sign(ok)}, want: policy.AttestationFailed},
		{name: "3_failed/binding_header_repeated", headers: []string{h, sign(ok), "authorization", approovBearer + ", " + approovBearer}, want: policy.AttestationFailed},
		{name: "3_failed/pay_claim_missing", headers: hs(h, sign(attesttest.With(ok, "pay", nil))), want: policy.AttestationFailed},
		{name: "3_failed/binding_beats_expired", headers: []string{h, sign(attesttest.With(ok, "exp", now.Add(-time.Hour).Unix())), "authorization", "Bearer x"}, want: policy.AttestationFailed},
		{name: "4_expired/exp_past", headers: hs(h, sign(attesttest.With(ok, "exp", now.Add(-time.Minute).Unix()))), want: policy.AttestationExpired},
	})
}

// TestNoDowngrade: the highest-priority credential present is the one evaluated; a
// failing one is not rescued by a weaker valid one.
func TestNoDowngrade(t *testing.T) {
	e := newEnv(t)
	signed := attesttest.Sign(t, e.es, e.signedClaims("multi"), nil)
	badSigned := attesttest.Sign(t, e.impostor, e.signedClaims("multi"), nil)
	approov := attesttest.SignHS256(t, e.secret, e.approovClaims(), nil)
	fb := attesttest.Sign(t, e.fb1, e.firebaseClaims(), nil)
	for _, tc := range []struct {
		name     string
		headers  []string
		want     policy.Code
		provider string
	}{
		{"signed_wins", []string{"x-attestation-token", signed, "approov-token", approov}, "", "signed_token"},
		{"bad_signed_not_rescued_by_approov", []string{"x-attestation-token", badSigned, "approov-token", approov}, policy.AttestationFailed, "signed_token"},
		{"bad_signed_not_rescued_by_firebase", []string{"x-attestation-token", "garbage", "x-firebase-appcheck", fb}, policy.InvalidAttestation, "signed_token"},
		{"firebase_before_approov", []string{"x-firebase-appcheck", fb, "approov-token", "garbage"}, "", "firebase_app_check"},
		{"approov_alone", []string{"approov-token", approov}, "", "approov"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := e.decide(request("multi", "/v1/secure", tc.headers...))
			attesttest.Want(t, d, tc.want)
			if d.AttestationProvider != tc.provider {
				t.Errorf("provider %q, want %q", d.AttestationProvider, tc.provider)
			}
		})
	}
}

// TestEndpointModes: require overrides an app without required attestation, exempt
// skips the step, and a heartbeat endpoint reports an expired attestation as
// SESSION_EXPIRED.
func TestEndpointModes(t *testing.T) {
	e := newEnv(t)
	expired := attesttest.Sign(t, e.es, attesttest.With(e.signedClaims("signed"), "exp", now.Add(-time.Minute).Unix()), nil)
	for _, tc := range []struct {
		name, app, path string
		headers         []string
		want            policy.Code
	}{
		{"optional_app_no_credential", "optional", "/v1/secure", nil, ""},
		{"optional_app_bad_credential_refused", "optional", "/v1/secure", []string{"x-attestation-token", "junk"}, policy.InvalidAttestation},
		{"endpoint_require_overrides_app", "optional", "/v1/must", nil, policy.AttestationRequired},
		{"endpoint_exempt", "signed", "/v1/open", nil, ""},
		{"heartbeat_expired_is_session_expired", "signed", "/v1/heartbeat", []string{"x-attestation-token", expired}, policy.SessionExpired},
		{"not_heartbeat_expired", "signed", "/v1/secure", []string{"x-attestation-token", expired}, policy.AttestationExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			attesttest.Want(t, e.decide(request(tc.app, tc.path, tc.headers...)), tc.want)
		})
	}
}

// TestClockSkewEdges: exp, nbf and max_age with the default 30 s leeway.
func TestClockSkewEdges(t *testing.T) {
	e := newEnv(t)
	leeway := 30 * time.Second
	for _, tc := range []struct {
		name   string
		claims []any
		want   policy.Code
	}{
		{"exp_within_leeway", []any{"exp", now.Add(-leeway + time.Second).Unix()}, ""},
		{"exp_at_leeway", []any{"exp", now.Add(-leeway).Unix()}, policy.AttestationExpired},
		{"nbf_within_leeway", []any{"nbf", now.Add(leeway).Unix()}, ""},
		{"nbf_past_leeway", []any{"nbf", now.Add(leeway + time.Second).Unix()}, policy.AttestationFailed},
		{"max_age_within_leeway", []any{"iat", now.Add(-10*time.Minute - leeway + time.Second).Unix()}, ""},
		{"max_age_at_leeway", []any{"iat", now.Add(-10*time.Minute - leeway).Unix()}, policy.AttestationExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := attesttest.Sign(t, e.es, attesttest.With(e.signedClaims("signed"), tc.claims...), nil)
			attesttest.Want(t, e.decide(request("signed", "/v1/secure", "x-attestation-token", tok)), tc.want)
		})
	}
}
