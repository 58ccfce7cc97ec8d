package extauthz

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/gatehouse/gatehouse/policy"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/encoding"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// okResponse is an allowed response with metadata and the given OK part.
func okResponse(st *rpcstatus.Status, ok *authv3.OkHttpResponse) *authv3.CheckResponse {
	return &authv3.CheckResponse{Status: st, HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: ok},
		DynamicMetadata: &structpb.Struct{Fields: map[string]*structpb.Value{"decision": structpb.NewStringValue("allow")}}}
}

func opt(k, v string, app *wrapperspb.BoolValue) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, Value: v}, Append: app}
}

// TestOKCodecWritesAsProtobuf: every allowed response ToResponse builds, and the variants
// of its fields the direct writer handles, come out as protobuf's own bytes (the
// response without its metadata compared byte for byte, the whole read back equal).
func TestOKCodecWritesAsProtobuf(t *testing.T) {
	reset := time.Unix(1609459200, 0)
	long := strings.Repeat("v", 300) // lengths of two varint bytes
	cases := map[string]*authv3.CheckResponse{
		"device, limits, removals": ToResponse(&policy.Decision{Outcome: policy.Allow, App: "demo", Endpoint: "secure", DeviceID: "device-7",
			Upstream: []policy.Header{{Key: "x-gatehouse-app", Value: "demo"}, {Key: "x-gatehouse-device", Value: "device-7"}},
			Remove:   []string{"x-attestation-token", "x-app-token"}, Response: []policy.Header{{Key: "x-extra", Value: "1"}},
			RateLimit: policy.LimitResult{Limit: 50, Remaining: 7, Reset: reset, Name: "device"}}, "0123456789abcdef0123456789abcdef"),
		"nothing but metadata": ToResponse(&policy.Decision{Outcome: policy.Allow}, "id"),
		"more headers than the block holds": ToResponse(&policy.Decision{Outcome: policy.Allow, App: "a",
			Upstream:  []policy.Header{{Key: "a", Value: "1"}, {Key: "b", Value: "2"}, {Key: "c", Value: "3"}, {Key: "d", Value: "4"}},
			RateLimit: policy.LimitResult{Limit: 5000, Remaining: 4999, Reset: reset, Name: "n"}}, "id"),
		"no status":            okResponse(nil, &authv3.OkHttpResponse{Headers: []*corev3.HeaderValueOption{opt("k", "v", nil)}}),
		"a status code":        okResponse(&rpcstatus.Status{Code: 7}, &authv3.OkHttpResponse{}),
		"a negative code":      okResponse(&rpcstatus.Status{Code: -1}, &authv3.OkHttpResponse{}),
		"append true and nil":  okResponse(&rpcstatus.Status{}, &authv3.OkHttpResponse{ResponseHeadersToAdd: []*corev3.HeaderValueOption{opt("k", "v", wrapperspb.Bool(true)), opt("l", "w", nil)}}),
		"empty key and value":  okResponse(&rpcstatus.Status{}, &authv3.OkHttpResponse{Headers: []*corev3.HeaderValueOption{opt("", "", appendFalse), {Append: appendFalse}, {}}}),
		"long and non-ASCII":   okResponse(&rpcstatus.Status{}, &authv3.OkHttpResponse{Headers: []*corev3.HeaderValueOption{opt(long, "é✓", nil)}, HeadersToRemove: []string{long, ""}}),
		"empty lists, not nil": okResponse(&rpcstatus.Status{}, &authv3.OkHttpResponse{Headers: []*corev3.HeaderValueOption{}, HeadersToRemove: []string{}}),
	}
	c := codec{base: encoding.GetCodecV2("proto")}
	for name, r := range cases {
		t.Run(name, func(t *testing.T) {
			ok, plain := plainOK(r)
			if !plain {
				t.Fatal("not written directly")
			}
			bare := proto.Clone(r).(*authv3.CheckResponse)
			bare.DynamicMetadata = nil
			want, err := proto.MarshalOptions{Deterministic: true}.Marshal(bare)
			if err != nil {
				t.Fatal(err)
			}
			if got := appendOK(nil, r, ok); !bytes.Equal(got, want) || okSize(r, ok) != len(want) {
				t.Fatalf("wrote %x (size %d), protobuf writes %x", got, okSize(r, ok), want)
			}
			bs, err := c.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			back := new(authv3.CheckResponse)
			if err := proto.Unmarshal(bs.Materialize(), back); err != nil || !proto.Equal(back, r) {
				t.Fatalf("read back %v (%v), want %v", back, err, r)
			}
		})
	}
}

