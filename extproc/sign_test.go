package extproc

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/gatehouse/gatehouse/signature"
)

const testSecret = "0123456789abcdef0123456789abcdef"

// wantSigned checks a header mutation against HMAC-SHA256 computed here, independently
// of package signature, over the canonical string of status and body.
func wantSigned(t *testing.T, hm *extprocv3.HeaderMutation, nonce string, status int, body string) {
	t.Helper()
	got := map[string]string{}
	for _, h := range hm.GetSetHeaders() {
		got[h.GetHeader().GetKey()] = string(h.GetHeader().GetRawValue())
	}
	sum := sha256.Sum256([]byte(body))
	canonical := fmt.Sprintf("gatehouse-v1\n%s\n%d\n1767225600\n%x", nonce, status, sum)
	m := hmac.New(sha256.New, []byte(testSecret))
	m.Write([]byte(canonical))
	if got["x-signature"] != hex.EncodeToString(m.Sum(nil)) || got["x-signature-timestamp"] != "1767225600" {
		t.Fatalf("headers %v, want the signature of %q", got, canonical)
	}
	if echo, ok := got["x-nonce"]; nonce != "" && echo != nonce || nonce == "" && ok {
		t.Fatalf("echoed nonce %q (%v), want %q", echo, ok, nonce)
	}
	if nonce == "" && !slices.Contains(hm.GetRemoveHeaders(), "x-nonce") && hm.GetRemoveHeaders() != nil {
		t.Fatalf("remove %v", hm.GetRemoveHeaders())
	}
}

func signedRoutes(t *testing.T, r Route) (*Routes, *signature.Signer) {
	sg, err := signature.New([]byte(testSecret), signature.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	r.Sign = sg
	return routesWith(r, nil, needs{}), sg
}

var signedAt = func() time.Time { return time.Unix(1767225600, 0) }

// TestSignedUpstreamResponse: the upstream's response, buffered whole, reaches the
// client with the echoed nonce and a signature over its status and exact body; a body
// in several parts is signed as one; a bodiless response is signed over the empty body.
func TestSignedUpstreamResponse(t *testing.T) {
	const nonce = "nonce-aaaaaaaaaaaaaaaa"
	for _, tc := range []struct {
		name   string
		nonce  string
		status string
		parts  []string // nil: no body (end_of_stream on the headers)
		echo   string
	}{
		{"one part", nonce, "200", []string{`{"ok":true}`}, nonce},
		{"several parts", nonce, "201", []string{`{"o`, `k":`, `true}`}, nonce},
		{"no body", nonce, "204", nil, nonce},
		{"invalid nonce is not echoed", "short", "200", []string{"x"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs, _ := signedRoutes(t, Route{})
			c := serve(t, NewServer(func() *Routes { return rs }, Options{Now: signedAt}))
			s, err := c.Process(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			m := exchangeOne(t, s, reqHeaders(metadata("a", "e", "allow"), true, ":method", "GET", ":path", "/e", "x-nonce", tc.nonce)).GetModeOverride()
			if m.GetResponseBodyMode() != 2 { // BUFFERED
				t.Fatalf("mode %v, want a buffered response body", m)
			}
			resp := exchangeOne(t, s, respHeaders(tc.parts == nil, ":status", tc.status, "x-nonce", "forged-by-upstream-0000"))
			var hm *extprocv3.HeaderMutation
			if tc.parts == nil {
				hm = resp.GetResponseHeaders().GetResponse().GetHeaderMutation()
			} else {
				if resp.GetResponseHeaders().GetResponse().GetHeaderMutation() != nil {
					t.Fatal("headers mutated before the body was seen")
				}
				for i, p := range tc.parts {
					resp = exchangeOne(t, s, respBody(p, i == len(tc.parts)-1))
				}
				hm = resp.GetResponseBody().GetResponse().GetHeaderMutation()
			}
			var status int
			fmt.Sscan(tc.status, &status)
			wantSigned(t, hm, tc.echo, status, strings.Join(tc.parts, ""))
			if tc.echo == "" && !slices.Contains(hm.GetRemoveHeaders(), "x-nonce") {
				t.Fatalf("the upstream's x-nonce is left in place: remove %v", hm.GetRemoveHeaders())
			}
		})
	}
}

// TestSignedReplies: what Gatehouse answers instead of the upstream is signed too: a
// rewritten upstream error, and the fail-closed answer to a body over the bound.
func TestSignedReplies(t *testing.T) {
	const nonce = "nonce-aaaaaaaaaaaaaaaa"
	for _, tc := range []struct {
		name   string
		route  Route
		status string
		body   string
		want   int
	}{
		{"rewritten 503", Route{UpstreamErrors: true}, "503", "stack trace of the upstream", 503},
		{"body over the bound", Route{MaxBody: 4}, "200", "12345", 502},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs, _ := signedRoutes(t, tc.route)
			c := serve(t, NewServer(func() *Routes { return rs }, Options{Now: signedAt}))
			s, err := c.Process(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			exchangeOne(t, s, reqHeaders(metadata("a", "e", "allow"), true, ":method", "GET", ":path", "/e", "x-nonce", nonce))
			resp := exchangeOne(t, s, respHeaders(false, ":status", tc.status))
			if tc.body != "" {
				resp = exchangeOne(t, s, respBody(tc.body, true))
			}
			ir := resp.GetImmediateResponse()
			if ir == nil || int(ir.GetStatus().GetCode()) != tc.want {
				t.Fatalf("answer %v, want an immediate %d", resp, tc.want)
			}
			wantSigned(t, ir.GetHeaders(), nonce, tc.want, string(ir.GetBody()))
			if strings.Contains(string(ir.GetBody()), tc.body) {
				t.Fatalf("the upstream's body reached the client: %s", ir.GetBody())
			}
		})
	}
}
