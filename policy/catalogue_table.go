package policy

// catalogue is the data behind [Catalogue]: one row per [Code], in the order of catalogue.go.
// catalogue_test.go checks it row by row against the contract documents that define every client-visible code.
//
// How a spelling is chosen:
//   - Exact: the dialect's document lists this code string for this reason; Status is the
//     documented status.
//   - Otherwise (Exact false) the dialect's nearest documented code. Its Status is that code's
//     documented status when the code fits the reason (every 401 reason is AUTH-401 401). It is
//     the canonical status instead where the dialect documents no code with a fitting meaning
//     and the status itself is what HTTP clients and proxies act on: 405 (Allow), 413, 429
//     (Retry-After), 502/503/504 (retry), and protekt's missing 400/404. So a spelling's status
//     is always either its code's documented status or the entry's canonical status.
//   - Codes that 000 does not list are spelled, in protectmyapi, with the nearest 000 code.
//
// Protekt has no client-error, not-found-resource, rate-limit or gateway codes: refusals map
// to access_denied (not invalid_token/token_expired, which tell its SDK to renew the user's
// token: only SESSION_EXPIRED wants that), retry-later reasons to service_unavailable, server
// faults to internal_error.
var catalogue = []Entry{
	// Authentication.
	{
		Code: Unauthorized, Status: 401, Message: "Missing or invalid authentication",
		Dialects: [numDialects]Spelling{
			ProtectMyAPI: {Code: "UNAUTHORIZED", Status: 401, Exact: true},
			// A missing or wrong app credential is a wrong credential; invalid_token would
			// make the protekt SDK refresh the user's token instead.
			Protekt: {Code: "invalid_credentials", Status: 401},
			License: {Code: "invalid_api_key", Status: 401, Exact: true},
			Generic: {Code: "AUTH-401", Status: 401, Title: "Authentication Failed", Exact: true},
		},
		// "The App ID or App Secret is incorrect": the app credentials are missing or wrong.
		SDK: Spelling{Code: "invalid_app", Status: 200, Exact: true},
	},
	{
		Code: TokenExpired, Status: 401, Message: "JWT token has expired",
		Dialects: [numDialects]Spelling{
			ProtectMyAPI: {Code: "TOKEN_EXPIRED", Status: 401, Exact: true},
			Protekt:      {Code: "token_expired", Status: 401, Message: "Access token has expired", Exact: true},
			License:      {Code: "invalid_api_key", Status: 401},
			Generic:      {Code: "AUTH-401", Status: 401, Title: "Authentication Failed", Exact: true},
		},
	},
	{
		Code: InvalidToken, Status: 401, Message: "Malformed or invalid token",
		Dialects: [numDialects]Spelling{
			ProtectMyAPI: {Code: "INVALID_TOKEN", Status: 401, Exact: true},
			Protekt:      {Code: "invalid_token", Status: 401, Message: "Token is malformed or invalid", Exact: true},
			License:      {Code: "invalid_api_key", Status: 401},
			Generic:      {Code: "AUTH-401", Status: 401, Title: "Authentication Failed", Exact: true},
		},
	},
	{
		Code: Forbidden, Status: 403, Message: "Valid auth but insufficient permissions",
		Dialects: [numDialects]Spelling{
			ProtectMyAPI: {Code: "FORBIDDEN", Status: 403, Exact: true},
			Protekt:      {Code: "insufficient_permissions", Status: 403, Message: "User lacks required permissions", Exact: true},
			License:      {Code: "forbidden", Status: 403, Exact: true},
			Generic:      {Code: "AUTH-403", Status: 403, Title: "Permission Denied", Exact: true},
		},
	},
	{
		Code: AccountLocked, Status: 429, Message: "Temporarily locked after too many failed attempts",
		Dialects: [numDialects]Spelling{
			// A lockout ends by itself: RATE_LIMITED with Retry-After tells the SDK to wait
			// and retry; FORBIDDEN would read as permanent.
			ProtectMyAPI: {Code: "RATE_LIMITED", Status: 429},
			Protekt:      {Code: "account_locked", Status: 423, Exact: true},
			License:      {Code: "rate_limited", Status: 429},
			// 003 lists "brute-force attempts" among the causes of TOOLIMITED-429.
			Generic: {Code: "TOOLIMITED-429", Status: 429, Title: "Too Many Requests", Exact: true},
		},
	},

	// Attestation: protekt, license and generic document no attestation codes, so each is
	// their refusal; 002 lists none on the SDK surface, so SDK endpoints answer forbidden too.
	catRefusal(AttestationFailed, "ATTESTATION_FAILED", "Device attestation verification failed"),
	catRefusal(AttestationRequired, "ATTESTATION_REQUIRED", "Request missing attestation header"),
	catRefusal(InvalidAttestation, "INVALID_ATTESTATION", "Attestation data is malformed"),
	catRefusal(AttestationExpired, "ATTESTATION_EXPIRED", "Attestation has expired"),
	catRefusal(DeviceCompromised, "DEVICE_COMPROMISED", "Device is jailbroken/rooted"),
	catRefusal(EmulatorDetected, "EMULATOR_DETECTED", "Running on simulator/emulator"),
	catRefusal(DebuggerDetected, "DEBUGGER_DETECTED", "Debugger is attached"),
	catRefusal(AppTampered, "APP_TAMPERED", "App binary has been modified"),

	// Apps and endpoints.
	{
		Code: AppNotFound, Status: 404, Message: "App ID doesn’t exist",
		Dialects: [numDialects]Spelling{
			ProtectMyAPI: {Code: "APP_NOT_FOUND", Status: 404, Exact: true},
			// The app is named by the credential the client sent: no such app means a wrong
			// credential (a 404 would send the developer looking for a wrong URL).
			Protekt: {Code: "invalid_credentials", Status: 401},
			License: {Code: "invalid_api_key", Status: 401},
			Generic: {Code: "AUTH-401", Status: 401, Title: "Authentication Failed"},
		},
		SDK: Spelling{Code: "invalid_app", Status: 200, Exact: true},
	},
	{
		Code: AppDisabled, Status: 403, Message: "App has been disabled",
		Dialects: [numDialects]Spelling{
			ProtectMyAPI: {Code: "APP_DISABLED", Status: 403, Exact: true},
			Protekt:      {Code: "access_denied", Status: 403},
			License:      {Code: "forbidden", Status: 403},
			Generic:      {Code: "AUTH-403", Status: 403, Title: "Permission Denied"},
		},
		// 002: invalid_app is "...or the app has been deactivated"; app_disabled is the
		// owner's account being suspended (ACCOUNT_DISABLED).
		SDK: Spelling{Code: "invalid_app", Status: 200, Exact: true},
	},
	{
		Code: EndpointNotFound, Status: 404, Message: "Endpoint slug doesn’t exist",
		Dialects: [numDialects]Spelling{
			ProtectMyAPI: {Code: "ENDPOINT_NOT_FOUND", Status: 404, Exact: true},
			// protekt's 404 codes are about users and sessions; keep the honest 404.
			Protekt: {Code: "access_denied", Status: 404},
			License: {Code: "not_found", Status: 404, Exact: true},
			Generic: {Code: "NOTFOUND-404", Status: 404, Title: "Resource Not Found", Exact: true},
		},
	},
	catRefusal(EndpointDisabled, "ENDPOINT_DISABLED", "Endpoint has been disabled"),
	catRefusal(EndpointNotLinked, "ENDPOINT_NOT_LINKED", "Endpoint not linked to app"),
	{
		Code: InvalidMethod, Status: 405, Message: "HTTP method not allowed",
		// 405 stays 405 in every dialect: HTTP requires it (with Allow) and no dialect but
		// protectmyapi documents a code for it.
		Dialects: [numDialects]Spelling{
			ProtectMyAPI: {Code: "INVALID_METHOD", Status: 405, Exact: true},
			Protekt:      {Code: "access_denied", Status: 405},
			License:      {Code: "bad_request", Status: 405},
			Generic:      {Code: "BADREQUEST-400", Status: 405, Title: "Bad Request"},
		},
	},

	// Upstream secrets: a missing, expired or unreadable upstream credential is the gateway's
	// fault, not the client's; other dialects say so with their server error.
	catSecret(SecretNotFound, "SECRET_NOT_FOUND", 404, "Secret doesn’t exist"),
	catSecret(SecretExpired, "SECRET_EXPIRED", 403, "Secret has expired"),
	catSecret(SecretDecryptionFailed, "SECRET_DECRYPTION_FAILED", 500, "Unable to decrypt secret"),

	// Rate limits and quotas. protekt has no rate-limit code: service_unavailable ("retry
	// later") with the real 429, so that Retry-After and the X-RateLimit headers still apply.
	{
		Code: RateLimited, Status: 429, Message: "Too many requests",
		Dialects: [numDialects]Spelling{
			ProtectMyAPI: {Code: "RATE_LIMITED", Status: 429, Exact: true},
			Protekt:      {Code: "service_unavailable", Status: 429},
			License:      {Code: "rate_limited", Status: 429, Exact: true},
			Generic:      {Code: "TOOLIMITED-429", Status: 429, Title: "Too Many Requests", Exact: true},
		},
	},
	{
		Code: QuotaExceeded, Status: 429, Message: "Monthly quota exceeded",
		Dialects: [numDialects]Spelling{
			ProtectMyAPI: {Code: "QUOTA_EXCEEDED", Status: 429, Exact: true},
			Protekt:      {Code: "service_unavailable", Status: 429},
			License:      {Code: "rate_limited", Status: 429},
			// 003: "Exceeding the allowed number of API calls within a specific timeframe."
			Generic: {Code: "TOOLIMITED-429", Status: 429, Title: "Too Many Requests", Exact: true},
		},
	},
	{
		Code: DeviceRateLimited, Status: 429, Message: "Too many requests from this device",
		Dialects: [numDialects]Spelling{
			ProtectMyAPI: {Code: "DEVICE_RATE_LIMITED", Status: 429, Exact: true},
			Protekt:      {Code: "service_unavailable", Status: 429},
			License:      {Code: "rate_limited", Status: 429, Exact: true},
			Generic:      {Code: "TOOLIMITED-429", Status: 429, Title: "Too Many Requests", Exact: true},
		},
	},
	{
		Code: NoCredits, Status: 429, Message: "Insufficient credits to complete the operation",
		Dialects: [numDialects]Spelling{
			// The developer's plan is used up, as for a monthly quota.
			ProtectMyAPI: {Code: "QUOTA_EXCEEDED", Status: 429},
			Protekt:      {Code: "service_unavailable", Status: 429},
			License:      {Code: "no_credits", Status: 402, Exact: true},
			Generic:      {Code: "TOOLIMITED-429", Status: 429, Title: "Too Many Requests"},
		},
		SDK: Spelling{Code: "no_credits", Status: 200, Exact: true},
	},

	// Proxy errors (Envoy local replies): the gateway statuses are kept in every dialect so
	// that clients and retry middleware see a 502/503/504.
	catProxy(ProxyError, "PROXY_ERROR", 502, "Error forwarding to target API", "internal_error"),
	catProxy(TargetTimeout, "TARGET_TIMEOUT", 504, "Target API didn’t respond in time", "service_unavailable"),
	catProxy(TargetUnavailable, "TARGET_UNAVAILABLE", 503, "Target API is unavailable", "service_unavailable"),
	catProxy(TargetError, "TARGET_ERROR", 502, "Target API returned an error", "internal_error"),
	catProxy(InvalidResponse, "INVALID_RESPONSE", 502, "Target API returned invalid response", "internal_error"),

	// Request validation.
	catValidation(ValidationError, "VALIDATION_ERROR", "Request body validation failed"),
	catValidation(InvalidJSON, "INVALID_JSON", "Request body is not valid JSON"),
	catValidation(MissingField, "MISSING_FIELD", "Required field is missing"),
	catValidation(InvalidField, "INVALID_FIELD", "Field has invalid value"),
	{
		Code: PayloadTooLarge, Status: 413, Message: "Request body exceeds size limit",
		// 413 stays 413: only protectmyapi documents a code for it.
		Dialects: [numDialects]Spelling{
			ProtectMyAPI: {Code: "PAYLOAD_TOO_LARGE", Status: 413, Exact: true},
			Protekt:      {Code: "access_denied", Status: 413},
			License:      {Code: "bad_request", Status: 413},
			Generic:      {Code: "BADREQUEST-400", Status: 413, Title: "Bad Request"},
		},
	},
	{
		Code: Conflict, Status: 409, Message: "Conflict with a request using the same idempotency key",
		// 409 stays 409 (the status idempotent clients act on): only generic documents a
		// conflict; elsewhere the nearest client-error code.
		Dialects: [numDialects]Spelling{
			ProtectMyAPI: {Code: "VALIDATION_ERROR", Status: 409},
			Protekt:      {Code: "access_denied", Status: 409},
			License:      {Code: "bad_request", Status: 409},
			Generic:      {Code: "CONFLICT-409", Status: 409, Title: "Conflict", Exact: true},
		},
	},

	// Accounts and organisations.
	{
		Code: AccountDisabled, Status: 403, Message: "Account has been disabled",
		Dialects: [numDialects]Spelling{
			ProtectMyAPI: {Code: "ACCOUNT_DISABLED", Status: 403, Exact: true},
			Protekt:      {Code: "access_denied", Status: 403},
			License:      {Code: "forbidden", Status: 403},
			Generic:      {Code: "AUTH-403", Status: 403, Title: "Permission Denied"},
		},
		// "The app owner's account is suspended."
		SDK: Spelling{Code: "app_disabled", Status: 200, Exact: true},
	},
	catRefusal(AccountPendingDeletion, "ACCOUNT_PENDING_DELETION", "Account scheduled for deletion"),
	{
		Code: EmailNotVerified, Status: 403, Message: "Email address not verified",
		Dialects: [numDialects]Spelling{
			ProtectMyAPI: {Code: "EMAIL_NOT_VERIFIED", Status: 403, Exact: true},
			Protekt:      {Code: "email_not_verified", Status: 403, Exact: true},
			License:      {Code: "forbidden", Status: 403},
			Generic:      {Code: "AUTH-403", Status: 403, Title: "Permission Denied"},
		},
	},
	// Not email_not_verified in protekt: the user's email may well be verified.
	catRefusal(IPNotVerified, "IP_NOT_VERIFIED", "Login from new IP requires verification"),
	{
		Code: OrgNotFound, Status: 404, Message: "Organization doesn’t exist",
		Dialects: [numDialects]Spelling{
			ProtectMyAPI: {Code: "ORG_NOT_FOUND", Status: 404, Exact: true},
			Protekt:      {Code: "access_denied", Status: 404},
			License:      {Code: "not_found", Status: 404},
			Generic:      {Code: "NOTFOUND-404", Status: 404, Title: "Resource Not Found"},
		},
	},
	{
		Code: OrgAccessDenied, Status: 403, Message: "No access to this organization",
		Dialects: [numDialects]Spelling{
			ProtectMyAPI: {Code: "ORG_ACCESS_DENIED", Status: 403, Exact: true},
			// "Access to resource is forbidden": the organisation is the resource.
			Protekt: {Code: "access_denied", Status: 403, Exact: true},
			License: {Code: "forbidden", Status: 403},
			// 003: "Resource is restricted to specific user groups or roles."
			Generic: {Code: "AUTH-403", Status: 403, Title: "Permission Denied", Exact: true},
		},
	},
	// A plan limit: 000 makes it a 403 (waiting does not help), so every dialect refuses.
	catRefusal(OrgLimitReached, "ORG_LIMIT_REACHED", "Organization limit reached"),
	{
		Code: NotOrgMember, Status: 403, Message: "Not a member of organization",
		Dialects: [numDialects]Spelling{
			ProtectMyAPI: {Code: "NOT_ORG_MEMBER", Status: 403, Exact: true},
			Protekt:      {Code: "access_denied", Status: 403},
			License:      {Code: "forbidden", Status: 403},
			Generic:      {Code: "AUTH-403", Status: 403, Title: "Permission Denied", Exact: true},
		},
	},

	// Devices and licenses (002). A wrong key is a wrong credential (401); a revoked, expired,
	// bound-elsewhere or blocked one is a refusal that re-authenticating cannot fix (403).
	{
		Code: InvalidKey, Status: 401, Message: "Invalid license key",
		Dialects: [numDialects]Spelling{
			ProtectMyAPI: {Code: "UNAUTHORIZED", Status: 401},
			Protekt:      {Code: "invalid_credentials", Status: 401},
			// Not not_found: that is the developer API's answer for a license it manages; a
			// client presenting a bad key has a bad credential.
			License: {Code: "invalid_api_key", Status: 401},
			Generic: {Code: "AUTH-401", Status: 401, Title: "Authentication Failed"},
		},
		SDK: Spelling{Code: "invalid_key", Status: 200, Exact: true},
	},
	catLicense(LicenseRevoked, "The license has been revoked", "revoked"),
	catLicense(LicenseExpired, "The license has expired", "expired"),
	catLicense(HWIDMismatch, "This license is already in use on another device", "hwid_mismatch"),
	catLicense(Blocked, "Access from this device or network is blocked", "blocked"),
	{
		Code: SessionExpired, Status: 401, Message: "The session is invalid or has expired",
		Dialects: [numDialects]Spelling{
			// The client must authenticate again, as for an expired JWT.
			ProtectMyAPI: {Code: "TOKEN_EXPIRED", Status: 401},
			Protekt:      {Code: "token_expired", Status: 401},
			License:      {Code: "invalid_api_key", Status: 401},
			// 003 lists "Session has timed out" among the causes of AUTH-401.
			Generic: {Code: "AUTH-401", Status: 401, Title: "Authentication Failed", Exact: true},
		},
		SDK: Spelling{Code: "session_expired", Status: 200, Exact: true},
	},
	catSession(SessionRevoked, "The session has been revoked", "session_revoked", 401),
	catSession(SessionNotFound, "The session does not exist", "session_not_found", 404),
	catSession(RefreshTokenInvalid, "The refresh token is invalid or revoked", "refresh_token_invalid", 401),

	// Server.
	{
		Code: InternalError, Status: 500, Message: "Unexpected server error",
		Dialects: [numDialects]Spelling{
			ProtectMyAPI: {Code: "INTERNAL_ERROR", Status: 500, Exact: true},
			Protekt:      {Code: "internal_error", Status: 500, Exact: true},
			License:      {Code: "internal_error", Status: 500, Exact: true},
			Generic:      {Code: "SERVER-500", Status: 500, Title: "Internal Server Error", Exact: true},
		},
	},
	{
		Code: ServiceUnavailable, Status: 503, Message: "Service temporarily unavailable",
		Dialects: [numDialects]Spelling{
			ProtectMyAPI: {Code: "SERVICE_UNAVAILABLE", Status: 503, Exact: true},
			Protekt:      {Code: "service_unavailable", Status: 503, Exact: true},
			License:      {Code: "internal_error", Status: 503},
			Generic:      {Code: "SERVER-500", Status: 503, Title: "Internal Server Error"},
		},
	},
	{
		Code: Maintenance, Status: 503, Message: "Service under maintenance",
		Dialects: [numDialects]Spelling{
			ProtectMyAPI: {Code: "MAINTENANCE", Status: 503, Exact: true},
			// "Temporary outage or maintenance."
			Protekt: {Code: "service_unavailable", Status: 503, Exact: true},
			License: {Code: "internal_error", Status: 503},
			Generic: {Code: "SERVER-500", Status: 503, Title: "Internal Server Error"},
		},
	},
}

