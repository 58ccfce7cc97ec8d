package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

const adminConfig = `
apps:
  - name: lic
    dialect: license
    app_token_sha256: ["{{T:lic}}"]
    endpoints: ["*"]
    devices: {trust_device_header: true}
    licenses:
      max_devices: 1
      keys: [{sha256: "{{T:license-1}}"}]
    limits: [{name: prepaid, key: [app], credits: true, requests: 2}]
endpoints:
  - {name: validate, path: /auth/validate, sdk_auth: true}
  - {name: api, path: /v1/api}
`

func (s *testServer) admin(t *testing.T, token, path string, body any) (int, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, "http://"+s.adminAddr+path, bytes.NewReader(b))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// TestAdminAPI: an operator resets a license's bindings and tops up prepaid credits;
// without the token nothing changes.
func TestAdminAPI(t *testing.T) {
	dir := t.TempDir()
	const token = "admin-token-0123456789"
	tokenFile := filepath.Join(dir, "admin.token")
	os.WriteFile(tokenFile, []byte(token+"\n"), 0o600)
	srv := startServer(t, "--config", writeConfig(t, dir, adminConfig), "--admin-token-file", tokenFile)
	srv.waitReady(t)

	lic := func(dev string) request {
		return request{path: "/auth/validate", headers: with(app("lic"), "x-license-key", "tok-license-1", "x-device-id", dev)}
	}
	if resp, _ := srv.check(t, lic("phone-a")); resp.GetOkResponse() == nil {
		t.Fatalf("first device: %s", describe(resp))
	}
	resp, _ := srv.check(t, lic("phone-b"))
	if den := resp.GetDeniedResponse(); den == nil || den.GetStatus().GetCode() != 200 || bodyCode(t, den.GetBody()) != "hwid_mismatch" {
		t.Fatalf("second device: %s", describe(resp))
	}
	reset := map[string]string{"license_sha256": sha("tok-license-1")}
	if code, _ := srv.admin(t, "", "/admin/licenses/reset", reset); code != http.StatusUnauthorized {
		t.Fatalf("reset without a token: %d", code)
	}
	if code, _ := srv.admin(t, "wrong-token-0123456789", "/admin/licenses/reset", reset); code != http.StatusUnauthorized {
		t.Fatalf("reset with a wrong token: %d", code)
	}
	if code, out := srv.admin(t, token, "/admin/licenses/reset", map[string]string{"license_sha256": "xyz"}); code != http.StatusBadRequest {
		t.Fatalf("bad hash: %d %v", code, out)
	}
	if code, out := srv.admin(t, token, "/admin/licenses/reset", reset); code != http.StatusOK {
		t.Fatalf("reset: %d %v", code, out)
	}
	if resp, _ := srv.check(t, lic("phone-b")); resp.GetOkResponse() == nil {
		t.Fatalf("after reset the new device should bind: %s", describe(resp))
	}

	// The two allowed calls above used both prepaid credits.
	api := request{path: "/v1/api", headers: with(app("lic"), "x-license-key", "tok-license-1", "x-device-id", "phone-b")}
	resp, _ = srv.check(t, api)
	den := resp.GetDeniedResponse()
	if den == nil || den.GetStatus().GetCode() != 402 || bodyCode(t, den.GetBody()) != "no_credits" {
		t.Fatalf("credits used up: %s", describe(resp))
	}
	ref := map[string]any{"scope": "app", "owner": "lic", "name": "prepaid", "app": "lic"}
	ref["amount"] = 5
	code, out := srv.admin(t, token, "/admin/credits", ref)
	if code != http.StatusOK || out["balance"].(float64) != 5 {
		t.Fatalf("top-up: %d %v", code, out)
	}
	if resp, _ := srv.check(t, api); resp.GetOkResponse() == nil {
		t.Fatalf("after top-up: %s", describe(resp))
	}
	ref["amount"] = 0
	if code, out := srv.admin(t, token, "/admin/credits", ref); code != http.StatusOK || out["balance"].(float64) != 4 {
		t.Fatalf("balance: %d %v", code, out)
	}
	ref["name"] = "nope"
	if code, _ := srv.admin(t, token, "/admin/credits", ref); code != http.StatusBadRequest {
		t.Fatalf("unknown limit: %d", code)
	}
}
