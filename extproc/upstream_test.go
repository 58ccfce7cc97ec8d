package extproc

import (
	"encoding/json"
	"testing"

	"github.com/gatehouse/gatehouse/policy"
)

// TestUpstreamErrorRewrite: with upstream_errors rewrite, an upstream 5xx becomes the
// dialect's TARGET_* code with its status class kept (bodies and statuses as 000_*.txt
// and 003_*.txt document them); anything below 500 passes untouched, and the
// upstream's body never reaches the client.
func TestUpstreamErrorRewrite(t *testing.T) {
	const (
		pmaError       = `{"success":false,"error":{"code":"TARGET_ERROR","message":"Target API returned an error"}}`
		pmaUnavailable = `{"success":false,"error":{"code":"TARGET_UNAVAILABLE","message":"Target API is unavailable"}}`
		pmaTimeout     = `{"success":false,"error":{"code":"TARGET_TIMEOUT","message":"Target API didn’t respond in time"}}`
	)
	for _, tc := range []struct {
		name     string
		dialect  policy.Dialect
		upstream string
		status   uint32 // 0: passes
		body     string // protectmyapi: the whole body
		code     string // other dialects: the code field
	}{
		{"499 passes", policy.ProtectMyAPI, "499", 0, "", ""},
		{"500", policy.ProtectMyAPI, "500", 502, pmaError, ""},
		{"501", policy.ProtectMyAPI, "501", 502, pmaError, ""},
		{"502", policy.ProtectMyAPI, "502", 502, pmaError, ""},
		{"503", policy.ProtectMyAPI, "503", 503, pmaUnavailable, ""},
		{"504", policy.ProtectMyAPI, "504", 504, pmaTimeout, ""},
		{"599", policy.ProtectMyAPI, "599", 502, pmaError, ""},
		{"600 passes", policy.ProtectMyAPI, "600", 0, "", ""},
		{"200 passes", policy.ProtectMyAPI, "200", 0, "", ""},
		{"generic 503", policy.Generic, "503", 503, "", "SERVER-500"},
		{"generic 500", policy.Generic, "500", 502, "", "SERVER-500"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := routesWith(Route{UpstreamErrors: true, Dialect: tc.dialect}, nil, needs{})
			c := serve(t, NewServer(func() *Routes { return rs }, Options{}))
			s, err := c.Process(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			m := exchangeOne(t, s, reqHeaders(metadata("a", "e", "allow"), true, ":method", "GET", ":path", "/e")).GetModeOverride()
			if m.GetResponseHeaderMode() != 1 || m.GetResponseBodyMode() != 0 {
				t.Fatalf("mode %v, want response headers only", m)
			}
			resp := exchangeOne(t, s, respHeaders(false, ":status", tc.upstream, "content-length", "18"))
			ir := resp.GetImmediateResponse()
			if tc.status == 0 {
				if ir != nil || resp.GetResponseHeaders() == nil {
					t.Fatalf("answer %v, want the upstream's response to pass", resp)
				}
				return
			}
			if ir == nil || uint32(ir.GetStatus().GetCode()) != tc.status {
				t.Fatalf("answer %v, want status %d", resp, tc.status)
			}
			if tc.body != "" && string(ir.GetBody()) != tc.body {
				t.Fatalf("body %s, want %s", ir.GetBody(), tc.body)
			}
			if tc.code != "" {
				var b struct{ Code string }
				if json.Unmarshal(ir.GetBody(), &b); b.Code != tc.code {
					t.Fatalf("body %s, want code %s", ir.GetBody(), tc.code)
				}
			}
		})
	}
}

// TestResponseBodyBound: a buffered response body over the route's bound fails closed
// with INVALID_RESPONSE 502; one at the bound passes.
func TestResponseBodyBound(t *testing.T) {
	for _, tc := range []struct {
		name   string
		parts  []string
		status uint32
	}{
		{"at the bound", []string{"1234", "5678"}, 0},
		{"one over", []string{"1234", "56789"}, 502},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{doneCh: make(chan struct{})}
			rs := routesWith(Route{MaxBody: 8}, rec, needs{responseBody: true})
			c := serve(t, NewServer(func() *Routes { return rs }, Options{}))
			s, err := c.Process(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			exchangeOne(t, s, reqHeaders(metadata("a", "e", "allow"), true, ":method", "GET", ":path", "/e"))
			exchangeOne(t, s, respHeaders(false, ":status", "200"))
			exchangeOne(t, s, respBody(tc.parts[0], false))
			resp := exchangeOne(t, s, respBody(tc.parts[1], true))
			ir := resp.GetImmediateResponse()
			if tc.status == 0 {
				if ir != nil {
					t.Fatalf("answer %v, want the body to pass", resp)
				}
				return
			}
			want := `{"success":false,"error":{"code":"INVALID_RESPONSE","message":"Target API returned invalid response"}}`
			if ir == nil || uint32(ir.GetStatus().GetCode()) != tc.status || string(ir.GetBody()) != want {
				t.Fatalf("answer %v, want %d %s", resp, tc.status, want)
			}
		})
	}
}
