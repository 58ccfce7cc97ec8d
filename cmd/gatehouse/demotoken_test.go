package main

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/policy"
)

// TestDemoToken: tokens from `gatehouse demo-token` pass the embedded demo's
// GET /v1/secure, and its refusal flags and a tampered token are refused for the right
// reason.
func TestDemoToken(t *testing.T) {
	snap, err := config.LoadBytes(config.Demo, config.DemoPath, config.Deps{Offline: true})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_750_000_000, 0)
	mint := func(args ...string) string {
		var out, errOut bytes.Buffer
		if err := demoTokenAt(now, args, &out, &errOut); err != nil {
			t.Fatalf("demo-token %v: %v %s", args, err, errOut.String())
		}
		return strings.TrimSpace(out.String())
	}
	decide := func(tok string) policy.Decision {
		in := &policy.Input{Method: "GET", Path: "/v1/secure", RawPath: "/v1/secure", BodySize: -1,
			Headers: map[string]string{"x-app-token": "demo-app-token", "x-attestation-token": tok}}
		return snap.Rules.Decide(t.Context(), now, in)
	}
	good := mint("--device", "my-phone")
	// Change one character inside the signature (not the last, whose spare bits must
	// stay zero): a valid encoding of a wrong signature.
	i := len(good) - 10
	flip := byte('A')
	if good[i] == 'A' {
		flip = 'B'
	}
	tampered := good[:i] + string(flip) + good[i+1:]
	for _, tc := range []struct {
		name, tok string
		want      policy.Code
	}{
		{"valid", good, ""},
		{"emulator", mint("--emulator"), policy.EmulatorDetected},
		{"expired", mint("--expired"), policy.AttestationExpired},
		{"tampered_claim", mint("--tampered"), policy.AppTampered},
		{"tampered_signature", tampered, policy.AttestationFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := decide(tc.tok)
			if tc.want == "" {
				if !d.Allowed() || d.DeviceID != "my-phone" {
					t.Fatalf("denied %s (device %q)", d.Code, d.DeviceID)
				}
				return
			}
			if d.Allowed() || d.Code != tc.want {
				t.Fatalf("code %q, want %s", d.Code, tc.want)
			}
		})
	}
	var out, errOut bytes.Buffer
	if err := demoToken([]string{"extra"}, &out, &errOut); err == nil {
		t.Fatal("accepted a stray argument")
	}
}

// TestDemoTokenCount: --count N prints N "DEVICE<TAB>TOKEN" lines for PREFIX-0 …
// PREFIX-(N-1), each token attesting its own device; bad counts and prefixes are usage
// errors.
func TestDemoTokenCount(t *testing.T) {
	snap, err := config.LoadBytes(config.Demo, config.DemoPath, config.Deps{Offline: true})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_750_000_000, 0)
	for _, tc := range []struct {
		args   []string
		prefix string
		n      int
	}{
		{[]string{"--count", "5"}, "device", 5},
		{[]string{"--count", "3", "--device", "phone"}, "phone", 3},
		{[]string{"--device", "phone", "--count", "1"}, "phone", 1},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			if err := demoTokenAt(now, tc.args, &out, &errOut); err != nil {
				t.Fatalf("%v: %s", err, errOut.String())
			}
			lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
			if len(lines) != tc.n {
				t.Fatalf("%d lines, want %d:\n%s", len(lines), tc.n, out.String())
			}
			seen := map[string]bool{}
			for i, line := range lines {
				id, tok, ok := strings.Cut(line, "\t")
				if want := tc.prefix + "-" + strconv.Itoa(i); !ok || id != want || strings.ContainsAny(tok, "\t ") {
					t.Fatalf("line %d = %q, want %q<TAB>token", i, line, want)
				}
				if seen[tok] {
					t.Fatalf("line %d repeats a token", i)
				}
				seen[tok] = true
				in := &policy.Input{Method: "GET", Path: "/v1/secure", RawPath: "/v1/secure", BodySize: -1,
					Headers: map[string]string{"x-app-token": "demo-app-token", "x-attestation-token": tok, "x-device-id": id}}
				if d := snap.Rules.Decide(t.Context(), now, in); !d.Allowed() || d.DeviceID != id {
					t.Fatalf("line %d: denied %s (device %q)", i, d.Code, d.DeviceID)
				}
			}
		})
	}
	for _, args := range [][]string{
		{"--count", "0"},
		{"--count", "-1"},
		{"--count", "x"},
		{"--count", "2000000"},
		{"--count", "2", "--device", "has space"},
		{"--count", "2", "--device", "a,b"},
		{"--count", "2", "--device", strings.Repeat("p", 127)}, // p…p-1 is 129 bytes
	} {
		var out, errOut bytes.Buffer
		if err := demoTokenAt(now, args, &out, &errOut); err == nil || out.Len() > 0 {
			t.Errorf("%q: accepted (%v), printed %q", args, err, out.String())
		}
	}
	// Without --count the output is one bare token, as before.
	var out, errOut bytes.Buffer
	if err := demoTokenAt(now, []string{"--device", "phone"}, &out, &errOut); err != nil || strings.Count(out.String(), "\n") != 1 || strings.Contains(out.String(), "\t") {
		t.Fatalf("single token output %q (%v)", out.String(), err)
	}
}
