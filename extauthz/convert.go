package extauthz

import (
	"net/netip"
	"strings"
	"sync"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/gatehouse/gatehouse/internal/envoyhdr"
	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/signature"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// MetadataNamespace is where Envoy files the dynamic metadata of an ext_authz response.
const MetadataNamespace = "envoy.filters.http.ext_authz"

// ToInput converts a CheckRequest into the pipeline's Input. It is a pure function and
// accepts any request, however incomplete: missing parts become empty values.
func ToInput(req *authv3.CheckRequest) policy.Input {
	attrs := req.GetAttributes()
	h := attrs.GetRequest().GetHttp()
	in := policy.Input{
		Method:    h.GetMethod(),
		RawPath:   h.GetPath(),
		Host:      h.GetHost(),
		Headers:   h.GetHeaders(),
		Ext:       attrs.GetContextExtensions(),
		BodySize:  h.GetSize(),
		RequestID: h.GetId(),
	}
	if len(in.Headers) == 0 && len(h.GetHeaderMap().GetHeaders()) > 0 {
		in.Headers = envoyhdr.Merge(h.GetHeaderMap().GetHeaders())
	}
	if in.Headers == nil {
		in.Headers = map[string]string{}
	} else {
		in.Headers = lowerNames(in.Headers)
	}
	if in.Method == "" {
		in.Method = in.Headers[":method"]
	}
	in.Method = strings.ToUpper(in.Method)
	if in.RawPath == "" {
		in.RawPath = in.Headers[":path"]
	}
	if in.Host == "" {
		in.Host = in.Headers[":authority"]
	}
	in.Path = in.RawPath
	if i := strings.IndexAny(in.Path, "?#"); i >= 0 {
		in.Path = in.Path[:i]
	}
	if raw := h.GetRawBody(); len(raw) > 0 {
		in.Body, in.HasBody = string(raw), true
	} else if b := h.GetBody(); b != "" {
		in.Body, in.HasBody = b, true
	}
	if v, ok := in.Headers["x-envoy-auth-partial-body"]; ok {
		in.BodyPartial = !wholeBody(v)
	}
	if sa := attrs.GetSource().GetAddress().GetSocketAddress(); sa != nil {
		if a, err := netip.ParseAddr(sa.GetAddress()); err == nil {
			in.Source = a.WithZone("").Unmap()
		}
	}
	return in
}

// wholeBody reports whether an x-envoy-auth-partial-body value says the body is whole:
// "false" in every copy. A client can send the header too, and its copy merged with
// Envoy's ("false,true") must not hide a truncated body.
func wholeBody(v string) bool {
	for c := range strings.SplitSeq(v, ",") {
		if strings.TrimSpace(c) != "false" {
			return false
		}
	}
	return true
}

// lowerNames returns the header map with lower-case names. Envoy sends them so, and the
// map is returned as it is; a caller that does not (a hand-built CheckRequest) gets a
// merged copy, so that X-Gatehouse-User cannot slip past a rule written for
// x-gatehouse-user and a credential sent under two spellings stays ambiguous.
func lowerNames(m map[string]string) map[string]string {
	for k := range m {
		if hasUpper(k) {
			out := make(map[string]string, len(m))
			for k, v := range m {
				k = strings.ToLower(k)
				if old, ok := out[k]; ok {
					v = old + "," + v
				}
				out[k] = v
			}
			return out
		}
	}
	return m
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return true
		}
	}
	return false
}

// grpcCode is the non-OK status of a denial, by the HTTP class of the canonical status.
// Envoy does not look at it, but logs and dashboards do.
func grpcCode(httpStatus int) codes.Code {
	switch {
	case httpStatus == 401:
		return codes.Unauthenticated
	case httpStatus == 404:
		return codes.NotFound
	case httpStatus == 429 || httpStatus == 402:
		return codes.ResourceExhausted
	case httpStatus == 400 || httpStatus == 405 || httpStatus == 413:
		return codes.InvalidArgument
	case httpStatus == 503 || httpStatus == 502 || httpStatus == 504:
		return codes.Unavailable
	case httpStatus >= 500:
		return codes.Internal
	}
	return codes.PermissionDenied
}

// header makes an overwrite-semantics header option. append=false is understood by every
// Envoy version (older ones ignore append_action).
func header(k, v string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, Value: v}, Append: appendFalse}
}

// headerSlab hands out the header options of one response from one allocation (two per
// header otherwise): they live exactly as long as the response.
type headerSlab []headerPair

type headerPair struct {
	opt corev3.HeaderValueOption
	val corev3.HeaderValue
}

func newHeaderSlab(n int) headerSlab { return make(headerSlab, 0, n) }

