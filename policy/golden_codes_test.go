package policy_test

import (
	"fmt"
	"testing"

	"github.com/gatehouse/gatehouse/policy"
)

// The golden table: every code the catalogue holds, as each dialect renders it. It is typed
// by hand from the four seed documents (and, where a dialect documents no code for a reason,
// from the nearest-code choice the catalogue's comments describe), never computed from the
// catalogue, so that one changed spelling or status anywhere fails TestGoldenCodes.

// sp is one dialect's spelling and HTTP status.
type sp struct {
	code   string
	status int
}

// goldenRow is one code on every surface. sdk is the license SDK auth endpoints' error
// (always HTTP 200, {"status":"failed","error":...}); "" means the SDK surface documents no
// such error and the developer-API spelling is answered there.
type goldenRow struct {
	code                           policy.Code
	pma, protekt, license, generic sp
	sdk                            string
}

// genericTitles is the title of each code of 003_*.txt.
var genericTitles = map[string]string{
	"AUTH-401":       "Authentication Failed",
	"AUTH-403":       "Permission Denied",
	"NOTFOUND-404":   "Resource Not Found",
	"SERVER-500":     "Internal Server Error",
	"BADREQUEST-400": "Bad Request",
	"CONFLICT-409":   "Conflict",
	"TOOLIMITED-429": "Too Many Requests",
}

// refusal403 is the spelling of a 403 that only protectmyapi documents.
func refusal403(c policy.Code) goldenRow {
	return goldenRow{c, sp{string(c), 403}, sp{"access_denied", 403}, sp{"forbidden", 403}, sp{"AUTH-403", 403}, ""}
}

