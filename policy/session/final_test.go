package session_test

import (
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/session"
)

// TestHeartbeatRefusesAnUndecidedDevice: a heartbeat mints a new session token, so a
// device step that could not decide (a license store unreachable, the fail mode open)
// must not extend the session, as it must not start one (the exchange): the license's
// state was never looked at, and the token would outlive the outage.
func TestHeartbeatRefusesAnUndecidedDevice(t *testing.T) {
	m := manager(t, keySet(t, "k1", edKey(t, "k1")), records())
	own := start(t, m, "a", "dev-1", "lic")
	ep := &session.Endpoint{Kind: session.Heartbeat, Sessions: m, Header: "x-session-token"}
	in := &policy.Input{Headers: map[string]string{"x-session-token": own.Session}}
	at := t0.Add(time.Minute)
	req := policy.ServeRequest{In: in, App: "a", DeviceID: "dev-1", License: "lic", Provider: "session", Undecided: true}
	if res := ep.Serve(ctx, at, &req); res.Direct != nil || res.Err == nil || res.Code != "" {
		t.Fatalf("undecided heartbeat: %+v, want no answer and an error (could not decide)", res)
	}
	// The same request, decided, is extended: the refusal above is the undecided flag's.
	req.Undecided = false
	if res := ep.Serve(ctx, at, &req); res.Direct == nil || res.Direct.Status != 200 {
		t.Fatalf("decided heartbeat: %+v, want a 200 answer", res)
	}
}
