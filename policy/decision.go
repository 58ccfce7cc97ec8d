package policy

import (
	"time"

	"github.com/gatehouse/gatehouse/signature"
)

// Step names the pipeline step that decided.
type Step string

// The pipeline steps, in order (DESIGN section 2).
const (
	StepApp      Step = "app"
	StepEndpoint Step = "endpoint"
	StepNetwork  Step = "network"
	StepIdentity Step = "identity"
	StepAttest   Step = "attestation"
	StepLicense  Step = "license"
	StepNonce    Step = "nonce" // signed endpoints: the request's nonce, once per window
	StepPayload  Step = "payload"
	StepLimits   Step = "limits"
	StepSecrets  Step = "secrets"
	StepServe    Step = "serve" // an endpoint Gatehouse serves itself
	StepDone     Step = "done"  // every step passed
)

// Header is one header name and value; names are lower-case.
type Header struct {
	Key, Value string
}

// Outcome is what a Decision tells Envoy to do.
type Outcome uint8

// The outcomes.
const (
	Allow Outcome = iota // let the request through
	Deny                 // answer the client with the rendered denial
	// Undecided means Gatehouse could not decide and the fail mode is "error": the adapter
	// returns a gRPC UNAVAILABLE error so that Envoy's failure_mode_allow decides.
	Undecided
	// Served means Gatehouse answers the request itself (an endpoint it serves: session
	// exchange, refresh, heartbeat, challenge, JWKS): Direct holds the answer, which the
	// adapter sends to the client instead of forwarding the request.
	Served
)

// Decision is the verdict on one request: a value, never an error.
type Decision struct {
	Outcome Outcome
	Code    Code // empty when allowed
	// Message overrides the catalogue message; it is safe to show a client.
	Message string
	Details []string // license bad_request details
	Step    Step
	Dialect Dialect
	SDKAuth bool // render license denials as the SDK auth endpoints do

	App      string
	Endpoint string
	DeviceID string // verified device id, when one was verified
	// Caller is an opaque, stable id of the authenticated caller on an allowed request
	// (CallerID); empty when none was established.
	Caller string
	// Client is the client address as lockouts count it ([ClientKey]), on an allowed
	// request to an endpoint whose response phase needs it (ForwardClient).
	Client string

	// Upstream headers to set (overwrite) on an allowed request, and request headers to
	// remove (the credentials Gatehouse consumed).
	Upstream []Header
	Remove   []string
	// Response headers for the client: on allow they are added to the upstream's response;
	// on deny they go with the denial (Allow, Retry-After, X-RateLimit-*).
	Response []Header

	RateLimit LimitResult // Name == "" when no limit applied
	// RetryAfter, when positive on a denial, becomes the Retry-After header (whole
	// seconds, rounded up): rate limits, lockouts, maintenance windows with an end.
	RetryAfter time.Duration

	// FailOpen is set when the request was allowed only because a dependency failed and
	// the fail mode is "open". Cause says, for operators only, what failed (never shown to
	// clients).
	FailOpen bool
	Cause    string

	// Signer, when set, signs the response the client receives (allow or deny): the
	// echoed Nonce (valid, or empty) and a signature at SignedAt.
	Signer   *signature.Signer
	Nonce    string
	SignedAt time.Time
	// Direct is the answer of an endpoint Gatehouse serves itself (Outcome Served).
	Direct *Direct

	CacheHit            bool   // a verified credential came from the verdict cache
	AttestationProvider string // the provider whose credential was evaluated
	attested            bool   // AttestationProvider verified its credential
}

// Allowed reports whether the request may pass.
func (d *Decision) Allowed() bool { return d.Outcome == Allow }

// Render renders a denial for the client in the decision's dialect.
func (d *Decision) Render() Rendered {
	return Render(d.Dialect, d.Code, RenderOptions{Message: d.Message, SDKAuth: d.SDKAuth, Details: d.Details})
}