// header is header(k, v) from the slab, or on its own once the slab is used up.
func (s *headerSlab) header(k, v string) *corev3.HeaderValueOption {
	if len(*s) == cap(*s) {
		return header(k, v)
	}
	*s = (*s)[:len(*s)+1]
	p := &(*s)[len(*s)-1]
	p.val.Key, p.val.Value = k, v
	p.opt.Header, p.opt.Append = &p.val, appendFalse
	return &p.opt
}

// maxLimitHeaders is how many headers rateLimitHeaders adds at most.
const maxLimitHeaders = 4

// limitHeaders is how many headers rateLimitHeaders adds for d (as RateLimit.Headers
// spells them: limit and remaining, reset when known, retry-after when refused).
func limitHeaders(d *policy.Decision) int {
	r := &d.RateLimit
	if r.Name == "" {
		return 0
	}
	n := 2
	if !r.Reset.IsZero() {
		n++
	}
	if r.Code != "" {
		n++
	}
	return n
}

// appendFalse and the interned metadata values are shared by every response: gRPC only
// reads them while marshalling (the size cache is written atomically).
var appendFalse = wrapperspb.Bool(false)

// interned holds metadata values drawn from bounded sets (configured app and endpoint
// names, catalogue codes, outcomes), so that a response does not allocate them again.
var interned sync.Map // string → *structpb.Value

func internValue(s string) *structpb.Value {
	if v, ok := interned.Load(s); ok {
		return v.(*structpb.Value)
	}
	v, _ := interned.LoadOrStore(s, structpb.NewStringValue(s))
	return v.(*structpb.Value)
}

var contentTypeJSON = header("content-type", "application/json")

// rateLimitHeaders renders the headers of the limit the client hears about (which
// package ratelimit picked), as policy.LimitResult.Headers spells them: Retry-After too
// when a limit refused the request.
func rateLimitHeaders(dst []*corev3.HeaderValueOption, slab *headerSlab, d *policy.Decision) []*corev3.HeaderValueOption {
	h := d.RateLimit.Headers()
	if h.Limit == "" { // no limit applied
		return dst
	}
	dst = append(dst, slab.header("x-ratelimit-limit", h.Limit), slab.header("x-ratelimit-remaining", h.Remaining))
	if h.Reset != "" {
		dst = append(dst, slab.header("x-ratelimit-reset", h.Reset))
	}
	if h.RetryAfter != "" {
		dst = append(dst, slab.header("retry-after", h.RetryAfter))
	}
	return dst
}

// ToResponse converts a Decision into Envoy's CheckResponse. The caller handles
// policy.Undecided (a gRPC error) before calling it. It is a pure function.
func ToResponse(d *policy.Decision, id string) *authv3.CheckResponse {
	if d.Outcome == policy.Allow {
		return new(allowed).response(d, id)
	}
	resp := &authv3.CheckResponse{DynamicMetadata: new(dynamicMetadata).fill(d, id)}
	if d.Outcome == policy.Served && d.Direct != nil {
		resp.Status = &rpcstatus.Status{Code: int32(codes.PermissionDenied)}
		dr := served(d.Direct)
		dr.Headers = signHeaders(dr.Headers, d, int(dr.Status.Code), d.Direct.Body)
		resp.HttpResponse = &authv3.CheckResponse_DeniedResponse{DeniedResponse: dr}
		return resp
	}
	r := d.Render()
	canonical := r.Status
	if e, ok := policy.Lookup(d.Code); ok && r.Status < 400 {
		canonical = e.Status // license SDK denials are HTTP 200 but still denials
	}
	hs := make([]*corev3.HeaderValueOption, 0, 2+len(d.Response)+maxLimitHeaders+3)
	slab := newHeaderSlab(1 + len(d.Response) + maxLimitHeaders + 3)
	hs = append(hs, contentTypeJSON)
	for _, h := range d.Response {
		hs = append(hs, slab.header(h.Key, h.Value))
	}
	hs = rateLimitHeaders(hs, &slab, d)
	if d.RetryAfter > 0 && d.RateLimit.Code == "" { // another step's wait (a lockout)
		hs = append(hs, slab.header("retry-after", policy.RetryAfterSeconds(d.RetryAfter)))
	}
	hs = signHeaders(hs, d, r.Status, r.Body)
	resp.Status = &rpcstatus.Status{Code: int32(grpcCode(canonical)), Message: r.Code}
	resp.HttpResponse = &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
		Status:  &typev3.HttpStatus{Code: typev3.StatusCode(r.Status)},
		Headers: hs,
		Body:    string(r.Body),
	}}
	return resp
}

// signHeaders appends the signature headers of a response the client receives on a
// signed route (the echoed nonce, the timestamp, the signature); none without a signer.
func signHeaders(dst []*corev3.HeaderValueOption, d *policy.Decision, status int, body []byte) []*corev3.HeaderValueOption {
	if d.Signer == nil {
		return dst
	}
	var buf [3]signature.Header
	for _, h := range d.Signer.AppendHeaders(buf[:0], d.Nonce, status, d.SignedAt, body) {
		dst = append(dst, header(h.Key, h.Value))
	}
	return dst
}

