package extauthz

import (
	"unicode/utf8"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// Codec returns the gRPC server's codec: protobuf's, except that a Check response's
// dynamic metadata, a map of short strings, is written directly. Protobuf writes a map
// field through reflection, two allocations or more per entry: for a device's request
// that is most of the response's encoding. The bytes are the same fields that protobuf
// writes (the metadata last, which its decoders accept in any order).
func Codec() encoding.CodecV2 { return codec{base: encoding.GetCodecV2("proto")} }

type codec struct{ base encoding.CodecV2 }

// Name is protobuf's: clients see no difference.
func (c codec) Name() string { return c.base.Name() }

// Unmarshal is protobuf's.
func (c codec) Unmarshal(data mem.BufferSlice, v any) error { return c.base.Unmarshal(data, v) }

// Marshal writes v as protobuf does.
func (c codec) Marshal(v any) (mem.BufferSlice, error) {
	r, ok := v.(*authv3.CheckResponse)
	if !ok || r.DynamicMetadata == nil {
		return c.base.Marshal(v)
	}
	md := r.DynamicMetadata
	n, ok := structSize(md)
	if !ok { // a value of another kind, or not UTF-8: protobuf decides
		return c.base.Marshal(v)
	}
	var b []byte
	if okr, plain := plainOK(r); plain { // an allowed response: see okcodec.go
		b = appendOK(make([]byte, 0, okSize(r, okr)+1+protowire.SizeBytes(n)), r, okr)
	} else {
		var err error
		if b, err = marshalWithout(r, 1+protowire.SizeBytes(n)); err != nil {
			return nil, err
		}
	}
	b = protowire.AppendTag(b, dynamicMetadataField, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(n))
	b = appendStruct(b, md)
	return mem.BufferSlice{mem.SliceBuffer(b)}, nil
}

// marshalWithout has protobuf write r without its metadata, in a buffer with room for
// extra bytes more.
func marshalWithout(r *authv3.CheckResponse, extra int) ([]byte, error) {
	// gRPC marshals a response once, on the goroutine that returned it, after every
	// interceptor: nothing else reads it meanwhile.
	md := r.DynamicMetadata
	r.DynamicMetadata = nil
	defer func() { r.DynamicMetadata = md }()
	// Marshal sizes a message before it writes it: with the sizes Size just cached (of
	// this very message, unchanged since), the tree is walked once more, not twice.
	size := proto.Size(r)
	return proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(make([]byte, 0, size+extra), r)
}

// The field numbers written directly: CheckResponse.dynamic_metadata, Struct.fields (an
// entry: key 1, value 2), Value.string_value.
const (
	dynamicMetadataField = 4
	structFieldsField    = 1
	entryKeyField        = 1
	entryValueField      = 2
	stringValueField     = 3
)

// structSize is the encoded size of s, and false unless every value is a string (or
// missing) and every string UTF-8.
func structSize(s *structpb.Struct) (int, bool) {
	n := 0
	for k, v := range s.GetFields() {
		sv, ok := stringOf(v)
		if !ok || !utf8.ValidString(k) || !utf8.ValidString(sv) {
			return 0, false
		}
		e := entrySize(k, v, sv)
		n += 1 + protowire.SizeBytes(e)
	}
	return n, true
}

// stringOf is v's string, and false when v holds another kind (a nil v or kind is an
// empty message: "").
func stringOf(v *structpb.Value) (string, bool) {
	switch k := v.GetKind().(type) {
	case nil:
		return "", true
	case *structpb.Value_StringValue:
		return k.StringValue, true
	}
	return "", false
}

func valueSize(v *structpb.Value, s string) int {
	if _, ok := v.GetKind().(*structpb.Value_StringValue); !ok {
		return 0
	}
	return 1 + protowire.SizeBytes(len(s))
}

func entrySize(k string, v *structpb.Value, s string) int {
	return 1 + protowire.SizeBytes(len(k)) + 1 + protowire.SizeBytes(valueSize(v, s))
}

// appendStruct appends the fields of s (checked by structSize) as protobuf writes them.
func appendStruct(b []byte, s *structpb.Struct) []byte {
	for k, v := range s.GetFields() {
		sv, _ := stringOf(v)
		b = protowire.AppendTag(b, structFieldsField, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(entrySize(k, v, sv)))
		b = protowire.AppendTag(b, entryKeyField, protowire.BytesType)
		b = protowire.AppendString(b, k)
		b = protowire.AppendTag(b, entryValueField, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(valueSize(v, sv)))
		if _, ok := v.GetKind().(*structpb.Value_StringValue); ok {
			b = protowire.AppendTag(b, stringValueField, protowire.BytesType)
			b = protowire.AppendString(b, sv)
		}
	}
	return b
}
