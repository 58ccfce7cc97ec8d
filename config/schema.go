package config

import "time"

// File is the configuration file as written by an operator. Every field is documented in
// the README's configuration reference. Unknown keys are errors.
type File struct {
	Server       Server        `yaml:"server"`
	JWTProviders []JWTProvider `yaml:"jwt_providers"`
	Secrets      []Secret      `yaml:"secrets"`
	Accounts     []Account     `yaml:"accounts"`
	Apps         []App         `yaml:"apps"`
	Endpoints    []Endpoint    `yaml:"endpoints"`
	Sessions     *Sessions     `yaml:"sessions"` // sessions Gatehouse issues (sessions.go)
	Extensions   `yaml:",inline"`
}

// Server holds server-wide settings.
type Server struct {
	DefaultDialect string `yaml:"default_dialect"`  // dialect before an app is known; default protectmyapi
	AppTokenHeader string `yaml:"app_token_header"` // default x-app-token
	APIKeyHeader   string `yaml:"api_key_header"`   // default x-api-key
	EndpointKey    string `yaml:"endpoint_key"`     // context_extensions key naming the endpoint; default endpoint
	TrustedHops    int    `yaml:"trusted_hops"`     // x-forwarded-for hops to trust; default 0 (Envoy's source address)
	FailMode       string `yaml:"fail_mode"`        // closed (default), open or error
	// CacheMaxBytes bounds the verdict cache (default 64 MiB). Read at start only.
	CacheMaxBytes int64 `yaml:"cache_max_bytes"`
	// LogLevel is debug, info (default), warn or error; applied on every reload.
	LogLevel string `yaml:"log_level"`
	// TLS secures the gRPC port. Taken from the first configuration that loads (a later
	// change applies at the next restart); its files are re-read when they change.
	TLS *TLS `yaml:"tls"`
	// CaseInsensitivePaths matches every endpoint path ignoring ASCII case.
	CaseInsensitivePaths bool `yaml:"case_insensitive_paths"`
	// MethodOverride is refuse (default: a request with x-http-method-override,
	// x-http-method or x-method-override is INVALID_METHOD) or follow (judged as the
	// method the header names).
	MethodOverride string `yaml:"method_override"`
}

// JWTProvider is an identity provider whose user JWTs endpoints may require.
type JWTProvider struct {
	Name string `yaml:"name"`
	// Issuer and Audiences are required unless AllowAnyIssuer / AllowAnyAudience say
	// explicitly that any is acceptable (never both for one claim).
	Issuer           string        `yaml:"issuer"`
	AllowAnyIssuer   bool          `yaml:"allow_any_issuer"`
	Audiences        []string      `yaml:"audiences"`
	AllowAnyAudience bool          `yaml:"allow_any_audience"`
	Algorithms       []string      `yaml:"algorithms"` // default [RS256, ES256]
	Leeway           time.Duration `yaml:"leeway"`     // default 30s
	JWKS             JWKS          `yaml:"jwks"`
	Claims           Claims        `yaml:"claims"`
}

// JWKS says where a key set comes from.
type JWKS struct {
	File       string        `yaml:"file"`
	URL        string        `yaml:"url"`
	Refresh    time.Duration `yaml:"refresh"`     // default 10m
	MinRefresh time.Duration `yaml:"min_refresh"` // least time between on-demand fetches (unknown kid, set not loaded); default 30s
	MaxBackoff time.Duration `yaml:"max_backoff"` // cap of the pause between on-demand fetches, doubling after each failure; default 5m
	FetchWait  time.Duration `yaml:"fetch_wait"`  // longest a request waits for an on-demand fetch; default 100ms, at most 1s
	MaxAge     time.Duration `yaml:"max_age"`     // stop using a set not refreshed for this long; default none
	// AllowHTTP permits a plain http:// URL (tests and local development only).
	AllowHTTP bool `yaml:"allow_http"`
	// CAFile adds a CA bundle for the HTTPS fetch.
	CAFile string `yaml:"ca_file"`
}

// Claims names the claims a provider uses.
type Claims struct {
	Roles         string `yaml:"roles"`
	Scopes        string `yaml:"scopes"`
	EmailVerified string `yaml:"email_verified"`
	Org           string `yaml:"org"`
	OrgRole       string `yaml:"org_role"`
}

