package extauthz

import (
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/signature"
	"google.golang.org/grpc/encoding"
	"google.golang.org/protobuf/proto"
)

// TestCodecSignedAndServed: the codec's direct metadata path beside the responses the
// other features build: a signed denial, a signed served answer (its headers, the
// signature's among them) and an allow with the caller and client keys. Each reads back
// with protobuf's decoder equal to what was written, signature headers included.
func TestCodecSignedAndServed(t *testing.T) {
	sg, err := signature.New([]byte("0123456789abcdef0123456789abcdef"), signature.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Unix(1767225600, 0)
	denied := ToResponse(&policy.Decision{Outcome: policy.Deny, Code: policy.RateLimited, App: "a", Endpoint: "e",
		Signer: sg, SignedAt: at, Nonce: "nonce-aaaaaaaaaaaaaaaa"}, "id")
	served := ToResponse(&policy.Decision{Outcome: policy.Served, App: "a", Endpoint: "exchange", DeviceID: "dev-1",
		Signer: sg, SignedAt: at, Nonce: "nonce-aaaaaaaaaaaaaaaa",
		Direct: &policy.Direct{Status: 200, Body: []byte(`{"session_token":"t"}`)}}, "id")
	allow := ToResponse(&policy.Decision{Outcome: policy.Allow, App: "a", Endpoint: "e", DeviceID: "dev-1",
		Caller: "c0ffee", Client: "ip 203.0.113.9", Dialect: policy.License}, "id")
	c := codec{base: encoding.GetCodecV2("proto")}
	for name, m := range map[string]*authv3.CheckResponse{"signed denial": denied, "signed served": served, "allow": allow} {
		bs, err := c.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		got := &authv3.CheckResponse{}
		if err := proto.Unmarshal(bs.Materialize(), got); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(got, m) {
			t.Errorf("%s: read back %v, want %v", name, got, m)
		}
		if name == "allow" {
			for _, k := range []string{"caller", "client", "dialect", "device_id"} {
				if _, ok := got.GetDynamicMetadata().GetFields()[k]; !ok {
					t.Errorf("allow: metadata %s missing", k)
				}
			}
			continue
		}
		for _, h := range []string{"x-nonce", "x-signature-timestamp", "x-signature"} {
			if _, ok := headerOf(got.GetDeniedResponse().GetHeaders(), h); !ok {
				t.Errorf("%s: header %s missing", name, h)
			}
		}
	}
}
