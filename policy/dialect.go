package policy

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Dialect is the error format an app's clients were promised. It is chosen per app.
type Dialect uint8

// The dialects, one per seed document.
const (
	ProtectMyAPI Dialect = iota // {"success":false,"error":{"code","message"}} (000_*.txt)
	Protekt                     // {"error","message","statusCode"} (001_*.txt)
	License                     // {"error","message"}; SDK auth endpoints: 200 {"status":"failed","error"} (002_*.txt)
	Generic                     // {"code":"AUTH-401","title","message"} (003_*.txt)
	numDialects
)

var dialectNames = [numDialects]string{"protectmyapi", "protekt", "license", "generic"}

// String returns the configuration spelling of d.
func (d Dialect) String() string {
	if d < numDialects {
		return dialectNames[d]
	}
	return fmt.Sprintf("dialect(%d)", uint8(d))
}

// ParseDialect reads a configuration spelling; the empty string is the default, protectmyapi.
func ParseDialect(s string) (Dialect, error) {
	if s == "" {
		return ProtectMyAPI, nil
	}
	for i, n := range dialectNames {
		if strings.EqualFold(s, n) {
			return Dialect(i), nil
		}
	}
	return 0, fmt.Errorf("unknown dialect %q (want one of %s)", s, strings.Join(dialectNames[:], ", "))
}

// Spelling is how one dialect writes one code.
type Spelling struct {
	Code    string // the dialect's code string, e.g. "invalid_token" or "AUTH-401"
	Status  int    // the HTTP status the dialect documents for it
	Title   string // generic dialect only: the documented title, e.g. "Authentication Failed"
	Message string // the dialect's own default message; empty means the entry's
	// Exact is true when the seed document lists this code for this reason; false when the
	// dialect has no such code and this is its nearest documented one.
	Exact bool
}

// Entry is one row of the catalogue.
type Entry struct {
	Code    Code
	Status  int    // the HTTP status of the canonical (protectmyapi) spelling
	Message string // default client-facing message; never contains request data
	// Dialects holds each dialect's spelling, indexed by Dialect.
	Dialects [numDialects]Spelling
	// SDK is the license dialect's spelling on SDK auth endpoints (/auth/validate,
	// /auth/heartbeat), answered with HTTP 200 and {"status":"failed","error":...}. A zero
	// SDK (empty Code) means the SDK surface documents no such error: the developer-API
	// spelling is used instead.
	SDK Spelling
}

var catalogueIndex = func() map[Code]*Entry {
	m := make(map[Code]*Entry, len(catalogue))
	for i := range catalogue {
		m[catalogue[i].Code] = &catalogue[i]
	}
	return m
}()

// Catalogue returns every row, in document order. The slice must not be modified.
func Catalogue() []Entry { return catalogue }

// Lookup returns the row of c.
func Lookup(c Code) (*Entry, bool) {
	e, ok := catalogueIndex[c]
	return e, ok
}

// Rendered is a denial as the client receives it.
type Rendered struct {
	Status int    // HTTP status
	Code   string // the dialect's code string
	Body   []byte // JSON body
}

// RenderOptions are the parts of a denial that vary per request.
type RenderOptions struct {
	Message string   // overrides the default message; must be safe to show a client
	SDKAuth bool     // the endpoint is a license SDK auth endpoint (validate/heartbeat)
	Details []string // license bad_request details
}

// Render writes the denial c in dialect d. An unknown code renders as INTERNAL_ERROR.
func Render(d Dialect, c Code, o RenderOptions) Rendered {
	e, ok := Lookup(c)
	if !ok {
		e = catalogueIndex[InternalError]
	}
	if d >= numDialects {
		d = ProtectMyAPI
	}
	sp := e.Dialects[d]
	msg := o.Message
	if msg == "" {
		msg = sp.Message
	}
	if msg == "" {
		msg = e.Message
	}
	var body any
	status := sp.Status
	switch d {
	case Protekt:
		body = protektBody{Error: sp.Code, Message: msg, StatusCode: sp.Status}
	case License:
		if o.SDKAuth && e.SDK.Code != "" {
			sp, status = e.SDK, e.SDK.Status
			if sp.Code == "bad_request" && len(o.Details) == 0 {
				o.Details = []string{msg}
			}
			if sp.Code != "bad_request" {
				o.Details = nil
			}
			body = licenseSDKBody{Status: "failed", Error: sp.Code, Details: o.Details}
		} else {
			body = licenseBody{Error: sp.Code, Message: msg}
		}
	case Generic:
		body = genericBody{Code: sp.Code, Title: sp.Title, Message: msg}
	default:
		body = protectBody{Error: protectError{Code: sp.Code, Message: msg}}
	}
	b, err := json.Marshal(body)
	if err != nil { // cannot happen: the bodies are plain strings and slices
		b = []byte(`{"success":false,"error":{"code":"INTERNAL_ERROR","message":"Unexpected server error"}}`)
	}
	return Rendered{Status: status, Code: sp.Code, Body: b}
}

type protectError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

type protectBody struct {
	Success bool         `json:"success"`
	Error   protectError `json:"error"`
}

type protektBody struct {
	Error      string `json:"error"`
	Message    string `json:"message"`
	StatusCode int    `json:"statusCode"`
}

type licenseBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

type licenseSDKBody struct {
	Status  string   `json:"status"`
	Error   string   `json:"error"`
	Details []string `json:"details,omitempty"`
}

type genericBody struct {
	Code    string `json:"code"`
	Title   string `json:"title"`
	Message string `json:"message"`
}
