package main

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/telemetry"
)

const testAdminToken = "admin-token-0123456789abcdef"

// rawAdmin sends one HTTP/1.1 request exactly as written (method spelling, request
// target) to the admin port, and returns the status and body.
func rawAdmin(t *testing.T, addr, method, target string, headers ...string) (int, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nContent-Length: 0\r\n", method, target, addr)
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(c, b.String()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: strings.ToUpper(method)})
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// adminWrites are the admin port's write routes, typed by hand: each must refuse a
// caller without the token. TestAdminRoutesArePinned keeps this list and the server's
// routes the same.
var adminWrites = []string{
	"PUT /loglevel?level=debug",
	"POST /admin/licenses/reset",
	"POST /admin/credits",
	"POST /-/reload",
	"POST /admin/sessions/revoke",
}

// adminReads are the only routes open without a token.
var adminReads = []string{"/healthz", "/readyz", "/metrics", "/loglevel", "/-/session-jwks"}

// writeSpellings are the ways of spelling each write that a router might take for it.
func writeSpellings(route string) []string {
	method, target, _ := strings.Cut(route, " ")
	path, query, _ := strings.Cut(target, "?")
	if query != "" {
		query = "?" + query
	}
	return []string{
		method + " " + path + query,
		strings.ToLower(method) + " " + path + query,
		method + " " + path + "/" + query,
		method + " /" + path + query,
		method + " " + path + "/." + query,
		method + " /x/.." + path + query,
		"HEAD " + path + query,
		"OPTIONS " + path + query,
		"OPTIONS *",
		"DELETE " + path + query,
		"PATCH " + path + query,
		"POST " + path + query,
		"PUT " + path + query,
	}
}

// TestAdminWritesWithoutConfiguredToken: with no admin token configured, every write
// (in every spelling) is refused and nothing changes, while the read-only endpoints
// answer.
func TestAdminWritesWithoutConfiguredToken(t *testing.T) {
	srv := startServer(t, "--demo")
	srv.waitReady(t)
	for _, w := range adminWrites {
		for _, sp := range writeSpellings(w) {
			method, target, _ := strings.Cut(sp, " ")
			for _, auth := range [][]string{nil, {"Authorization: Bearer " + testAdminToken}} {
				code, body := rawAdmin(t, srv.adminAddr, method, target, auth...)
				if method == "HEAD" {
					continue // a read: answered like GET, changes nothing (checked below)
				}
				if code != http.StatusForbidden || !strings.Contains(body, "admin writes are disabled") {
					t.Errorf("%s %s (auth %v): %d %q, want 403 'admin writes are disabled'", method, target, auth != nil, code, body)
				}
			}
		}
	}
	if lvl := srv.body(t, "/loglevel"); strings.TrimSpace(lvl) != "INFO" {
		t.Errorf("log level changed to %q", lvl)
	}
	for _, p := range adminReads {
		if code := srv.get(t, p); code != http.StatusOK {
			t.Errorf("GET %s: %d", p, code)
		}
	}
}

// TestAdminWritesNeedTheToken: with a token configured, a write needs exactly that
// token, sent once as a bearer token; every other spelling of a write is refused.
func TestAdminWritesNeedTheToken(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "admin.token")
	os.WriteFile(tokenFile, []byte(testAdminToken+"\n"), 0o600)
	srv := startServer(t, "--demo", "--admin-token-file", tokenFile)
	srv.waitReady(t)
	bad := [][]string{
		nil,
		{"Authorization: Bearer wrong-token-0123456789abcd"},
		{"Authorization: Bearer " + testAdminToken[:len(testAdminToken)-1]},
		{"Authorization: Bearer " + testAdminToken + "x"},
		{"Authorization: Bearer " + testAdminToken, "Authorization: Bearer " + testAdminToken},
		{"Authorization: Bearer " + testAdminToken, "Authorization: Bearer wrong"},
		{"Authorization: Basic " + testAdminToken},
		{"Authorization: " + testAdminToken},
		{"Authorization: Bearer"},
		{"Authorization: Bearer  " + testAdminToken},
		{"X-Admin-Token: " + testAdminToken},
	}
	for _, w := range adminWrites {
		for _, sp := range writeSpellings(w) {
			method, target, _ := strings.Cut(sp, " ")
			if method == "HEAD" {
				continue
			}
			for _, h := range bad {
				code, body := rawAdmin(t, srv.adminAddr, method, target, h...)
				if code != http.StatusUnauthorized {
					t.Errorf("%s %s %v: %d %q, want 401", method, target, h, code, body)
				}
				if strings.Contains(body, testAdminToken[:12]) {
					t.Errorf("%s %s: the token is echoed: %q", method, target, body)
				}
			}
		}
	}
	if lvl := srv.body(t, "/loglevel"); strings.TrimSpace(lvl) != "INFO" {
		t.Fatalf("log level changed without the token: %q", lvl)
	}
	for _, auth := range []string{"Bearer " + testAdminToken, "bearer " + testAdminToken} {
		code, body := rawAdmin(t, srv.adminAddr, "PUT", "/loglevel?level=debug", "Authorization: "+auth)
		if code != http.StatusOK || strings.TrimSpace(body) != "DEBUG" {
			t.Fatalf("PUT /loglevel with %q: %d %q", auth[:7], code, body)
		}
	}
	if lvl := srv.body(t, "/loglevel"); strings.TrimSpace(lvl) != "DEBUG" {
		t.Fatalf("log level after an authorised PUT: %q", lvl)
	}
	for _, p := range adminReads {
		if code := srv.get(t, p); code != http.StatusOK {
			t.Errorf("GET %s: %d", p, code)
		}
	}
	if strings.Contains(srv.out.String(), testAdminToken[:12]) {
		t.Fatal("the admin token appears in the log")
	}
}

// TestAdminRoutesArePinned walks the admin handler's registered routes: every route that
// is not a GET must be in adminWrites (so the tests above try it without the token), and
// the GET routes must be exactly the read-only ones. A new route fails here until it is
// added to one of the hand-typed lists, deliberately.
func TestAdminRoutesArePinned(t *testing.T) {
	s := &server{flags: &serveFlags{pprof: true}, level: new(slog.LevelVar), metrics: telemetry.NewMetrics()}
	h, err := s.adminMux()
	if err != nil {
		t.Fatal(err)
	}
	var writes, reads []string
	for _, r := range h.routes {
		if r.method == http.MethodGet {
			reads = append(reads, r.path)
		} else {
			writes = append(writes, r.method+" "+r.path)
		}
	}
	var wantWrites []string
	for _, w := range adminWrites {
		p, _, _ := strings.Cut(w, "?")
		wantWrites = append(wantWrites, p)
	}
	wantReads := append(append([]string{}, adminReads...),
		"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/profile", "/debug/pprof/symbol", "/debug/pprof/trace")
	slices.Sort(writes)
	slices.Sort(wantWrites)
	slices.Sort(reads)
	slices.Sort(wantReads)
	if !slices.Equal(writes, wantWrites) {
		t.Errorf("write routes %v, the tests know %v", writes, wantWrites)
	}
	if !slices.Equal(reads, wantReads) {
		t.Errorf("read routes %v, the tests know %v", reads, wantReads)
	}
	// Every method but GET and HEAD is a write, whatever its case.
	for _, m := range []string{"GET", "HEAD"} {
		if !readMethod(m) {
			t.Errorf("%s is not a read", m)
		}
	}
	for _, m := range []string{"get", "head", "Get", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT", "PROPFIND", ""} {
		if readMethod(m) {
			t.Errorf("%q is taken for a read", m)
		}
	}
}
