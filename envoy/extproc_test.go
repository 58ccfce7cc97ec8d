package envoy

import (
	"slices"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	"google.golang.org/protobuf/proto"
)

// headersOnly is the processing mode of the ext_proc filter itself, for routes without an
// override: Gatehouse sees the headers of both directions and, when the request needs
// nothing, answers with a mode_override that skips the response phase.
var headersOnly = &extprocv3.ProcessingMode{
	RequestHeaderMode:   extprocv3.ProcessingMode_SEND,
	ResponseHeaderMode:  extprocv3.ProcessingMode_SEND,
	RequestBodyMode:     extprocv3.ProcessingMode_NONE,
	ResponseBodyMode:    extprocv3.ProcessingMode_NONE,
	RequestTrailerMode:  extprocv3.ProcessingMode_SKIP,
	ResponseTrailerMode: extprocv3.ProcessingMode_SKIP,
}

// checkExtProc checks the ext_proc filter's settings that Gatehouse's Process relies on.
func checkExtProc(t *testing.T, p *extprocv3.ExternalProcessor, cluster string) {
	t.Helper()
	if p == nil {
		t.Fatal("no ext_proc filter")
	}
	g := p.GetGrpcService()
	if got := g.GetEnvoyGrpc().GetClusterName(); got != cluster {
		t.Errorf("ext_proc: cluster %q, want %q", got, cluster)
	}
	if g.GetTimeout() != nil {
		t.Error("ext_proc: grpc_service.timeout would bound the whole stream (as long as the request); use message_timeout")
	}
	if to := p.GetMessageTimeout(); to == nil || to.AsDuration() <= 0 || to.AsDuration().Seconds() > 1 {
		t.Errorf("ext_proc: message_timeout %v, want explicit and at most 1s", to)
	}
	if p.GetFailureModeAllow() {
		t.Error("ext_proc: must fail closed (failure_mode_allow: false): a response could leave unsigned")
	}
	if !p.GetAllowModeOverride() {
		t.Error("ext_proc: allow_mode_override must be on, so requests that need nothing skip the later phases")
	}
	if p.GetObservabilityMode() || p.GetDisableImmediateResponse() || p.GetSendBodyWithoutWaitingForHeaderResponse() {
		t.Error("ext_proc: observability mode, disabled immediate responses and early bodies would ignore Gatehouse's answers")
	}
	if !slices.Contains(p.GetMetadataOptions().GetForwardingNamespaces().GetUntyped(), metadataNamespace) {
		t.Errorf("ext_proc: metadata_options.forwarding_namespaces.untyped must hold %s (who Check identified)", metadataNamespace)
	}
	if !proto.Equal(p.GetProcessingMode(), headersOnly) {
		t.Errorf("ext_proc: processing_mode %v, want headers only (%v)", p.GetProcessingMode(), headersOnly)
	}
}

// checkExtProcRoutes checks the per-route overrides: health checks and routes that need
// nothing disable the filter, the others send headers and buffer whole bodies or none (a
// signature, a replay and a fingerprint need the complete body; STREAMED would hand Gatehouse
// pieces and FULL_DUPLEX_STREAMED allows no mode override).
func checkExtProcRoutes(t *testing.T, rc *routev3.RouteConfiguration) {
	t.Helper()
	var disabled, bothBuffered, requestBuffered int
	for _, vh := range rc.GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			per := extProcPerRoute(t, r)
			authz := &extauthzv3.ExtAuthzPerRoute{}
			if a := r.GetTypedPerFilterConfig()[extAuthzFilter]; a != nil {
				if err := a.UnmarshalTo(authz); err != nil {
					t.Fatal(err)
				}
			}
			switch {
			case authz.GetDisabled() && !per.GetDisabled():
				t.Errorf("route %s: without ext_authz Process learns nothing about the request; disable ext_proc too", r.GetName())
			case per.GetDisabled():
				disabled++
			case per.GetOverrides() != nil:
				req, resp := checkOverrideMode(t, r.GetName(), per.GetOverrides().GetProcessingMode())
				if req && resp {
					bothBuffered++
				} else if req {
					requestBuffered++
				}
			}
		}
	}
	if disabled < 2 || bothBuffered == 0 || requestBuffered == 0 {
		t.Errorf("want examples of each override: disabled (health and an endpoint that needs nothing) %d, "+
			"both bodies buffered (signed, idempotent) %d, request body only (login) %d", disabled, bothBuffered, requestBuffered)
	}
}

// extProcPerRoute returns the route's ext_proc override (empty when it has none).
func extProcPerRoute(t *testing.T, r *routev3.Route) *extprocv3.ExtProcPerRoute {
	t.Helper()
	per := &extprocv3.ExtProcPerRoute{}
	if cfg := r.GetTypedPerFilterConfig()[extProcFilter]; cfg != nil {
		if err := cfg.UnmarshalTo(per); err != nil {
			t.Fatalf("route %s: %v", r.GetName(), err)
		}
	}
	return per
}

// checkOverrideMode checks a route's processing mode and says which bodies it buffers.
func checkOverrideMode(t *testing.T, route string, m *extprocv3.ProcessingMode) (reqBuffered, respBuffered bool) {
	t.Helper()
	if m.GetRequestHeaderMode() != extprocv3.ProcessingMode_SEND || m.GetResponseHeaderMode() != extprocv3.ProcessingMode_SEND {
		t.Errorf("route %s: an overriding mode must send both header phases (the exchange starts and ends there)", route)
	}
	if m.GetRequestTrailerMode() != extprocv3.ProcessingMode_SKIP || m.GetResponseTrailerMode() != extprocv3.ProcessingMode_SKIP {
		t.Errorf("route %s: trailers are not used by Gatehouse; skip them", route)
	}
	for _, b := range []extprocv3.ProcessingMode_BodySendMode{m.GetRequestBodyMode(), m.GetResponseBodyMode()} {
		if b != extprocv3.ProcessingMode_NONE && b != extprocv3.ProcessingMode_BUFFERED {
			t.Errorf("route %s: body mode %v, want BUFFERED or NONE", route, b)
		}
	}
	return m.GetRequestBodyMode() == extprocv3.ProcessingMode_BUFFERED, m.GetResponseBodyMode() == extprocv3.ProcessingMode_BUFFERED
}
