package config

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/extproc"
	"github.com/gatehouse/gatehouse/policy/idempotency"
	"github.com/gatehouse/gatehouse/ratelimit/state"
)

// IdempotencySettings make an endpoint's requests idempotent with a client-chosen key:
// the first request with a key proceeds, a duplicate while it is in flight or with
// another method, path or body is a conflict (409), and a repeat after completion gets
// the stored response replayed. Keys are scoped to the app and the authenticated caller.
type IdempotencySettings struct {
	// Header carries the key (default Idempotency-Key).
	Header string `yaml:"header"`
	// Methods are the methods that take a key (default POST, PUT, PATCH).
	Methods []string `yaml:"methods"`
	// Required refuses a request of one of Methods without a key.
	Required bool `yaml:"required"`
	// TTL is how long a completed request's response is replayed (default 24h; 1s to 7 days).
	TTL time.Duration `yaml:"ttl"`
	// InFlightTTL bounds how long a request that never ends (a replica that died) blocks
	// its key (default 1m; at most ttl).
	InFlightTTL time.Duration `yaml:"in_flight_ttl"`
	// MaxResponseBytes is the largest response body stored for replay (default 65536; at
	// most 983040); a repeat of a request whose response was larger is refused.
	MaxResponseBytes int `yaml:"max_response_bytes"`
	// ReplayHeaders are the response headers stored and replayed (default content-type;
	// never set-cookie or framing headers such as content-length).
	ReplayHeaders []string `yaml:"replay_headers"`
}

// Bounds and defaults of IdempotencySettings.
const (
	defaultIdemTTL      = 24 * time.Hour
	maxIdemTTL          = 7 * 24 * time.Hour
	defaultIdemInFlight = time.Minute
	defaultIdemBody     = 64 << 10
	// maxIdemBody leaves room for the entry's headers within one record.
	maxIdemBody = state.MaxRecordValue - 64<<10
)

// idempotency compiles an endpoint's idempotency settings; nil stays nil.
func (c *compiler) idempotency(path string, s *IdempotencySettings) *idempotency.Rule {
	if s == nil {
		return nil
	}
	r := &idempotency.Rule{Header: c.header(path+".header", s.Header, "idempotency-key"), Required: s.Required}
	r.Methods = []string{"POST", "PUT", "PATCH"}
	if s.Methods != nil {
		r.Methods = nil
		for j, m := range s.Methods {
			u := strings.ToUpper(m)
			if !slices.Contains(methods, u) {
				c.add(fmt.Sprintf("%s.methods[%d]", path, j), "unknown HTTP method %q", m)
			}
			r.Methods = append(r.Methods, u)
		}
	}
	r.TTL = orDefault(s.TTL, defaultIdemTTL)
	if r.TTL < time.Second || r.TTL > maxIdemTTL {
		c.add(path+".ttl", "must be between 1s and 168h")
	}
	r.InFlightTTL = orDefault(s.InFlightTTL, defaultIdemInFlight)
	if r.InFlightTTL <= 0 || r.InFlightTTL > r.TTL {
		c.add(path+".in_flight_ttl", "must be positive and at most ttl")
	}
	r.MaxBody = s.MaxResponseBytes
	if r.MaxBody == 0 {
		r.MaxBody = defaultIdemBody
	}
	if r.MaxBody < 0 || r.MaxBody > maxIdemBody {
		c.add(path+".max_response_bytes", "must be between 1 and %d", maxIdemBody)
	}
	r.Headers = []string{"content-type"}
	if s.ReplayHeaders != nil {
		r.Headers = nil
		for j, h := range s.ReplayHeaders {
			hp := fmt.Sprintf("%s.replay_headers[%d]", path, j)
			name := c.header(hp, h, "")
			if why, ok := unreplayable[name]; ok {
				c.add(hp, "%s is not replayed: %s", name, why)
			}
			r.Headers = append(r.Headers, name)
		}
	}
	return r
}

// unreplayable are the response headers a replay never carries, and why. A stored entry
// is replayed for ttl, to whoever holds the caller's key, from a store that keeps it in
// clear.
var unreplayable = map[string]string{
	"set-cookie":           "it carries per-session credentials, kept in the store in clear",
	"content-length":       framed,
	"transfer-encoding":    framed,
	"connection":           framed,
	"keep-alive":           framed,
	"te":                   framed,
	"trailer":              framed,
	"upgrade":              framed,
	"proxy-connection":     framed,
	extproc.ReplayedHeader: "Gatehouse sets it on every replay",
}

const framed = "Envoy frames the replayed response itself"

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}
