package extauthz

import (
	"bytes"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/gatehouse/gatehouse/policy"
	"google.golang.org/grpc/encoding"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// TestCodecMarshalsAsProto: every message the codec writes reads back, with protobuf's
// own decoder, equal to what was written: Check responses with string metadata (the fast
// path), with every other kind of value, without metadata, and other messages.
func TestCodecMarshalsAsProto(t *testing.T) {
	reset := time.Unix(1609459200, 0)
	allow := ToResponse(&policy.Decision{Outcome: policy.Allow, App: "a", Endpoint: "e", DeviceID: "device-7",
		Upstream:  []policy.Header{{Key: "x-gatehouse-app", Value: "a"}},
		RateLimit: policy.LimitResult{Limit: 50, Remaining: 7, Reset: reset, Name: "device"}}, "0123456789abcdef0123456789abcdef")
	deny := ToResponse(&policy.Decision{Outcome: policy.Deny, Code: policy.RateLimited, RetryAfter: time.Second,
		RateLimit: policy.LimitResult{Limit: 50, Remaining: 0, Reset: reset, Name: "device", Code: "x"}}, "id")
	nested, err := structpb.NewStruct(map[string]any{"n": 1.5, "b": true, "z": nil, "l": []any{"x", 2.0}, "s": map[string]any{"k": "v"}, "e": ""})
	if err != nil {
		t.Fatal(err)
	}
	mixed := &authv3.CheckResponse{DynamicMetadata: nested}
	empty := &authv3.CheckResponse{DynamicMetadata: &structpb.Struct{}}
	nilValue := &authv3.CheckResponse{DynamicMetadata: &structpb.Struct{Fields: map[string]*structpb.Value{"k": nil, "": structpb.NewStringValue("")}}}
	c := codec{base: encoding.GetCodecV2("proto")}
	for name, m := range map[string]proto.Message{
		"allow": allow, "deny": deny, "mixed values": mixed, "empty metadata": empty, "nil value": nilValue,
		"no metadata": &authv3.CheckResponse{}, "a request": &authv3.CheckRequest{},
	} {
		t.Run(name, func(t *testing.T) {
			bs, err := c.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			got := m.ProtoReflect().New().Interface()
			if err := proto.Unmarshal(bs.Materialize(), got); err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(got, m) {
				t.Errorf("read back %v, want %v", got, m)
			}
		})
	}
}

// TestCodecRefusesInvalidUTF8: a metadata string that is not UTF-8 fails to marshal, as
// protobuf's own codec fails, rather than reaching Envoy as a string it cannot parse.
func TestCodecRefusesInvalidUTF8(t *testing.T) {
	c := codec{base: encoding.GetCodecV2("proto")}
	for name, f := range map[string]map[string]*structpb.Value{
		"value": {"device_id": structpb.NewStringValue("a\xffb")},
		"key":   {"a\xffb": structpb.NewStringValue("x")},
	} {
		if _, err := c.Marshal(&authv3.CheckResponse{DynamicMetadata: &structpb.Struct{Fields: f}}); err == nil {
			t.Errorf("%s: invalid UTF-8 marshalled", name)
		}
	}
}

// TestCodecMetadataAllocs: the metadata of an allowed device request (six string
// entries) costs the codec at most 2 allocations more than a response without it
// (protobuf's reflection over the map costs two or more per entry).
func TestCodecMetadataAllocs(t *testing.T) {
	d := &policy.Decision{Outcome: policy.Allow, App: "a", Endpoint: "e", DeviceID: "device-7"}
	with := ToResponse(d, "0123456789abcdef0123456789abcdef")
	without := ToResponse(d, "0123456789abcdef0123456789abcdef")
	without.DynamicMetadata = nil
	c := codec{base: encoding.GetCodecV2("proto")}
	marshal := func(m proto.Message) func() {
		return func() {
			bs, err := c.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			bs.Free()
		}
	}
	a, b := testing.AllocsPerRun(200, marshal(with)), testing.AllocsPerRun(200, marshal(without))
	if a-b > 2 {
		t.Errorf("metadata cost %.0f allocations (%.0f vs %.0f), want at most 2", a-b, a, b)
	}
}

// TestCodecMetadataLengths: metadata whose encoded size is at each edge of its length's
// varint (1, 2 and 3 bytes) comes out as protobuf's own bytes of the field, after the
// rest of the response (protobuf writes the response kind, a oneof, last; its decoders
// accept any order); past 3 bytes protobuf writes the whole response. For an allowed
// response and a denial.
func TestCodecMetadataLengths(t *testing.T) {
	c := codec{base: encoding.GetCodecV2("proto")}
	for _, size := range []int{127, 128, 16383, 16384, 1<<21 - 1, 1 << 21} {
		// One entry, so that protobuf's order is the codec's: value length chosen so that
		// the struct's size is size.
		md := &structpb.Struct{Fields: map[string]*structpb.Value{"k": structpb.NewStringValue("")}}
		for l := size - 16; proto.Size(md) != size; l++ {
			md.Fields["k"] = structpb.NewStringValue(strings.Repeat("v", l))
		}
		for name, r := range map[string]*authv3.CheckResponse{
			"allow": ToResponse(&policy.Decision{Outcome: policy.Allow}, "id"),
			"deny":  ToResponse(&policy.Decision{Outcome: policy.Deny, Code: policy.RateLimited}, "id"),
		} {
			r.DynamicMetadata = nil
			rest, err := proto.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			field, err := proto.Marshal(&authv3.CheckResponse{DynamicMetadata: md})
			if err != nil {
				t.Fatal(err)
			}
			want := append(rest, field...)
			r.DynamicMetadata = md
			if size >= 1<<21 {
				if want, err = proto.Marshal(r); err != nil {
					t.Fatal(err)
				}
			}
			bs, err := c.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(bs.Materialize(), want) {
				t.Errorf("%s, metadata of %d bytes: not protobuf's bytes", name, size)
			}
		}
	}
}