// Secret is an upstream credential, read from a file or an environment variable.
type Secret struct {
	Name string `yaml:"name"`
	File string `yaml:"file"`
	Env  string `yaml:"env"`
	// Encrypted secrets hold base64(nonce || AES-256-GCM ciphertext) and are decrypted
	// with the 32-byte key in KeyFile or KeyEnv (raw, or base64).
	Encrypted bool      `yaml:"encrypted"`
	KeyFile   string    `yaml:"key_file"`
	KeyEnv    string    `yaml:"key_env"`
	ExpiresAt time.Time `yaml:"expires_at"`
}

// Account is the owner of apps.
type Account struct {
	Name  string `yaml:"name"`
	State string `yaml:"state"` // active (default), disabled, pending_deletion
}

// App is a client application.
type App struct {
	Name    string `yaml:"name"`
	Dialect string `yaml:"dialect"`
	// AppTokenSHA256 and APIKeySHA256 hold hex SHA-256 digests of the app's credentials
	// (`gatehouse hash` prints one); credentials never appear in the file.
	AppTokenSHA256 []string     `yaml:"app_token_sha256"`
	APIKeySHA256   []string     `yaml:"api_key_sha256"`
	Disabled       bool         `yaml:"disabled"`
	Account        string       `yaml:"account"`
	Organization   string       `yaml:"organization"`
	Endpoints      []string     `yaml:"endpoints"` // linked endpoint names; ["*"] links all
	FailMode       string       `yaml:"fail_mode"`
	Maintenance    *Maintenance `yaml:"maintenance"`
	AppExtensions  `yaml:",inline"`

	// Response configures the response phase (ext_proc) on the app's endpoints.
	Response *ResponseSettings `yaml:"response"`
}

// Maintenance switches an app or endpoint to MAINTENANCE 503.
type Maintenance struct {
	Enabled bool      `yaml:"enabled"`
	Until   time.Time `yaml:"until"`
	Message string    `yaml:"message"`
}

// Endpoint is an API endpoint, named by Envoy's context_extensions or matched by path.
type Endpoint struct {
	Name               string       `yaml:"name"`
	Path               string       `yaml:"path"`
	Prefix             bool         `yaml:"prefix"`
	CaseInsensitive    bool         `yaml:"case_insensitive"`
	Methods            []string     `yaml:"methods"`
	Disabled           bool         `yaml:"disabled"`
	Dialect            string       `yaml:"dialect"`
	SDKAuth            bool         `yaml:"sdk_auth"`
	Heartbeat          bool         `yaml:"heartbeat"`
	FailMode           string       `yaml:"fail_mode"`
	Maintenance        *Maintenance `yaml:"maintenance"`
	User               *UserAuth    `yaml:"user"`
	Payload            *Payload     `yaml:"payload"`
	Inject             []Inject     `yaml:"inject"`
	Cost               int64        `yaml:"cost"`
	Attestation        string       `yaml:"attestation"` // default (follow the app), require, exempt, optional
	Serve              string       `yaml:"serve"`       // served by Gatehouse: exchange, refresh, heartbeat, jwks, challenge
	EndpointExtensions `yaml:",inline"`

	// Response overrides the app's response phase settings on this endpoint.
	Response *ResponseSettings `yaml:"response"`
}

// UserAuth requires a user JWT.
type UserAuth struct {
	Provider             string   `yaml:"provider"`
	Header               string   `yaml:"header"`
	Optional             bool     `yaml:"optional"`
	Roles                []string `yaml:"roles"`
	Scopes               []string `yaml:"scopes"`
	RequireEmailVerified bool     `yaml:"require_email_verified"`
	RequireOrg           bool     `yaml:"require_org"`
	OrgRoles             []string `yaml:"org_roles"`
}

// Payload limits and validates request bodies.
type Payload struct {
	MaxBytes       int64          `yaml:"max_bytes"`
	JSONSchema     map[string]any `yaml:"json_schema"`
	JSONSchemaFile string         `yaml:"json_schema_file"`
}

// Inject sets an upstream header from a secret.
type Inject struct {
	Header string `yaml:"header"`
	Prefix string `yaml:"prefix"`
	Secret string `yaml:"secret"`
}