// TestOKCodecLeavesTheRestToProtobuf: an allowed response with anything the direct
// writer does not write (a field it leaves to protobuf, unknown fields on any of its
// messages, a string that is not UTF-8) is protobuf's to write: the codec's answer, bytes
// or error, is protobuf's.
func TestOKCodecLeavesTheRestToProtobuf(t *testing.T) {
	unknown := func(m proto.Message) proto.Message {
		m.ProtoReflect().SetUnknown(protoreflect.RawFields{0xf8, 0x3e, 0x01}) // field 999, varint 1
		return m
	}
	detail, err := anypb.New(wrapperspb.String("x"))
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]*authv3.CheckResponse{
		"append action": okResponse(nil, &authv3.OkHttpResponse{Headers: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "k"},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD}}}),
		"keep empty value":          okResponse(nil, &authv3.OkHttpResponse{Headers: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "k"}, KeepEmptyValue: true}}}),
		"raw value":                 okResponse(nil, &authv3.OkHttpResponse{ResponseHeadersToAdd: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "k", RawValue: []byte("v")}}}}),
		"ok metadata":               okResponse(nil, &authv3.OkHttpResponse{DynamicMetadata: &structpb.Struct{}}),
		"query parameters to set":   okResponse(nil, &authv3.OkHttpResponse{QueryParametersToSet: []*corev3.QueryParameter{{Key: "q", Value: "1"}}}),
		"query parameters removed":  okResponse(nil, &authv3.OkHttpResponse{QueryParametersToRemove: []string{"q"}}),
		"status message":            okResponse(&rpcstatus.Status{Message: "m"}, &authv3.OkHttpResponse{}),
		"status details":            okResponse(&rpcstatus.Status{Details: []*anypb.Any{detail}}, &authv3.OkHttpResponse{}),
		"unknown on the response":   unknown(okResponse(nil, &authv3.OkHttpResponse{})).(*authv3.CheckResponse),
		"unknown on the status":     okResponse(unknown(&rpcstatus.Status{}).(*rpcstatus.Status), &authv3.OkHttpResponse{}),
		"unknown on the ok":         okResponse(nil, unknown(&authv3.OkHttpResponse{}).(*authv3.OkHttpResponse)),
		"unknown on an option":      okResponse(nil, &authv3.OkHttpResponse{Headers: []*corev3.HeaderValueOption{unknown(opt("k", "v", nil)).(*corev3.HeaderValueOption)}}),
		"unknown on a header":       okResponse(nil, &authv3.OkHttpResponse{Headers: []*corev3.HeaderValueOption{{Header: unknown(&corev3.HeaderValue{Key: "k"}).(*corev3.HeaderValue)}}}),
		"unknown on append":         okResponse(nil, &authv3.OkHttpResponse{Headers: []*corev3.HeaderValueOption{opt("k", "v", unknown(wrapperspb.Bool(false)).(*wrapperspb.BoolValue))}}),
		"key not UTF-8":             okResponse(nil, &authv3.OkHttpResponse{Headers: []*corev3.HeaderValueOption{opt("a\xffb", "v", nil)}}),
		"value not UTF-8":           okResponse(nil, &authv3.OkHttpResponse{ResponseHeadersToAdd: []*corev3.HeaderValueOption{opt("k", "a\xffb", nil)}}),
		"removed header not UTF-8":  okResponse(nil, &authv3.OkHttpResponse{HeadersToRemove: []string{"a\xffb"}}),
		"a nil option":              okResponse(nil, &authv3.OkHttpResponse{Headers: []*corev3.HeaderValueOption{nil}}),
		"a nil ok response":         {HttpResponse: &authv3.CheckResponse_OkResponse{}, DynamicMetadata: &structpb.Struct{}},
		"a denial":                  ToResponse(&policy.Decision{Outcome: policy.Deny, Code: policy.RateLimited}, "id"),
		"a denial with no metadata": {HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{}}},
	}
	c := codec{base: encoding.GetCodecV2("proto")}
	for name, r := range cases {
		t.Run(name, func(t *testing.T) {
			if _, plain := plainOK(r); plain {
				t.Fatal("written directly")
			}
			bs, err := c.Marshal(r)
			_, perr := proto.Marshal(r)
			if (err != nil) != (perr != nil) {
				t.Fatalf("codec error %v, protobuf's %v", err, perr)
			}
			if err != nil {
				return
			}
			back := new(authv3.CheckResponse)
			if err := proto.Unmarshal(bs.Materialize(), back); err != nil || !proto.Equal(back, r) {
				t.Fatalf("read back %v (%v), want %v", back, err, r)
			}
		})
	}
}

