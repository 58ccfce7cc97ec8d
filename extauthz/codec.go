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
	if !ok || r.GetDynamicMetadata() == nil || !bare(r.DynamicMetadata) {
		return c.base.Marshal(v)
	}
	md := r.DynamicMetadata
	room := metadataRoom * len(md.GetFields())
	var b []byte
	if okr, plain := plainOK(r); plain { // an allowed response: see okcodec.go
		b = appendOK(make([]byte, 0, okSize(r, okr)+room), r, okr)
	} else {
		var err error
		if b, err = marshalWithout(r, room); err != nil {
			return nil, err
		}
	}
	if b, ok = appendMetadata(b, md); !ok { // a value of another kind, or not UTF-8: protobuf decides
		return c.base.Marshal(v)
	}
	return newOneBuffer(b), nil
}

// oneBuffer is a list of one buffer and the buffer, allocated together: the list holds a
// pointer to the buffer, which an interface holds without an allocation of its own.
type oneBuffer struct {
	list [1]mem.Buffer
	data mem.SliceBuffer
}

func newOneBuffer(b []byte) mem.BufferSlice {
	o := &oneBuffer{data: b}
	o.list[0] = &o.data
	return o.list[:]
}

// metadataRoom is the room a buffer is given per metadata entry: Check's entries, a
// name and a short value each, fit (a longer one grows the buffer).
const metadataRoom = 32

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

// stringOf is v's string, and false when v holds another kind or unknown fields (a nil
// v or kind, or a string kind holding nil, is an empty message: "").
func stringOf(v *structpb.Value) (string, bool) {
	if v != nil && !bare(v) {
		return "", false
	}
	switch k := v.GetKind().(type) {
	case nil:
		return "", true
	case *structpb.Value_StringValue:
		if k == nil { // protobuf writes a oneof holding a typed nil as unset
			return "", true
		}
		return k.StringValue, true
	}
	return "", false
}

// isString reports whether v's kind is a string that protobuf writes.
func isString(v *structpb.Value) bool {
	k, ok := v.GetKind().(*structpb.Value_StringValue)
	return ok && k != nil
}

func valueSize(v *structpb.Value, s string) int {
	if !isString(v) {
		return 0
	}
	return 1 + protowire.SizeBytes(len(s))
}

func entrySize(k string, v *structpb.Value, s string) int {
	return 1 + protowire.SizeBytes(len(k)) + 1 + protowire.SizeBytes(valueSize(v, s))
}

// appendMetadata appends s as CheckResponse.dynamic_metadata, as protobuf writes it, in
// one pass over its map: the length is written once the entries are, and false (with b
// of no use) unless every value is a string (or missing) without unknown fields and
// every string UTF-8.
func appendMetadata(b []byte, s *structpb.Struct) ([]byte, bool) {
	b = protowire.AppendTag(b, dynamicMetadataField, protowire.BytesType)
	at := len(b)
	b = append(b, 0, 0, 0) // room for the length, a varint of at most 3 bytes
	for k, v := range s.GetFields() {
		sv, ok := stringOf(v)
		if !ok || !utf8.ValidString(k) || !utf8.ValidString(sv) {
			return b, false
		}
		b = protowire.AppendTag(b, structFieldsField, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(entrySize(k, v, sv)))
		b = protowire.AppendTag(b, entryKeyField, protowire.BytesType)
		b = protowire.AppendString(b, k)
		b = protowire.AppendTag(b, entryValueField, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(valueSize(v, sv)))
		if isString(v) {
			b = protowire.AppendTag(b, stringValueField, protowire.BytesType)
			b = protowire.AppendString(b, sv)
		}
	}
	n := len(b) - at - 3
	if n >= 1<<21 { // more than 3 bytes of length: protobuf decides
		return b, false
	}
	var l [3]byte
	ln := protowire.AppendVarint(l[:0], uint64(n))
	copy(b[at+len(ln):], b[at+3:])
	copy(b[at:], ln)
	return b[:at+len(ln)+n], true
}
