package policy

// Code names one client-visible outcome. The canonical spelling is the one of the
// ProtectMyAPI reference (000_*.txt); codes that only other dialects document get a
// canonical name in the same style. Each dialect spells a Code its own way (see [Catalogue]).
type Code string

// Authentication.
const (
	Unauthorized  Code = "UNAUTHORIZED"
	TokenExpired  Code = "TOKEN_EXPIRED"
	InvalidToken  Code = "INVALID_TOKEN"
	Forbidden     Code = "FORBIDDEN"
	AccountLocked Code = "ACCOUNT_LOCKED" // protekt account_locked (423): brute-force lockout
)

// Attestation.
const (
	AttestationFailed   Code = "ATTESTATION_FAILED"
	AttestationRequired Code = "ATTESTATION_REQUIRED"
	InvalidAttestation  Code = "INVALID_ATTESTATION"
	AttestationExpired  Code = "ATTESTATION_EXPIRED"
	DeviceCompromised   Code = "DEVICE_COMPROMISED"
	EmulatorDetected    Code = "EMULATOR_DETECTED"
	DebuggerDetected    Code = "DEBUGGER_DETECTED"
	AppTampered         Code = "APP_TAMPERED"
)

// Apps and endpoints.
const (
	AppNotFound       Code = "APP_NOT_FOUND"
	AppDisabled       Code = "APP_DISABLED"
	EndpointNotFound  Code = "ENDPOINT_NOT_FOUND"
	EndpointDisabled  Code = "ENDPOINT_DISABLED"
	EndpointNotLinked Code = "ENDPOINT_NOT_LINKED"
	InvalidMethod     Code = "INVALID_METHOD"
)

// Upstream secrets.
const (
	SecretNotFound         Code = "SECRET_NOT_FOUND"
	SecretExpired          Code = "SECRET_EXPIRED"
	SecretDecryptionFailed Code = "SECRET_DECRYPTION_FAILED"
)

// Rate limits and quotas.
const (
	RateLimited       Code = "RATE_LIMITED"
	QuotaExceeded     Code = "QUOTA_EXCEEDED"
	DeviceRateLimited Code = "DEVICE_RATE_LIMITED"
	NoCredits         Code = "NO_CREDITS" // license no_credits (402): prepaid credits used up
)

// Proxy errors: produced by Envoy's local replies, listed so every document code has a row.
const (
	ProxyError        Code = "PROXY_ERROR"
	TargetTimeout     Code = "TARGET_TIMEOUT"
	TargetUnavailable Code = "TARGET_UNAVAILABLE"
	TargetError       Code = "TARGET_ERROR"
	InvalidResponse   Code = "INVALID_RESPONSE"
)

// Request validation.
const (
	ValidationError Code = "VALIDATION_ERROR"
	InvalidJSON     Code = "INVALID_JSON"
	MissingField    Code = "MISSING_FIELD"
	InvalidField    Code = "INVALID_FIELD"
	PayloadTooLarge Code = "PAYLOAD_TOO_LARGE"
	Conflict        Code = "CONFLICT" // generic CONFLICT-409: an idempotency key in flight or reused
)

// Accounts and organisations.
const (
	AccountDisabled        Code = "ACCOUNT_DISABLED"
	AccountPendingDeletion Code = "ACCOUNT_PENDING_DELETION"
	EmailNotVerified       Code = "EMAIL_NOT_VERIFIED"
	IPNotVerified          Code = "IP_NOT_VERIFIED"
	OrgNotFound            Code = "ORG_NOT_FOUND"
	OrgAccessDenied        Code = "ORG_ACCESS_DENIED"
	OrgLimitReached        Code = "ORG_LIMIT_REACHED"
	NotOrgMember           Code = "NOT_ORG_MEMBER"
)

// Devices and licenses (002_*.txt).
const (
	InvalidKey     Code = "INVALID_KEY"     // license invalid_key
	LicenseRevoked Code = "LICENSE_REVOKED" // license revoked
	LicenseExpired Code = "LICENSE_EXPIRED" // license expired
	HWIDMismatch   Code = "HWID_MISMATCH"   // license hwid_mismatch
	Blocked        Code = "BLOCKED"         // license blocked: device or IP on a block list
	SessionExpired Code = "SESSION_EXPIRED" // license session_expired (heartbeat)
)

// Sessions issued by Gatehouse (001_*.txt).
const (
	SessionRevoked      Code = "SESSION_REVOKED"       // protekt session_revoked: revoked through the admin API
	SessionNotFound     Code = "SESSION_NOT_FOUND"     // protekt session_not_found: unknown session id
	RefreshTokenInvalid Code = "REFRESH_TOKEN_INVALID" // protekt refresh_token_invalid: unknown, reused or expired
)

// Server.
const (
	InternalError      Code = "INTERNAL_ERROR"
	ServiceUnavailable Code = "SERVICE_UNAVAILABLE"
	Maintenance        Code = "MAINTENANCE"
)
