package main

import "testing"

// TestSessionsLicenseResetRevokesE2E: resetting a license's device bindings through the
// admin API also revokes the sessions minted on that license, so a device unbound there
// keeps no session; another license's sessions are untouched.
func TestSessionsLicenseResetRevokesE2E(t *testing.T) {
	e, cfg := sessionsSetup(t, "")
	srv := startServer(t, "--config", cfg, "--admin-token-file", adminTokenFile(t))
	srv.waitReady(t)

	lic := answer(t, sessPost(t, srv, "mobile", "/v1/attest/exchange", "", "x-license-key", e.license, "x-device-id", "hwid-r1"))
	if lic.SessionToken == "" {
		t.Fatalf("license exchange: %+v", lic)
	}
	fb := answer(t, sessPost(t, srv, "mobile", "/v1/attest/exchange", "", "x-firebase-appcheck", e.firebase("fb-device-r1")))

	if code := adminPost(t, srv, sessAdminToken, "/admin/licenses/reset", `{"license_sha256":"`+sha(e.license)+`"}`); code != 200 {
		t.Fatalf("license reset: %d", code)
	}
	refusal(t, sessPost(t, srv, "mobile", "/v1/data", "", "x-session-token", lic.SessionToken), 401, "session_revoked")
	refusal(t, sessPost(t, srv, "mobile", "/v1/attest/refresh", `{"refresh_token":"`+lic.RefreshToken+`"}`), 401, "refresh_token_invalid")
	if dev := allowedDevice(t, sessPost(t, srv, "mobile", "/v1/data", "", "x-session-token", fb.SessionToken)); dev != "fb-device-r1" {
		t.Errorf("a session on no license after another license's reset: device %q, want fb-device-r1", dev)
	}
	// The device binds again and gets a new session.
	again := answer(t, sessPost(t, srv, "mobile", "/v1/attest/exchange", "", "x-license-key", e.license, "x-device-id", "hwid-r1"))
	if dev := allowedDevice(t, sessPost(t, srv, "mobile", "/v1/data", "", "x-session-token", again.SessionToken)); dev != "hwid-r1" {
		t.Errorf("new session after the reset: device %q, want hwid-r1", dev)
	}
}
