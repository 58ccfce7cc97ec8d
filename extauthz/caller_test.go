package extauthz

import (
	"testing"

	"github.com/gatehouse/gatehouse/policy"
)

// TestCallerMetadata: an allowed decision's caller id reaches the response phase in the
// dynamic metadata (key "caller"); without one the key is absent.
func TestCallerMetadata(t *testing.T) {
	const id = "a5da0fd5f6d1746aec70642908cf4c3be33f3d7c3ff1f1555b6be4601392ebbe"
	d := policy.Decision{Outcome: policy.Allow, App: "shop", Endpoint: "profile", Caller: id}
	f := ToResponse(&d, "d1").GetDynamicMetadata().GetFields()
	if got := f["caller"].GetStringValue(); got != id {
		t.Fatalf("caller %q, want %q", got, id)
	}
	d.Caller = ""
	if _, ok := ToResponse(&d, "d1").GetDynamicMetadata().GetFields()["caller"]; ok {
		t.Fatal("caller present without a caller")
	}
}

// TestClientMetadata: the client address a login endpoint's response phase counts by
// reaches it in the dynamic metadata (key "client"); without one the key is absent.
func TestClientMetadata(t *testing.T) {
	d := policy.Decision{Outcome: policy.Allow, App: "shop", Endpoint: "login", Client: "192.0.2.1"}
	if got := ToResponse(&d, "d1").GetDynamicMetadata().GetFields()["client"].GetStringValue(); got != "192.0.2.1" {
		t.Fatalf("client %q, want 192.0.2.1", got)
	}
	d.Client = ""
	if _, ok := ToResponse(&d, "d1").GetDynamicMetadata().GetFields()["client"]; ok {
		t.Fatal("client present without one")
	}
}
