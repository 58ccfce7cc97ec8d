package policy_test

import (
	"slices"
	"testing"

	"github.com/gatehouse/gatehouse/policy"
)

// TestMethodNeverFallsThroughToALooserRule: a method the most specific rule for a path
// does not allow is INVALID_METHOD, never judged by a looser rule that allows it (a POST to
// a GET-only /v1/admin must not pass as a /v1 request, which the upstream would serve with
// its admin handler). Another rule for the same path may take it.
func TestMethodNeverFallsThroughToALooserRule(t *testing.T) {
	adminDelete := &policy.Endpoint{Name: "admin-delete", Path: "/v1/admin", Methods: []string{"DELETE"}}
	adminTree := &policy.Endpoint{Name: "admin-tree", Path: "/v1/admin", Prefix: true, Methods: []string{"PUT"}}
	// An exact rule shorter than the prefix rule sorts between them: it must not end the
	// search for another rule of the same path.
	v1Exact := &policy.Endpoint{Name: "v1-exact", Path: "/v1", Methods: []string{"GET"}}
	r := adminRules(t, policy.Options{}, func(admin, _ *policy.Endpoint) {
		admin.User = nil
		admin.Methods = []string{"GET"}
	}, adminDelete, adminTree, v1Exact)
	cases := []struct {
		method, path, ext string
		endpoint          string
		code              policy.Code
		allow             string // the Allow header of a 405
	}{
		{"GET", "/v1/admin", "", "admin", "", ""},
		{"DELETE", "/v1/admin", "", "admin-delete", "", ""},
		{"PUT", "/v1/admin", "", "admin-tree", "", ""},
		{"POST", "/v1/admin", "", "admin", policy.InvalidMethod, "GET"},
		{"POST", "/v1/admin/", "", "admin", policy.InvalidMethod, "GET"},
		{"PATCH", "/v1/%61dmin", "", "admin", policy.InvalidMethod, "GET"},
		{"POST", "/v1/admin/x", "", "admin-tree", policy.InvalidMethod, "PUT"},
		{"POST", "/v1/other", "", "v1", "", ""},
		// Envoy naming the loose endpoint for the admin path does not help either.
		{"POST", "/v1/admin", "v1", "", policy.EndpointNotFound, ""},
		{"POST", "/v1/other", "v1", "v1", "", ""},
	}
	for _, c := range cases {
		var ext map[string]string
		if c.ext != "" {
			ext = map[string]string{"endpoint": c.ext}
		}
		d := decide(r, c.method, c.path, ext)
		if d.Code != c.code || d.Endpoint != c.endpoint {
			t.Errorf("%s %s (ext %q): endpoint %q code %q, want %q %q", c.method, c.path, c.ext, d.Endpoint, d.Code, c.endpoint, c.code)
			continue
		}
		if c.allow != "" && !slices.Contains(d.Response, policy.Header{Key: "allow", Value: c.allow}) {
			t.Errorf("%s %s: Allow %+v, want %q", c.method, c.path, d.Response, c.allow)
		}
	}
}
