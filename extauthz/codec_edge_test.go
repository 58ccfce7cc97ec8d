package extauthz

import (
	"fmt"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/encoding"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"
)

// TestCodecEdgeCasesAsProtobuf: Check responses that the direct writers must leave to
// protobuf or write as it does, though ToResponse builds none of them: a oneof holding
// a typed nil (protobuf writes nothing for it), and unknown fields on the metadata or on
// one of its values (protobuf keeps them). The codec neither panics nor drops anything:
// what it writes reads back as what protobuf's own bytes read back as. A nil response
// (a handler returning nil and no error) is written as protobuf writes it: no bytes.
func TestCodecEdgeCasesAsProtobuf(t *testing.T) {
	unknown := func(m proto.Message) proto.Message {
		m.ProtoReflect().SetUnknown(protoreflect.RawFields{0xf8, 0x3e, 0x01}) // field 1007, varint 1
		return m
	}
	md := func(fs map[string]*structpb.Value) *structpb.Struct { return &structpb.Struct{Fields: fs} }
	okWith := func(m *structpb.Struct) *authv3.CheckResponse {
		return &authv3.CheckResponse{Status: &rpcstatus.Status{},
			HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
				Headers: []*corev3.HeaderValueOption{opt("x-gatehouse-app", "demo", appendFalse)}}},
			DynamicMetadata: m}
	}
	cases := map[string]*authv3.CheckResponse{
		"a nil response": nil,
		"typed nil ok response": {Status: &rpcstatus.Status{}, HttpResponse: (*authv3.CheckResponse_OkResponse)(nil),
			DynamicMetadata: md(map[string]*structpb.Value{"decision": structpb.NewStringValue("allow")})},
		"typed nil denied response": {HttpResponse: (*authv3.CheckResponse_DeniedResponse)(nil),
			DynamicMetadata: md(map[string]*structpb.Value{"decision": structpb.NewStringValue("deny")})},
		"typed nil string kind": okWith(md(map[string]*structpb.Value{"k": {Kind: (*structpb.Value_StringValue)(nil)}})),
		"typed nil number kind": okWith(md(map[string]*structpb.Value{"k": {Kind: (*structpb.Value_NumberValue)(nil)}})),
		"unknown on the metadata": okWith(unknown(md(map[string]*structpb.Value{
			"decision": structpb.NewStringValue("allow")})).(*structpb.Struct)),
		"unknown on a value": okWith(md(map[string]*structpb.Value{
			"decision": unknown(structpb.NewStringValue("allow")).(*structpb.Value)})),
		"unknown on an empty value": okWith(md(map[string]*structpb.Value{"k": unknown(&structpb.Value{}).(*structpb.Value)})),
	}
	c := codec{base: encoding.GetCodecV2("proto")}
	for name, r := range cases {
		t.Run(name, func(t *testing.T) {
			want, err := proto.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			fromProto := new(authv3.CheckResponse)
			if err := proto.Unmarshal(want, fromProto); err != nil {
				t.Fatal(err)
			}
			got, err := marshalRecovering(c, r)
			if err != nil {
				t.Fatal(err)
			}
			back := new(authv3.CheckResponse)
			if err := proto.Unmarshal(got, back); err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(back, fromProto) {
				t.Fatalf("read back %v, protobuf's bytes read back %v", back, fromProto)
			}
			if len(got) != len(want) {
				t.Fatalf("wrote %d bytes, protobuf writes %d", len(got), len(want))
			}
		})
	}
}

// marshalRecovering is c.Marshal(r), with a panic reported as an error.
func marshalRecovering(c codec, r *authv3.CheckResponse) (b []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = panicError{p}
		}
	}()
	bs, err := c.Marshal(r)
	if err != nil {
		return nil, err
	}
	return bs.Materialize(), nil
}

type panicError struct{ v any }

func (p panicError) Error() string { return fmt.Sprint("panic in Marshal: ", p.v) }