// catRefusal is a 403 that 000 documents and the other dialects spell with their generic refusal.
func catRefusal(c Code, pma, msg string) Entry {
	return Entry{
		Code: c, Status: 403, Message: msg,
		Dialects: [numDialects]Spelling{
			ProtectMyAPI: {Code: pma, Status: 403, Exact: true},
			Protekt:      {Code: "access_denied", Status: 403},
			License:      {Code: "forbidden", Status: 403},
			Generic:      {Code: "AUTH-403", Status: 403, Title: "Permission Denied"},
		},
	}
}

// catSecret is an upstream-credential failure: 000 documents its status, the other dialects
// spell it as their server error with status 500.
func catSecret(c Code, pma string, status int, msg string) Entry {
	return Entry{
		Code: c, Status: status, Message: msg,
		Dialects: [numDialects]Spelling{
			ProtectMyAPI: {Code: pma, Status: status, Exact: true},
			Protekt:      {Code: "internal_error", Status: 500},
			License:      {Code: "internal_error", Status: 500},
			Generic:      {Code: "SERVER-500", Status: 500, Title: "Internal Server Error"},
		},
	}
}

// catProxy is an upstream failure with its gateway status kept in every dialect; protekt says
// service_unavailable for the transient ones (timeout, unavailable), internal_error otherwise.
func catProxy(c Code, pma string, status int, msg, protekt string) Entry {
	return Entry{
		Code: c, Status: status, Message: msg,
		Dialects: [numDialects]Spelling{
			ProtectMyAPI: {Code: pma, Status: status, Exact: true},
			Protekt:      {Code: protekt, Status: status},
			License:      {Code: "internal_error", Status: status},
			Generic:      {Code: "SERVER-500", Status: status, Title: "Internal Server Error"},
		},
	}
}

