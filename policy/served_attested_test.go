package policy_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
)

// serveRecorder is a served endpoint that keeps what the pipeline established.
type serveRecorder struct{ got *policy.ServeRequest }

func (s *serveRecorder) Serve(_ context.Context, _ time.Time, req *policy.ServeRequest) policy.ServeResult {
	c := *req
	s.got = &c
	return policy.ServeResult{Direct: &policy.Direct{Status: 200, Body: []byte("{}")}}
}

// TestServeAttested: a served endpoint learns whether the attestation provider verified
// its credential, device id or not. A provider that could not decide (its dependency
// down) and that the fail mode open let through is evaluated but not verified: not
// attested, so an exchange cannot turn it into a session.
func TestServeAttested(t *testing.T) {
	for _, tc := range []struct {
		name     string
		verdict  policy.DeviceVerdict
		attested bool
	}{
		{"verified, no device id", policy.DeviceVerdict{Provider: "play_integrity"}, true},
		{"verified with a device id", policy.DeviceVerdict{Provider: "firebase_app_check", DeviceID: "d1"}, true},
		{"could not decide, failed open", policy.DeviceVerdict{Provider: "play_integrity", Err: errors.New("keys unreachable")}, false},
		{"no provider", policy.DeviceVerdict{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &serveRecorder{}
			r := newTestRules(t, policy.Options{}, &policy.App{Device: fakeDevice{device: tc.verdict}, FailMode: policy.FailOpen},
				&policy.Endpoint{Name: "exchange", Path: "/x", Serve: rec})
			r.Decide(context.Background(), t0, get("/x"))
			if rec.got == nil {
				t.Fatal("not served")
			}
			if rec.got.Attested != tc.attested || rec.got.Provider != tc.verdict.Provider {
				t.Fatalf("served with provider %q attested %v, want %q %v", rec.got.Provider, rec.got.Attested, tc.verdict.Provider, tc.attested)
			}
		})
	}
}