var golden = []goldenRow{
	// Authentication (000 Authentication Errors; 001 invalid_credentials, token_expired, invalid_token,
	// insufficient_permissions, account_locked 423).
	{policy.Unauthorized, sp{"UNAUTHORIZED", 401}, sp{"invalid_credentials", 401}, sp{"invalid_api_key", 401}, sp{"AUTH-401", 401}, "invalid_app"},
	{policy.TokenExpired, sp{"TOKEN_EXPIRED", 401}, sp{"token_expired", 401}, sp{"invalid_api_key", 401}, sp{"AUTH-401", 401}, ""},
	{policy.InvalidToken, sp{"INVALID_TOKEN", 401}, sp{"invalid_token", 401}, sp{"invalid_api_key", 401}, sp{"AUTH-401", 401}, ""},
	{policy.Forbidden, sp{"FORBIDDEN", 403}, sp{"insufficient_permissions", 403}, sp{"forbidden", 403}, sp{"AUTH-403", 403}, ""},
	{policy.AccountLocked, sp{"RATE_LIMITED", 429}, sp{"account_locked", 423}, sp{"rate_limited", 429}, sp{"TOOLIMITED-429", 429}, ""},

	// Attestation: all 403 in 000.
	refusal403(policy.AttestationFailed),
	refusal403(policy.AttestationRequired),
	refusal403(policy.InvalidAttestation),
	refusal403(policy.AttestationExpired),
	refusal403(policy.DeviceCompromised),
	refusal403(policy.EmulatorDetected),
	refusal403(policy.DebuggerDetected),
	refusal403(policy.AppTampered),

	// Apps and endpoints: APP_NOT_FOUND 404, APP_DISABLED 403, ENDPOINT_NOT_FOUND 404,
	// ENDPOINT_DISABLED 403, ENDPOINT_NOT_LINKED 403, INVALID_METHOD 405.
	{policy.AppNotFound, sp{"APP_NOT_FOUND", 404}, sp{"invalid_credentials", 401}, sp{"invalid_api_key", 401}, sp{"AUTH-401", 401}, "invalid_app"},
	{policy.AppDisabled, sp{"APP_DISABLED", 403}, sp{"access_denied", 403}, sp{"forbidden", 403}, sp{"AUTH-403", 403}, "invalid_app"},
	{policy.EndpointNotFound, sp{"ENDPOINT_NOT_FOUND", 404}, sp{"access_denied", 404}, sp{"not_found", 404}, sp{"NOTFOUND-404", 404}, ""},
	refusal403(policy.EndpointDisabled),
	refusal403(policy.EndpointNotLinked),
	{policy.InvalidMethod, sp{"INVALID_METHOD", 405}, sp{"access_denied", 405}, sp{"bad_request", 405}, sp{"BADREQUEST-400", 405}, ""},

	// Secrets: SECRET_NOT_FOUND 404, SECRET_EXPIRED 403, SECRET_DECRYPTION_FAILED 500; a server
	// fault everywhere else.
	{policy.SecretNotFound, sp{"SECRET_NOT_FOUND", 404}, sp{"internal_error", 500}, sp{"internal_error", 500}, sp{"SERVER-500", 500}, ""},
	{policy.SecretExpired, sp{"SECRET_EXPIRED", 403}, sp{"internal_error", 500}, sp{"internal_error", 500}, sp{"SERVER-500", 500}, ""},
	{policy.SecretDecryptionFailed, sp{"SECRET_DECRYPTION_FAILED", 500}, sp{"internal_error", 500}, sp{"internal_error", 500}, sp{"SERVER-500", 500}, ""},

	// Rate limits: 429 in 000; 002 rate_limited 429, no_credits 402; 003 TOOLIMITED-429.
	{policy.RateLimited, sp{"RATE_LIMITED", 429}, sp{"service_unavailable", 429}, sp{"rate_limited", 429}, sp{"TOOLIMITED-429", 429}, ""},
	{policy.QuotaExceeded, sp{"QUOTA_EXCEEDED", 429}, sp{"service_unavailable", 429}, sp{"rate_limited", 429}, sp{"TOOLIMITED-429", 429}, ""},
	{policy.DeviceRateLimited, sp{"DEVICE_RATE_LIMITED", 429}, sp{"service_unavailable", 429}, sp{"rate_limited", 429}, sp{"TOOLIMITED-429", 429}, ""},
	{policy.NoCredits, sp{"QUOTA_EXCEEDED", 429}, sp{"service_unavailable", 429}, sp{"no_credits", 402}, sp{"TOOLIMITED-429", 429}, "no_credits"},

	// Proxy errors: 502, 504, 503, 502, 502, kept in every dialect.
	{policy.ProxyError, sp{"PROXY_ERROR", 502}, sp{"internal_error", 502}, sp{"internal_error", 502}, sp{"SERVER-500", 502}, ""},
	{policy.TargetTimeout, sp{"TARGET_TIMEOUT", 504}, sp{"service_unavailable", 504}, sp{"internal_error", 504}, sp{"SERVER-500", 504}, ""},
	{policy.TargetUnavailable, sp{"TARGET_UNAVAILABLE", 503}, sp{"service_unavailable", 503}, sp{"internal_error", 503}, sp{"SERVER-500", 503}, ""},
	{policy.TargetError, sp{"TARGET_ERROR", 502}, sp{"internal_error", 502}, sp{"internal_error", 502}, sp{"SERVER-500", 502}, ""},
	{policy.InvalidResponse, sp{"INVALID_RESPONSE", 502}, sp{"internal_error", 502}, sp{"internal_error", 502}, sp{"SERVER-500", 502}, ""},

	// Validation: 400 (002 bad_request, with details on the SDK surface), 413.
	{policy.ValidationError, sp{"VALIDATION_ERROR", 400}, sp{"access_denied", 400}, sp{"bad_request", 400}, sp{"BADREQUEST-400", 400}, "bad_request"},
	{policy.InvalidJSON, sp{"INVALID_JSON", 400}, sp{"access_denied", 400}, sp{"bad_request", 400}, sp{"BADREQUEST-400", 400}, "bad_request"},
	{policy.MissingField, sp{"MISSING_FIELD", 400}, sp{"access_denied", 400}, sp{"bad_request", 400}, sp{"BADREQUEST-400", 400}, "bad_request"},
	{policy.InvalidField, sp{"INVALID_FIELD", 400}, sp{"access_denied", 400}, sp{"bad_request", 400}, sp{"BADREQUEST-400", 400}, "bad_request"},
	{policy.PayloadTooLarge, sp{"PAYLOAD_TOO_LARGE", 413}, sp{"access_denied", 413}, sp{"bad_request", 413}, sp{"BADREQUEST-400", 413}, ""},
	// An idempotency key in flight or reused with another request: 409 everywhere (003
	// CONFLICT-409; the others document no 409 and no conflict).
	{policy.Conflict, sp{"VALIDATION_ERROR", 409}, sp{"access_denied", 409}, sp{"bad_request", 409}, sp{"CONFLICT-409", 409}, ""},

	// Accounts and organisations: 403 except ORG_NOT_FOUND 404; 001 email_not_verified 403;
	// 002 app_disabled is the suspended account.
	{policy.AccountDisabled, sp{"ACCOUNT_DISABLED", 403}, sp{"access_denied", 403}, sp{"forbidden", 403}, sp{"AUTH-403", 403}, "app_disabled"},
	refusal403(policy.AccountPendingDeletion),
	{policy.EmailNotVerified, sp{"EMAIL_NOT_VERIFIED", 403}, sp{"email_not_verified", 403}, sp{"forbidden", 403}, sp{"AUTH-403", 403}, ""},
	refusal403(policy.IPNotVerified),
	{policy.OrgNotFound, sp{"ORG_NOT_FOUND", 404}, sp{"access_denied", 404}, sp{"not_found", 404}, sp{"NOTFOUND-404", 404}, ""},
	refusal403(policy.OrgAccessDenied),
	refusal403(policy.OrgLimitReached),
	refusal403(policy.NotOrgMember),

	// Licenses (002 Validate/Heartbeat errors).
	{policy.InvalidKey, sp{"UNAUTHORIZED", 401}, sp{"invalid_credentials", 401}, sp{"invalid_api_key", 401}, sp{"AUTH-401", 401}, "invalid_key"},
	{policy.LicenseRevoked, sp{"FORBIDDEN", 403}, sp{"access_denied", 403}, sp{"forbidden", 403}, sp{"AUTH-403", 403}, "revoked"},
	{policy.LicenseExpired, sp{"FORBIDDEN", 403}, sp{"access_denied", 403}, sp{"forbidden", 403}, sp{"AUTH-403", 403}, "expired"},
	{policy.HWIDMismatch, sp{"FORBIDDEN", 403}, sp{"access_denied", 403}, sp{"forbidden", 403}, sp{"AUTH-403", 403}, "hwid_mismatch"},
	{policy.Blocked, sp{"FORBIDDEN", 403}, sp{"access_denied", 403}, sp{"forbidden", 403}, sp{"AUTH-403", 403}, "blocked"},
	{policy.SessionExpired, sp{"TOKEN_EXPIRED", 401}, sp{"token_expired", 401}, sp{"invalid_api_key", 401}, sp{"AUTH-401", 401}, "session_expired"},
	// Sessions Gatehouse issues: 001 "Token and session errors"; the client logs in again.
	{policy.SessionRevoked, sp{"INVALID_TOKEN", 401}, sp{"session_revoked", 401}, sp{"invalid_api_key", 401}, sp{"AUTH-401", 401}, "session_expired"},
	{policy.SessionNotFound, sp{"INVALID_TOKEN", 401}, sp{"session_not_found", 404}, sp{"invalid_api_key", 401}, sp{"AUTH-401", 401}, "session_expired"},
	{policy.RefreshTokenInvalid, sp{"INVALID_TOKEN", 401}, sp{"refresh_token_invalid", 401}, sp{"invalid_api_key", 401}, sp{"AUTH-401", 401}, "session_expired"},

	// Server: INTERNAL_ERROR 500, SERVICE_UNAVAILABLE 503, MAINTENANCE 503; 001 "Temporary outage
	// or maintenance" is service_unavailable 503.
	{policy.InternalError, sp{"INTERNAL_ERROR", 500}, sp{"internal_error", 500}, sp{"internal_error", 500}, sp{"SERVER-500", 500}, ""},
	{policy.ServiceUnavailable, sp{"SERVICE_UNAVAILABLE", 503}, sp{"service_unavailable", 503}, sp{"internal_error", 503}, sp{"SERVER-500", 503}, ""},
	{policy.Maintenance, sp{"MAINTENANCE", 503}, sp{"service_unavailable", 503}, sp{"internal_error", 503}, sp{"SERVER-500", 503}, ""},
}