// catValidation is a 400 about the request body: license and generic document it exactly (and
// the license SDK's bad_request), protekt has no client-error code.
func catValidation(c Code, pma, msg string) Entry {
	return Entry{
		Code: c, Status: 400, Message: msg,
		Dialects: [numDialects]Spelling{
			ProtectMyAPI: {Code: pma, Status: 400, Exact: true},
			Protekt:      {Code: "access_denied", Status: 400},
			License:      {Code: "bad_request", Status: 400, Exact: true},
			Generic:      {Code: "BADREQUEST-400", Status: 400, Title: "Bad Request", Exact: true},
		},
		SDK: Spelling{Code: "bad_request", Status: 200, Exact: true},
	}
}

// catLicense is a license that exists but may not be used here: 000 has no license codes, so
// FORBIDDEN (re-authenticating cannot help, unlike TOKEN_EXPIRED); the SDK surface documents it.
// catSession is a refusal of a session Gatehouse issued: 001 documents it exactly; the
// client must log in again, which the other dialects say with their invalid-credential
// code (401), and the SDK with session_expired ("the session token is invalid").
func catSession(c Code, msg, protekt string, protektStatus int) Entry {
	return Entry{
		Code: c, Status: 401, Message: msg,
		Dialects: [numDialects]Spelling{
			ProtectMyAPI: {Code: "INVALID_TOKEN", Status: 401},
			Protekt:      {Code: protekt, Status: protektStatus, Exact: true},
			License:      {Code: "invalid_api_key", Status: 401},
			Generic:      {Code: "AUTH-401", Status: 401, Title: "Authentication Failed", Exact: true},
		},
		SDK: Spelling{Code: "session_expired", Status: 200, Exact: true},
	}
}

func catLicense(c Code, msg, sdk string) Entry {
	return Entry{
		Code: c, Status: 403, Message: msg,
		Dialects: [numDialects]Spelling{
			ProtectMyAPI: {Code: "FORBIDDEN", Status: 403},
			Protekt:      {Code: "access_denied", Status: 403},
			License:      {Code: "forbidden", Status: 403},
			Generic:      {Code: "AUTH-403", Status: 403, Title: "Permission Denied"},
		},
		SDK: Spelling{Code: sdk, Status: 200, Exact: true},
	}
}
