package config

import (
	"fmt"

	"github.com/gatehouse/gatehouse/extproc"
	"github.com/gatehouse/gatehouse/policy"
)

// ResponseSettings configure the response phase (ext_proc) of an app, or of an endpoint
// where they override the app's, field by field.
type ResponseSettings struct {
	// UpstreamErrors is pass (default: upstream responses reach the client as they are)
	// or rewrite (upstream 5xx become the dialect's TARGET_* codes, status class kept).
	UpstreamErrors string `yaml:"upstream_errors"`
	// MaxBodyBytes bounds a body the response phase buffers; larger ones fail closed.
	// Default 1 MiB.
	MaxBodyBytes int `yaml:"max_body_bytes"`
	// Sign signs every response on the app's endpoints (an endpoint's block replaces
	// the app's whole, or opts out with disabled: true).
	Sign *SignSettings `yaml:"sign"`
	// Idempotency makes an endpoint's requests idempotent with a client's key (endpoints
	// only).
	Idempotency *IdempotencySettings `yaml:"idempotency"`
	// Login makes an endpoint a login endpoint for the account lockout (endpoints only).
	Login *LoginSettings `yaml:"login"`
}

// maxResponseBody is the largest max_body_bytes: bodies are held in memory per stream.
const maxResponseBody = 64 << 20

// responseRoutes compiles the response phase of every linked app and endpoint pair, and
// the parts of it that Check runs (signing: nonces and signed denials).
func (c *compiler) responseRoutes(f *File, s *Snapshot, opt *policy.Options, apps map[string]*policy.App, eps map[string]*policy.Endpoint) {
	c.signers(f, opt, apps, eps)
	rs := extproc.NewRoutes(opt.DefaultDialect)
	phases := map[string]endpointPhase{}
	for i := range f.Endpoints {
		e := &f.Endpoints[i]
		c.checkResponse(fmt.Sprintf("endpoints[%d].response", i), e.Response)
		phases[e.Name] = c.endpointPhase(fmt.Sprintf("endpoints[%d].response", i), e.Response, f, s)
		if ep := eps[e.Name]; ep != nil {
			ep.Caller = e.Response != nil
			ep.ForwardClient = phases[e.Name].login != nil
		}
	}
	for i := range f.Apps {
		a := &f.Apps[i]
		c.checkResponse(fmt.Sprintf("apps[%d].response", i), a.Response)
		c.appPhase(fmt.Sprintf("apps[%d].response", i), a.Response)
		app := apps[a.Name]
		if app == nil {
			continue
		}
		app.Caller = a.Response != nil
		for j := range f.Endpoints {
			e := &f.Endpoints[j]
			if !app.AllEndpoints && !app.Endpoints[e.Name] {
				continue
			}
			r := c.route(app, e, a.Response, e.Response)
			r.Sign = policy.SignerOf(app, eps[e.Name])
			phases[e.Name].apply(r)
			rs.Add(r)
		}
	}
	s.Response = rs
}

// route merges an app's response settings with an endpoint's into one route.
func (c *compiler) route(app *policy.App, e *Endpoint, as, es *ResponseSettings) *extproc.Route {
	r := &extproc.Route{App: app.Name, Endpoint: e.Name, Dialect: app.Dialect}
	if e.Dialect != "" {
		r.Dialect, _ = policy.ParseDialect(e.Dialect) // reported by endpoints
	}
	for _, s := range []*ResponseSettings{as, es} { // the endpoint's win
		if s == nil {
			continue
		}
		if s.UpstreamErrors != "" {
			r.UpstreamErrors = s.UpstreamErrors == "rewrite"
		}
		if s.MaxBodyBytes > 0 {
			r.MaxBody = s.MaxBodyBytes
		}
	}
	return r
}

// checkResponse validates one response block.
func (c *compiler) checkResponse(path string, s *ResponseSettings) {
	if s == nil {
		return
	}
	switch s.UpstreamErrors {
	case "", "pass", "rewrite":
	default:
		c.add(path+".upstream_errors", "unknown mode %q (want pass or rewrite)", s.UpstreamErrors)
	}
	if s.MaxBodyBytes < 0 || s.MaxBodyBytes > maxResponseBody {
		c.add(path+".max_body_bytes", "must be between 0 (default 1 MiB) and %d", maxResponseBody)
	}
}
