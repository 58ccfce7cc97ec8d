package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAttestFlags: --attest switches the default request to the demo's attested endpoint,
// unless --path or --ext say otherwise, and is refused in rls mode.
func TestAttestFlags(t *testing.T) {
	for _, tc := range []struct {
		args           []string
		attest         bool
		path, endpoint string
	}{
		{nil, false, "/v1/hello", "hello"},
		{[]string{"--attest"}, true, "/v1/secure", "secure"},
		{[]string{"--attest", "--devices", "10000"}, true, "/v1/secure", "secure"},
		{[]string{"--attest", "--path", "/v1/other"}, true, "/v1/other", "secure"},
		{[]string{"--attest", "--ext", "endpoint=custom"}, true, "/v1/secure", "custom"},
		{[]string{"--attest", "--path", "/x", "--ext", "endpoint="}, true, "/x", ""},
		{[]string{"--attest=false"}, false, "/v1/hello", "hello"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			c, err := parseRunFlags(tc.args, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if c.attest != tc.attest || c.shape.path != tc.path || c.shape.exts["endpoint"] != tc.endpoint || c.mode != "authz" {
				t.Fatalf("attest %v path %q endpoint %q mode %s; want %v %q %q authz", c.attest, c.shape.path, c.shape.exts["endpoint"], c.mode, tc.attest, tc.path, tc.endpoint)
			}
		})
	}
	if _, err := parseRunFlags([]string{"--attest", "--mode", "rls"}, io.Discard); err == nil {
		t.Error("--attest accepted in rls mode")
	}
}

// TestAttestRequests: device i's request carries token i and device id i.
func TestAttestRequests(t *testing.T) {
	c, err := parseRunFlags([]string{"--attest", "--devices", "3"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	c.shape.deviceIDs = []string{"device-0", "device-1", "device-2"}
	c.shape.tokens = []string{"a.b.0", "a.b.1", "a.b.2"}
	checks, _ := buildRequests(c.shape)
	if len(checks) != 3 {
		t.Fatalf("%d requests", len(checks))
	}
	for i, chk := range checks {
		h := chk.GetAttributes().GetRequest().GetHttp()
		hs := h.GetHeaders()
		if hs["x-attestation-token"] != c.shape.tokens[i] || hs["x-device-id"] != c.shape.deviceIDs[i] ||
			h.GetPath() != "/v1/secure" || hs[":path"] != "/v1/secure" || chk.GetAttributes().GetContextExtensions()["endpoint"] != "secure" {
			t.Errorf("request %d: path %q headers %v ext %v", i, h.GetPath(), hs, chk.GetAttributes().GetContextExtensions())
		}
	}
	// Without --attest no token is sent.
	c, _ = parseRunFlags([]string{"--devices", "1"}, io.Discard)
	checks, _ = buildRequests(c.shape)
	if _, ok := checks[0].GetAttributes().GetRequest().GetHttp().GetHeaders()["x-attestation-token"]; ok {
		t.Error("token sent without --attest")
	}
}

func TestParseTokens(t *testing.T) {
	ids, toks, err := parseTokens(strings.NewReader("device-0\th.p.s0\ndevice-1\th.p.s1\n"), 2)
	if err != nil || strings.Join(ids, ",") != "device-0,device-1" || strings.Join(toks, ",") != "h.p.s0,h.p.s1" {
		t.Fatalf("%v %v %v", ids, toks, err)
	}
	for _, bad := range []struct {
		out string
		n   int
	}{
		{"h.p.s\n", 1},                 // the single-token output of an older binary
		{"device-0\th.p.s0\n", 2},      // too few
		{"device-0\tnot-a-token\n", 1}, // not a JWT
		{"\th.p.s\n", 1},               // no id
		{"", 0},
	} {
		if _, _, err := parseTokens(strings.NewReader(bad.out), bad.n); err == nil {
			t.Errorf("accepted %q for %d tokens", bad.out, bad.n)
		}
	}
}

// TestMintTokens runs a stand-in gatehouse binary and checks the arguments it gets.
func TestMintTokens(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "gatehouse")
	script := `#!/bin/sh
echo "$@" > "` + filepath.Join(dir, "args") + `"
i=0
while [ $i -lt "$3" ]; do printf 'device-%d\th.p.%d\n' $i $i; i=$((i+1)); done
`
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	ids, toks, err := mintTokens(context.Background(), bin, 4, 20*time.Minute, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 4 || ids[3] != "device-3" || toks[3] != "h.p.3" {
		t.Fatalf("ids %v tokens %v", ids, toks)
	}
	args, _ := os.ReadFile(filepath.Join(dir, "args"))
	if got := strings.TrimSpace(string(args)); got != "demo-token --count 4 --ttl 20m0s" {
		t.Errorf("args %q", got)
	}
	if _, _, err := mintTokens(context.Background(), filepath.Join(dir, "missing"), 1, time.Minute, io.Discard); err == nil {
		t.Error("a missing binary was not an error")
	}
}

func TestAttestTTL(t *testing.T) {
	c, err := parseRunFlags([]string{"--attest", "--duration", "3s", "--concurrency", "16"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := attestTTL(c); got != 10*time.Minute {
		t.Errorf("short run: ttl %v, want the 10m minimum", got)
	}
	c, _ = parseRunFlags([]string{"--attest", "--duration", "1h", "--concurrency", "1,2,3", "--rounds", "20"}, io.Discard)
	if got := attestTTL(c); got != 24*time.Hour {
		t.Errorf("long run: ttl %v, want the 24h maximum", got)
	}
	c, _ = parseRunFlags([]string{"--attest", "--duration", "1m", "--warmup", "0s", "--concurrency", "16,64", "--rounds", "3"}, io.Discard)
	if got := attestTTL(c); got != 2*3*2*time.Minute+5*time.Minute {
		t.Errorf("ttl %v, want 17m", got)
	}
}