// goldenBody is the exact body of a denial with message m on one surface.
func goldenBody(t *testing.T, r goldenRow, surface string, m string) (int, string, string) {
	t.Helper()
	switch surface {
	case "protectmyapi":
		return r.pma.status, r.pma.code, fmt.Sprintf(`{"success":false,"error":{"code":%q,"message":%q}}`, r.pma.code, m)
	case "protekt":
		return r.protekt.status, r.protekt.code, fmt.Sprintf(`{"error":%q,"message":%q,"statusCode":%d}`, r.protekt.code, m, r.protekt.status)
	case "license":
		return r.license.status, r.license.code, fmt.Sprintf(`{"error":%q,"message":%q}`, r.license.code, m)
	case "license-sdk":
		switch r.sdk {
		case "":
			return r.license.status, r.license.code, fmt.Sprintf(`{"error":%q,"message":%q}`, r.license.code, m)
		case "bad_request":
			return 200, r.sdk, fmt.Sprintf(`{"status":"failed","error":"bad_request","details":[%q]}`, m)
		}
		return 200, r.sdk, fmt.Sprintf(`{"status":"failed","error":%q}`, r.sdk)
	case "generic":
		title, ok := genericTitles[r.generic.code]
		if !ok {
			t.Fatalf("golden row %s: %q is not a code of 003", r.code, r.generic.code)
		}
		return r.generic.status, r.generic.code, fmt.Sprintf(`{"code":%q,"title":%q,"message":%q}`, r.generic.code, title, m)
	}
	t.Fatalf("unknown surface %q", surface)
	return 0, "", ""
}

