package extauthz

import (
	"unicode/utf8"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// An allowed response is written directly too, the fields ToResponse sets on one as
// protobuf writes them (in field order within OkHttpResponse; the response's own fields
// in the codec's order, metadata last, as Codec says; empty ones left out, present
// messages always written): protobuf's table-driven marshal walks each header option as three messages,
// twice (size, then bytes), which for a device's request cost more than Gatehouse's
// decision. Anything else set on one (a field written here knows nothing of, unknown
// fields, a string that is not UTF-8) leaves the response to protobuf: plainOK says
// which. TestOKCodecKnowsEveryField fails when a new version of the messages adds a
// field, so that this file learns of it.

// The field numbers written here (CheckResponse's dynamic_metadata is in codec.go).
const (
	checkStatusField = 1 // CheckResponse.status
	checkOKField     = 3 // CheckResponse.ok_response
	statusCodeField  = 1 // google.rpc.Status.code
	okHeadersField   = 2 // OkHttpResponse.headers
	okRemoveField    = 5 // OkHttpResponse.headers_to_remove
	okResponseField  = 6 // OkHttpResponse.response_headers_to_add
	optHeaderField   = 1 // HeaderValueOption.header
	optAppendField   = 2 // HeaderValueOption.append
	hvKeyField       = 1 // HeaderValue.key
	hvValueField     = 2 // HeaderValue.value
	boolValueField   = 1 // BoolValue.value
)

// plainOK returns r's OK response when r holds only what appendOK writes.
func plainOK(r *authv3.CheckResponse) (*authv3.OkHttpResponse, bool) {
	w, isOK := r.HttpResponse.(*authv3.CheckResponse_OkResponse)
	if !isOK || w == nil || w.OkResponse == nil || !bare(r) || !plainStatus(r.Status) {
		return nil, false
	}
	ok := w.OkResponse
	if !bare(ok) || ok.DynamicMetadata != nil || len(ok.QueryParametersToSet) > 0 || len(ok.QueryParametersToRemove) > 0 {
		return nil, false
	}
	for _, s := range ok.HeadersToRemove {
		if !utf8.ValidString(s) {
			return nil, false
		}
	}
	return ok, plainOptions(ok.Headers) && plainOptions(ok.ResponseHeadersToAdd)
}

// bare reports whether m carries no unknown fields.
func bare(m proto.Message) bool { return len(m.ProtoReflect().GetUnknown()) == 0 }

func plainStatus(s *rpcstatus.Status) bool {
	return s == nil || (s.Message == "" && len(s.Details) == 0 && bare(s))
}

func plainOptions(hs []*corev3.HeaderValueOption) bool {
	for _, o := range hs {
		if o == nil || o.AppendAction != 0 || o.KeepEmptyValue || !bare(o) || (o.Append != nil && !bare(o.Append)) {
			return false
		}
		if h := o.Header; h != nil && (len(h.RawValue) > 0 || !utf8.ValidString(h.Key) || !utf8.ValidString(h.Value) || !bare(h)) {
			return false
		}
	}
	return true
}

// okSize is the encoded size of r, whose OK response is ok, without its metadata.
func okSize(r *authv3.CheckResponse, ok *authv3.OkHttpResponse) int {
	n := 0
	if r.Status != nil {
		n += 1 + protowire.SizeBytes(statusSize(r.Status))
	}
	return n + 1 + protowire.SizeBytes(okBodySize(ok))
}

func statusSize(s *rpcstatus.Status) int {
	if s.Code == 0 {
		return 0
	}
	return 1 + protowire.SizeVarint(uint64(int64(s.Code)))
}

func okBodySize(ok *authv3.OkHttpResponse) int {
	n := optionsSize(ok.Headers) + optionsSize(ok.ResponseHeadersToAdd)
	for _, s := range ok.HeadersToRemove {
		n += 1 + protowire.SizeBytes(len(s))
	}
	return n
}

func optionsSize(hs []*corev3.HeaderValueOption) int {
	n := 0
	for _, o := range hs {
		n += 1 + protowire.SizeBytes(optionSize(o))
	}
	return n
}

func optionSize(o *corev3.HeaderValueOption) int {
	n := 0
	if o.Header != nil {
		n += 1 + protowire.SizeBytes(headerValueSize(o.Header))
	}
	if o.Append != nil {
		n += 1 + protowire.SizeBytes(boolValueSize(o.Append))
	}
	return n
}

func headerValueSize(h *corev3.HeaderValue) int {
	return stringSize(h.Key) + stringSize(h.Value)
}

// stringSize is the size of a proto3 string field: nothing when empty.
func stringSize(s string) int {
	if s == "" {
		return 0
	}
	return 1 + protowire.SizeBytes(len(s))
}

func boolValueSize(b *wrapperspb.BoolValue) int {
	if !b.Value {
		return 0
	}
	return 2
}

// appendOK appends r, whose OK response is ok, without its metadata.
func appendOK(b []byte, r *authv3.CheckResponse, ok *authv3.OkHttpResponse) []byte {
	if s := r.Status; s != nil {
		b = protowire.AppendTag(b, checkStatusField, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(statusSize(s)))
		if s.Code != 0 {
			b = protowire.AppendTag(b, statusCodeField, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(int64(s.Code)))
		}
	}
	b = protowire.AppendTag(b, checkOKField, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(okBodySize(ok)))
	b = appendOptions(b, okHeadersField, ok.Headers)
	for _, s := range ok.HeadersToRemove {
		b = protowire.AppendTag(b, okRemoveField, protowire.BytesType)
		b = protowire.AppendString(b, s)
	}
	return appendOptions(b, okResponseField, ok.ResponseHeadersToAdd)
}

func appendOptions(b []byte, field protowire.Number, hs []*corev3.HeaderValueOption) []byte {
	for _, o := range hs {
		b = protowire.AppendTag(b, field, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(optionSize(o)))
		if h := o.Header; h != nil {
			b = protowire.AppendTag(b, optHeaderField, protowire.BytesType)
			b = protowire.AppendVarint(b, uint64(headerValueSize(h)))
			b = appendString(b, hvKeyField, h.Key)
			b = appendString(b, hvValueField, h.Value)
		}
		if a := o.Append; a != nil {
			b = protowire.AppendTag(b, optAppendField, protowire.BytesType)
			b = protowire.AppendVarint(b, uint64(boolValueSize(a)))
			if a.Value {
				b = protowire.AppendTag(b, boolValueField, protowire.VarintType)
				b = protowire.AppendVarint(b, 1)
			}
		}
	}
	return b
}

// appendString appends a proto3 string field: nothing when empty.
func appendString(b []byte, field protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, field, protowire.BytesType)
	return protowire.AppendString(b, s)
}