// TestOKCodecKnowsEveryField: the messages of an allowed response have exactly the fields
// okcodec.go writes or checks are empty. A new version of the messages with a field more
// fails here, so that the direct writer learns of it instead of dropping it.
func TestOKCodecKnowsEveryField(t *testing.T) {
	for _, tc := range []struct {
		m     proto.Message
		known []protoreflect.FieldNumber
	}{
		{&authv3.CheckResponse{}, []protoreflect.FieldNumber{1, 2, 3, 4, 5}}, // 2, 5: the other kinds of response
		{&authv3.OkHttpResponse{}, []protoreflect.FieldNumber{2, 3, 5, 6, 7, 8}},
		{&corev3.HeaderValueOption{}, []protoreflect.FieldNumber{1, 2, 3, 4}},
		{&corev3.HeaderValue{}, []protoreflect.FieldNumber{1, 2, 3}},
		{&rpcstatus.Status{}, []protoreflect.FieldNumber{1, 2, 3}},
		{&wrapperspb.BoolValue{}, []protoreflect.FieldNumber{1}},
	} {
		fs := tc.m.ProtoReflect().Descriptor().Fields()
		var got []protoreflect.FieldNumber
		for i := range fs.Len() {
			got = append(got, fs.Get(i).Number())
		}
		slices.Sort(got)
		if !slices.Equal(got, tc.known) {
			t.Errorf("%s has fields %v, the direct writer knows %v", tc.m.ProtoReflect().Descriptor().FullName(), got, tc.known)
		}
	}
}

// BenchmarkCodecAllowed: the server's codec writing an attested device's allowed
// response (three upstream and three rate-limit headers, two removals, six metadata
// entries).
func BenchmarkCodecAllowed(b *testing.B) {
	r := ToResponse(&policy.Decision{Outcome: policy.Allow, App: "demo", Endpoint: "secure", DeviceID: "device-7",
		Upstream: []policy.Header{{Key: "x-gatehouse-app", Value: "demo"}, {Key: "x-gatehouse-endpoint", Value: "secure"},
			{Key: "x-gatehouse-device", Value: "device-7"}},
		Remove:    []string{"x-attestation-token", "x-app-token"},
		RateLimit: policy.LimitResult{Limit: 100, Remaining: 99, Reset: time.Unix(1609459200, 0), Name: "per_device"}},
		"0123456789abcdef0123456789abcdef")
	c := Codec()
	b.ReportAllocs()
	for b.Loop() {
		bs, err := c.Marshal(r)
		if err != nil {
			b.Fatal(err)
		}
		bs.Free()
	}
}

// TestCodecAllowedAllocs: writing an allowed response costs exactly 2 allocations: its
// bytes, and the one-buffer list gRPC takes them in.
func TestCodecAllowedAllocs(t *testing.T) {
	r := ToResponse(&policy.Decision{Outcome: policy.Allow, App: "demo", Endpoint: "secure", DeviceID: "device-7",
		Upstream: []policy.Header{{Key: "x-gatehouse-app", Value: "demo"}}, Remove: []string{"x-app-token"},
		RateLimit: policy.LimitResult{Limit: 100, Remaining: 99, Reset: time.Unix(1609459200, 0), Name: "per_device"}}, "id")
	c := Codec()
	n := testing.AllocsPerRun(200, func() {
		bs, err := c.Marshal(r)
		if err != nil || len(bs) != 1 {
			t.Fatal(err, len(bs))
		}
		bs.Free()
	})
	if n != 2 {
		t.Errorf("%.0f allocations, want 2", n)
	}
}
