package main

import (
	"regexp"
	"testing"
)

// TestCheckMetadataOverGRPC: the dynamic metadata the server's codec writes directly
// reaches a real gRPC client whole, every entry as the demo configuration says, beside
// the response's headers, which protobuf writes.
func TestCheckMetadataOverGRPC(t *testing.T) {
	srv := startServer(t, "--demo")
	srv.waitReady(t)
	resp, err := srv.check(t, request{path: "/v1/hello", headers: map[string]string{"x-app-token": "demo-app-token"}})
	if err != nil || resp.GetOkResponse() == nil {
		t.Fatalf("demo hello: %v %s", err, describe(resp))
	}
	md := resp.GetDynamicMetadata().GetFields()
	want := map[string]string{"decision": "allow", "app": "demo", "endpoint": "hello", "dialect": "protectmyapi"}
	for k, v := range want {
		if got := md[k].GetStringValue(); got != v {
			t.Errorf("metadata %s = %q, want %q", k, got, v)
		}
	}
	if id := md["decision_id"].GetStringValue(); !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(id) {
		t.Errorf("decision_id %q", id)
	}
	if len(md) != len(want)+1 {
		t.Errorf("metadata %v, want the keys of %v and decision_id", md, want)
	}
	if resp.GetStatus().GetCode() != 0 || len(resp.GetOkResponse().GetHeadersToRemove()) == 0 {
		t.Errorf("status or headers lost: %s", describe(resp))
	}
	den, err := srv.check(t, request{path: "/v1/hello"})
	if err != nil || den.GetDynamicMetadata().GetFields()["code"].GetStringValue() != "UNAUTHORIZED" ||
		bodyCode(t, den.GetDeniedResponse().GetBody()) != "UNAUTHORIZED" {
		t.Errorf("denial: %v %s", err, describe(den))
	}
}