// served is the whole answer of an endpoint Gatehouse serves itself. Envoy sends a
// denied response to the client as it is, whatever its status; a served answer holds
// tokens, so no cache may keep it.
func served(x *policy.Direct) *authv3.DeniedHttpResponse {
	hs := make([]*corev3.HeaderValueOption, 0, 2+len(x.Headers))
	hs = append(hs, contentTypeJSON, header("cache-control", "no-store"))
	for _, h := range x.Headers {
		hs = append(hs, header(h.Key, h.Value))
	}
	return &authv3.DeniedHttpResponse{Status: &typev3.HttpStatus{Code: typev3.StatusCode(x.Status)}, Headers: hs, Body: string(x.Body)}
}

// dynamicMetadata holds the dynamic metadata of one response and its per-request values, so
// that they cost one allocation; the other values are interned.
type dynamicMetadata struct {
	md         structpb.Struct
	id, device stringValue
}

// stringValue is a string structpb.Value with its kind, allocated together.
type stringValue struct {
	v structpb.Value
	s structpb.Value_StringValue
}

func (s *stringValue) of(x string) *structpb.Value {
	s.s.StringValue = x
	s.v.Kind = &s.s
	return &s.v
}

// fill sets the dynamic metadata for Envoy's access log, rate-limit filter and local
// replies, and returns it: `dialect` selects the local_reply_config mappers that render
// Envoy's own failures in the format this client is spoken to in.
func (m *dynamicMetadata) fill(d *policy.Decision, id string) *structpb.Struct {
	f := make(map[string]*structpb.Value, 8)
	f["decision_id"] = m.id.of(id)
	f["dialect"] = internValue(d.Dialect.String())
	switch d.Outcome {
	case policy.Allow:
		f["decision"] = internValue("allow")
	case policy.Served:
		f["decision"] = internValue("served")
	default:
		f["decision"] = internValue("deny")
		f["code"] = internValue(string(d.Code))
	}
	if d.App != "" {
		f["app"] = internValue(d.App)
	}
	if d.Endpoint != "" {
		f["endpoint"] = internValue(d.Endpoint)
	}
	if d.DeviceID != "" {
		f["device_id"] = m.device.of(d.DeviceID)
	}
	if d.Caller != "" {
		f["caller"] = structpb.NewStringValue(d.Caller)
	}
	if d.Client != "" {
		f["client"] = structpb.NewStringValue(d.Client)
	}
	m.md.Fields = f
	return &m.md
}

// allowed holds the fixed parts of an allowed response, so that they cost one
// allocation: they are built together, marshalled once and dropped together.
type allowed struct {
	resp   authv3.CheckResponse
	wrap   authv3.CheckResponse_OkResponse
	ok     authv3.OkHttpResponse
	status rpcstatus.Status
	md     dynamicMetadata
	// lists backs the two header lists when they fit: three identity headers and
	// three rate-limit headers.
	lists [6]*corev3.HeaderValueOption
}

// response fills a and returns the response to d, which allowed the request.
func (a *allowed) response(d *policy.Decision, id string) *authv3.CheckResponse {
	ok := &a.ok
	ok.HeadersToRemove = d.Remove
	lh := limitHeaders(d)
	nu, nr := len(d.Upstream), len(d.Response)+lh
	var slab headerSlab
	if nu+nr > 0 {
		slab = newHeaderSlab(nu + nr)
	}
	if nu > 0 {
		ok.Headers = a.list(0, nu, nu+nr)
		for _, h := range d.Upstream {
			ok.Headers = append(ok.Headers, slab.header(h.Key, h.Value))
		}
	}
	if nr > 0 {
		ok.ResponseHeadersToAdd = a.list(nu, nr, nu+nr)
	}
	for _, h := range d.Response {
		ok.ResponseHeadersToAdd = append(ok.ResponseHeadersToAdd, slab.header(h.Key, h.Value))
	}
	ok.ResponseHeadersToAdd = rateLimitHeaders(ok.ResponseHeadersToAdd, &slab, d)
	a.status.Code = int32(codes.OK)
	a.wrap.OkResponse = ok
	a.resp.Status, a.resp.HttpResponse, a.resp.DynamicMetadata = &a.status, &a.wrap, a.md.fill(d, id)
	return &a.resp
}

// list returns an empty header list of capacity n, from a.lists at offset off when all
// total headers fit there.
func (a *allowed) list(off, n, total int) []*corev3.HeaderValueOption {
	if total > len(a.lists) {
		return make([]*corev3.HeaderValueOption, 0, n)
	}
	return a.lists[off : off : off+n]
}