// TestGoldenCodes renders every code on every surface and compares status, code and the
// exact body bytes with the golden table.
func TestGoldenCodes(t *testing.T) {
	const msg = "golden message"
	surfaces := []struct {
		name    string
		dialect policy.Dialect
		sdk     bool
	}{
		{"protectmyapi", policy.ProtectMyAPI, false},
		{"protekt", policy.Protekt, false},
		{"license", policy.License, false},
		{"license-sdk", policy.License, true},
		{"generic", policy.Generic, false},
	}
	seen := map[policy.Code]bool{}
	for _, r := range golden {
		if seen[r.code] {
			t.Fatalf("golden table lists %s twice", r.code)
		}
		seen[r.code] = true
		for _, s := range surfaces {
			t.Run(string(r.code)+"/"+s.name, func(t *testing.T) {
				status, code, body := goldenBody(t, r, s.name, msg)
				got := policy.Render(s.dialect, r.code, policy.RenderOptions{Message: msg, SDKAuth: s.sdk})
				if got.Status != status || got.Code != code || string(got.Body) != body {
					t.Errorf("rendered %d %q %s\nwant     %d %q %s", got.Status, got.Code, got.Body, status, code, body)
				}
				// A Decision renders the same way.
				d := policy.Decision{Outcome: policy.Deny, Code: r.code, Message: msg, Dialect: s.dialect, SDKAuth: s.sdk}
				if dr := d.Render(); dr.Status != status || string(dr.Body) != body {
					t.Errorf("Decision.Render: %d %s", dr.Status, dr.Body)
				}
			})
		}
	}
	for _, e := range policy.Catalogue() {
		if !seen[e.Code] {
			t.Errorf("catalogue code %s has no golden row", e.Code)
		}
	}
	if len(seen) != len(policy.Catalogue()) {
		t.Errorf("golden table has %d codes, catalogue %d", len(seen), len(policy.Catalogue()))
	}
}

// TestGoldenDefaultMessages: without a message override each 000 code carries its seed
// description, protekt's own codes their documented wording where the catalogue gives one,
// and an SDK bad_request its message as the single detail.
func TestGoldenDefaultMessages(t *testing.T) {
	for _, tc := range []struct {
		d    policy.Dialect
		sdk  bool
		c    policy.Code
		body string
	}{
		{policy.ProtectMyAPI, false, policy.AttestationFailed, `{"success":false,"error":{"code":"ATTESTATION_FAILED","message":"Device attestation verification failed"}}`},
		{policy.ProtectMyAPI, false, policy.RateLimited, `{"success":false,"error":{"code":"RATE_LIMITED","message":"Too many requests"}}`},
		{policy.ProtectMyAPI, false, policy.Maintenance, `{"success":false,"error":{"code":"MAINTENANCE","message":"Service under maintenance"}}`},
		{policy.Protekt, false, policy.TokenExpired, `{"error":"token_expired","message":"Access token has expired","statusCode":401}`},
		{policy.Protekt, false, policy.InvalidToken, `{"error":"invalid_token","message":"Token is malformed or invalid","statusCode":401}`},
		{policy.Protekt, false, policy.Forbidden, `{"error":"insufficient_permissions","message":"User lacks required permissions","statusCode":403}`},
		{policy.Generic, false, policy.Unauthorized, `{"code":"AUTH-401","title":"Authentication Failed","message":"Missing or invalid authentication"}`},
		{policy.License, true, policy.MissingField, `{"status":"failed","error":"bad_request","details":["Required field is missing"]}`},
		{policy.License, true, policy.InvalidKey, `{"status":"failed","error":"invalid_key"}`},
		// An unknown code is INTERNAL_ERROR; an unknown dialect is protectmyapi.
		{policy.Protekt, false, policy.Code("NO_SUCH"), `{"error":"internal_error","message":"Unexpected server error","statusCode":500}`},
		{policy.Dialect(9), false, policy.Forbidden, `{"success":false,"error":{"code":"FORBIDDEN","message":"Valid auth but insufficient permissions"}}`},
	} {
		t.Run(tc.d.String()+"/"+string(tc.c), func(t *testing.T) {
			got := policy.Render(tc.d, tc.c, policy.RenderOptions{SDKAuth: tc.sdk})
			if string(got.Body) != tc.body {
				t.Errorf("body %s\nwant %s", got.Body, tc.body)
			}
		})
	}
}
