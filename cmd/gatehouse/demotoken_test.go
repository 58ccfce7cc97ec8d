package main

import (
	"bytes"
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
