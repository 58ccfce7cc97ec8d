package envoy

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	celv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/filters/cel/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"github.com/gatehouse/gatehouse/policy"
	"google.golang.org/protobuf/proto"
)

// The names every configuration here relies on.
const (
	extAuthzFilter    = "envoy.filters.http.ext_authz"
	rateLimitFilter   = "envoy.filters.http.ratelimit"
	extProcFilter     = "envoy.filters.http.ext_proc"
	routerFilter      = "envoy.filters.http.router"
	metadataNamespace = "envoy.filters.http.ext_authz" // where Gatehouse's dynamic metadata lands
)

// seedCodes are the proxy-side rows of the ProtectMyAPI error reference (seeds/000_*.txt):
// code → documented HTTP status and message. Envoy's local replies must render exactly these.
var seedCodes = map[string]struct {
	status  uint32
	message string
}{
	"PROXY_ERROR":         {502, "Error forwarding to target API"},
	"TARGET_TIMEOUT":      {504, "Target API didn’t respond in time"}, // the seed's typographic apostrophe
	"TARGET_UNAVAILABLE":  {503, "Target API is unavailable"},
	"INVALID_RESPONSE":    {502, "Target API returned invalid response"},
	"PAYLOAD_TOO_LARGE":   {413, "Request body exceeds size limit"},
	"SERVICE_UNAVAILABLE": {503, "Service temporarily unavailable"},
}

// bootstrapFiles lists every Envoy bootstrap in the package.
func bootstrapFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("sidecar/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no bootstraps found: %v", err)
	}
	return files
}

func loadBootstrap(t *testing.T, path string) *bootstrapv3.Bootstrap {
	t.Helper()
	docs := yamlDocs(t, path)
	if len(docs) != 1 {
		t.Fatalf("%s: want one YAML document, got %d", path, len(docs))
	}
	bs := &bootstrapv3.Bootstrap{}
	if err := strictProto(docs[0], bs); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return bs
}

// TestBootstrapsValidate loads each bootstrap strictly and runs every validator in it.
func TestBootstrapsValidate(t *testing.T) {
	for _, f := range bootstrapFiles(t) {
		t.Run(f, func(t *testing.T) {
			if err := validateDeep(loadBootstrap(t, f)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// pipeline is the part of a bootstrap Gatehouse depends on, unpacked.
type pipeline struct {
	hcm      *hcmv3.HttpConnectionManager
	filters  []string
	authz    *extauthzv3.ExtAuthz
	rl       *ratelimitv3.RateLimit
	proc     *extprocv3.ExternalProcessor
	clusters map[string]*clusterv3.Cluster
}

func unpackPipeline(t *testing.T, bs *bootstrapv3.Bootstrap) pipeline {
	t.Helper()
	ls := bs.GetStaticResources().GetListeners()
	if len(ls) != 1 || len(ls[0].GetFilterChains()) != 1 || len(ls[0].GetFilterChains()[0].GetFilters()) != 1 {
		t.Fatal("want exactly one listener with one filter chain holding the HTTP connection manager")
	}
	p := pipeline{hcm: &hcmv3.HttpConnectionManager{}, clusters: map[string]*clusterv3.Cluster{}}
	if err := ls[0].GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(p.hcm); err != nil {
		t.Fatal(err)
	}
	for _, f := range p.hcm.GetHttpFilters() {
		p.filters = append(p.filters, f.GetName())
		switch f.GetName() {
		case extAuthzFilter:
			p.authz = &extauthzv3.ExtAuthz{}
			if err := f.GetTypedConfig().UnmarshalTo(p.authz); err != nil {
				t.Fatal(err)
			}
		case rateLimitFilter:
			p.rl = &ratelimitv3.RateLimit{}
			if err := f.GetTypedConfig().UnmarshalTo(p.rl); err != nil {
				t.Fatal(err)
			}
		case extProcFilter:
			p.proc = &extprocv3.ExternalProcessor{}
			if err := f.GetTypedConfig().UnmarshalTo(p.proc); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, c := range bs.GetStaticResources().GetClusters() {
		p.clusters[c.GetName()] = c
	}
	return p
}

// TestBootstrapPipeline checks the properties Gatehouse relies on, file by file.
func TestBootstrapPipeline(t *testing.T) {
	for _, f := range bootstrapFiles(t) {
		t.Run(f, func(t *testing.T) {
			p := unpackPipeline(t, loadBootstrap(t, f))
			if want := []string{extAuthzFilter, rateLimitFilter, extProcFilter, routerFilter}; !slices.Equal(p.filters, want) {
				t.Fatalf("filter order %v, want %v", p.filters, want)
			}
			checkExtAuthz(t, p.authz, "gatehouse")
			checkRateLimit(t, p.rl, "gatehouse")
			checkExtProc(t, p.proc, "gatehouse")
			checkGatehouseCluster(t, p.clusters["gatehouse"])
			checkRoutes(t, p.hcm.GetRouteConfig())
			checkExtProcRoutes(t, p.hcm.GetRouteConfig())
			checkTracing(t, p)
		})
	}
}

func checkExtAuthz(t *testing.T, a *extauthzv3.ExtAuthz, cluster string) {
	t.Helper()
	if a == nil {
		t.Fatal("no ext_authz filter")
	}
	if a.GetTransportApiVersion() != corev3.ApiVersion_V3 {
		t.Error("ext_authz: transport_api_version must be V3")
	}
	if got := a.GetGrpcService().GetEnvoyGrpc().GetClusterName(); got != cluster {
		t.Errorf("ext_authz: cluster %q, want %q", got, cluster)
	}
	if to := a.GetGrpcService().GetTimeout(); to == nil || to.AsDuration() <= 0 || to.AsDuration().Seconds() > 1 {
		t.Errorf("ext_authz: timeout %v, want explicit and at most 1s", to)
	}
	if a.GetFailureModeAllow() {
		t.Error("ext_authz: must fail closed (failure_mode_allow: false)")
	}
	if got := a.GetStatusOnError().GetCode(); got != 503 {
		t.Errorf("ext_authz: status_on_error %v, want 503", got)
	}
	if wb := a.GetWithRequestBody(); wb == nil || wb.GetMaxRequestBytes() == 0 || wb.GetAllowPartialMessage() {
		t.Errorf("ext_authz: with_request_body %v, want a size limit without partial messages", wb)
	}
}

func checkRateLimit(t *testing.T, rl *ratelimitv3.RateLimit, cluster string) {
	t.Helper()
	if rl == nil {
		t.Fatal("no ratelimit filter")
	}
	if rl.GetDomain() != "demo" {
		t.Errorf("ratelimit: domain %q, want demo", rl.GetDomain())
	}
	if to := rl.GetTimeout(); to == nil || to.AsDuration() <= 0 {
		t.Error("ratelimit: timeout must be explicit")
	}
	if rl.GetEnableXRatelimitHeaders() != ratelimitv3.RateLimit_DRAFT_VERSION_03 {
		t.Error("ratelimit: enable_x_ratelimit_headers must be DRAFT_VERSION_03")
	}
	rls := rl.GetRateLimitService()
	if rls.GetTransportApiVersion() != corev3.ApiVersion_V3 || rls.GetGrpcService().GetEnvoyGrpc().GetClusterName() != cluster {
		t.Errorf("ratelimit: service %v, want V3 on cluster %q", rls, cluster)
	}
	keys := map[string]string{} // descriptor key → metadata key, over all actions
	for _, r := range rl.GetRateLimits() {
		for _, a := range r.GetActions() {
			md := a.GetMetadata()
			if md == nil {
				t.Errorf("ratelimit: action %v is not a metadata action: throttles must key on what Gatehouse verified", a)
				continue
			}
			mk := md.GetMetadataKey()
			if md.GetSource() != routev3.RateLimit_Action_MetaData_DYNAMIC || mk.GetKey() != metadataNamespace || len(mk.GetPath()) != 1 {
				t.Errorf("ratelimit: action %v must read dynamic metadata %s:<key>", md, metadataNamespace)
				continue
			}
			keys[md.GetDescriptorKey()] = mk.GetPath()[0].GetKey()
		}
	}
	if keys["device"] != "device_id" || keys["app"] != "app" {
		t.Errorf("ratelimit: descriptors %v, want device←device_id and app←app", keys)
	}
}

func checkGatehouseCluster(t *testing.T, c *clusterv3.Cluster) {
	t.Helper()
	if c == nil {
		t.Fatal("no gatehouse cluster")
	}
	opts := &upstreamhttpv3.HttpProtocolOptions{}
	if err := c.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].UnmarshalTo(opts); err != nil {
		t.Fatalf("gatehouse cluster: %v", err)
	}
	if opts.GetExplicitHttpConfig().GetHttp2ProtocolOptions() == nil {
		t.Error("gatehouse cluster must speak HTTP/2 (gRPC)")
	}
}

func checkRoutes(t *testing.T, rc *routev3.RouteConfiguration) {
	t.Helper()
	for _, vh := range rc.GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			cfg := r.GetTypedPerFilterConfig()[extAuthzFilter]
			per := &extauthzv3.ExtAuthzPerRoute{}
			if cfg != nil {
				if err := cfg.UnmarshalTo(per); err != nil {
					t.Fatal(err)
				}
			}
			health := r.GetMatch().GetPath() == "/healthz"
			switch {
			case health && !per.GetDisabled():
				t.Errorf("route %s: ext_authz must be disabled on health checks", r.GetName())
			case !health && per.GetDisabled():
				t.Errorf("route %s: ext_authz disabled outside health checks", r.GetName())
			case !health && r.GetMatch().GetPath() != "" && per.GetCheckSettings().GetContextExtensions()["endpoint"] == "":
				t.Errorf("route %s: endpoint routes must name their endpoint in context_extensions", r.GetName())
			}
		}
	}
}

func checkTracing(t *testing.T, p pipeline) {
	t.Helper()
	prov := p.hcm.GetTracing().GetProvider()
	if prov.GetName() != "envoy.tracers.opentelemetry" {
		t.Fatalf("tracer %q, want envoy.tracers.opentelemetry", prov.GetName())
	}
	otel := &tracev3.OpenTelemetryConfig{}
	if err := prov.GetTypedConfig().UnmarshalTo(otel); err != nil {
		t.Fatal(err)
	}
	if c := otel.GetGrpcService().GetEnvoyGrpc().GetClusterName(); p.clusters[c] == nil {
		t.Errorf("tracer exports to cluster %q, which is not defined", c)
	}
}

// localReply is one reply Envoy generates itself, as the mappers see it.
type localReply struct {
	status  uint32
	flags   []string
	details string // response code details
	dialect string // Check's dynamic metadata `dialect`; "" when Gatehouse never answered
}

// TestLocalReplyScenarios runs Envoy's own failures, and the local replies that must pass
// through untouched, against the mappers of every file that carries them.
func TestLocalReplyScenarios(t *testing.T) {
	for _, f := range bootstrapFiles(t) {
		lrc := unpackPipeline(t, loadBootstrap(t, f)).hcm.GetLocalReplyConfig()
		t.Run(f, func(t *testing.T) { checkLocalReplyConfig(t, lrc) })
	}
}

// dialectsSeen are the values Check may leave in the dynamic metadata, plus the cases where
// there is none ("") or an unexpected one, which must fall back to the default dialect.
var dialectsSeen = []string{"", "protectmyapi", "protekt", "license", "generic", "Protekt", "klingon"}

// renderedDialect is the dialect Envoy must speak for a metadata value: the app's when Check
// named one of the three other dialects, else the server's default (protectmyapi).
func renderedDialect(md string) policy.Dialect {
	switch md {
	case "protekt":
		return policy.Protekt
	case "license":
		return policy.License
	case "generic":
		return policy.Generic
	}
	return policy.ProtectMyAPI
}

// envoyFailures are the replies Envoy makes for its own failures, with the catalogue code each
// must render. noMetadata marks failures that happen before Check answers.
var envoyFailures = []struct {
	name       string
	reply      localReply
	want       policy.Code
	noMetadata bool
}{
	{"connect failure", localReply{503, []string{"UF"}, "upstream_reset_before_response_started{connection_failure}", ""}, policy.TargetUnavailable, false},
	{"no healthy upstream", localReply{503, []string{"UH"}, "no_healthy_upstream", ""}, policy.TargetUnavailable, false},
	{"retries exhausted", localReply{503, []string{"URX", "UF"}, "upstream_reset_before_response_started{connection_failure}", ""}, policy.TargetUnavailable, false},
	{"circuit breaker", localReply{503, []string{"UO"}, "upstream_reset_before_response_started{overflow}", ""}, policy.TargetUnavailable, false},
	{"upstream timeout", localReply{504, []string{"UT"}, "upstream_response_timeout", ""}, policy.TargetTimeout, false},
	{"timeout after retries", localReply{504, []string{"UT", "URX"}, "upstream_response_timeout", ""}, policy.TargetTimeout, false},
	{"connection terminated", localReply{503, []string{"UC"}, "upstream_reset_before_response_started{connection_termination}", ""}, policy.ProxyError, false},
	{"remote reset", localReply{503, []string{"UR"}, "upstream_reset_before_response_started{remote_reset}", ""}, policy.ProxyError, false},
	{"protocol error", localReply{502, []string{"UPE"}, "upstream_reset_before_response_started{protocol_error}", ""}, policy.InvalidResponse, false},
	{"rate-limit service error", localReply{500, []string{"RLSE"}, "rate_limiter_error", ""}, policy.ServiceUnavailable, false},
	{"process stream error", localReply{500, nil, "ext_proc_error_gRPC_error_14{connection_failure}", ""}, policy.ServiceUnavailable, false},
	{"process message timeout", localReply{504, nil, "ext_proc_error_per-message_timeout_exceeded", ""}, policy.ServiceUnavailable, false},
	{"request body over the ext_proc buffer", localReply{413, nil, "request_payload_too_large", ""}, policy.PayloadTooLarge, false},
	// A buffered response over the route's buffer limit: Envoy answers 500 itself; Gatehouse's
	// own bound on a response body answers INVALID_RESPONSE, and so does Envoy's.
	{"response body over the ext_proc buffer", localReply{500, nil, "response_payload_too_large", ""}, policy.InvalidResponse, false},
	{"gatehouse unreachable", localReply{503, []string{"UAEX"}, "ext_authz_error", ""}, policy.ServiceUnavailable, true},
	{"body over ext_authz's buffer", localReply{413, nil, "request_payload_too_large", ""}, policy.PayloadTooLarge, true},
}

// untouchedReplies are local replies whose bodies are already what the client must get.
var untouchedReplies = []struct {
	name  string
	reply localReply
}{
	{"gatehouse denial 403", localReply{403, []string{"UAEX"}, "ext_authz_denied", ""}},
	{"gatehouse denial 503", localReply{503, []string{"UAEX"}, "ext_authz_denied", ""}},
	{"gatehouse denial 413", localReply{413, []string{"UAEX"}, "ext_authz_denied", ""}},
	{"gatehouse over limit", localReply{429, []string{"RL"}, "request_rate_limited", ""}},
	{"no route", localReply{404, []string{"NR"}, "route_not_found", ""}},
	{"gatehouse immediate reply", localReply{409, nil, "gatehouse_conflict", ""}},
	{"gatehouse immediate 413", localReply{413, nil, "gatehouse_payload_too_large", ""}},
	{"gatehouse immediate 503", localReply{503, nil, "gatehouse_service_unavailable", ""}},
	// Gatehouse replacing Envoy's own timeout reply in the response phase: the stream still
	// carries the UT flag, but the signed reply must reach the client as it is.
	{"gatehouse reply over an upstream timeout", localReply{504, []string{"UT"}, "gatehouse_target_timeout", ""}},
}

func checkLocalReplyConfig(t *testing.T, lrc *hcmv3.LocalReplyConfig) {
	t.Helper()
	if lrc.GetBodyFormat() != nil {
		t.Fatal("local_reply_config.body_format would rewrite every local reply, Gatehouse's denials included")
	}
	for _, md := range dialectsSeen {
		for _, c := range envoyFailures {
			if c.noMetadata && md != "" {
				continue
			}
			r := c.reply
			r.dialect = md
			m := mustFirstMapper(t, lrc, r)
			if rewrites(m) == nil {
				t.Errorf("%s (dialect %q): no mapper rewrites it, want %s", c.name, md, c.want)
				continue
			}
			checkMapperBody(t, m, renderedDialect(md), c.want)
		}
		for _, c := range untouchedReplies {
			r := c.reply
			r.dialect = md
			if m := rewrites(mustFirstMapper(t, lrc, r)); m != nil {
				t.Errorf("%s (dialect %q): rewritten by mapper %v, want untouched", c.name, md, m.GetFilter())
			}
		}
	}
}

func mustFirstMapper(t *testing.T, lrc *hcmv3.LocalReplyConfig, r localReply) *hcmv3.ResponseMapper {
	t.Helper()
	m, err := firstMapper(lrc, r)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// rewrites returns m when it changes the reply; a matching mapper without status, body or
// headers leaves the reply as it is (and stops the search: the first match wins).
func rewrites(m *hcmv3.ResponseMapper) *hcmv3.ResponseMapper {
	if m == nil || (m.GetStatusCode() == nil && m.GetBody() == nil && m.GetBodyFormatOverride() == nil && len(m.GetHeadersToAdd()) == 0) {
		return nil
	}
	return m
}

// checkMapperBody checks that m renders code in dialect d byte for byte as Gatehouse does
// (policy.Render, whose bodies are tested against the seeds), with the same status and a
// JSON content type; for the default dialect it also checks the hand-typed seed rows.
func checkMapperBody(t *testing.T, m *hcmv3.ResponseMapper, d policy.Dialect, code policy.Code) {
	t.Helper()
	f := m.GetBodyFormatOverride()
	if f.GetContentType() != "application/json" {
		t.Errorf("mapper %v: content type %q, want application/json", m.GetFilter(), f.GetContentType())
	}
	got, err := renderTextFormat(f.GetTextFormatSource().GetInlineString())
	if err != nil {
		t.Fatalf("mapper for %s in %s: %v", code, d, err)
	}
	want := policy.Render(d, code, policy.RenderOptions{})
	if got != string(want.Body) || m.GetStatusCode().GetValue() != uint32(want.Status) {
		t.Errorf("mapper renders %d %s, want %s in %s: %d %s", m.GetStatusCode().GetValue(), got, code, d, want.Status, want.Body)
	}
	if d != policy.ProtectMyAPI {
		return
	}
	var body struct {
		Success *bool `json:"success"`
		Error   struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(got), &body); err != nil {
		t.Fatalf("mapper body %q is not JSON: %v", got, err)
	}
	seed, ok := seedCodes[body.Error.Code]
	switch {
	case !ok || body.Error.Code != string(code):
		t.Errorf("mapper body %s: want code %s from the seed's proxy/server codes", got, code)
	case body.Success == nil || *body.Success:
		t.Errorf("mapper body %s: want \"success\":false", got)
	case m.GetStatusCode().GetValue() != seed.status || body.Error.Message != seed.message:
		t.Errorf("mapper for %s: %d %q, want %d %q", code, m.GetStatusCode().GetValue(), body.Error.Message, seed.status, seed.message)
	}
}

// renderTextFormat renders an Envoy text format string as Envoy would for a local reply. The
// bodies are literal: a command operator (%...%) would substitute request data into a body,
// so any is refused rather than modelled.
func renderTextFormat(s string) (string, error) {
	if strings.Contains(s, "%") {
		return "", fmt.Errorf("body %q uses a command operator; bodies must be literal", s)
	}
	return s, nil
}

// firstMapper returns the mapper Envoy would apply to r (the first whose filter matches).
func firstMapper(lrc *hcmv3.LocalReplyConfig, r localReply) (*hcmv3.ResponseMapper, error) {
	for _, m := range lrc.GetMappers() {
		ok, err := filterMatches(m.GetFilter(), r)
		if err != nil {
			return nil, err
		}
		if ok {
			return m, nil
		}
	}
	return nil, nil
}

// celExpressions are the CEL filters the mappers may use, evaluated by hand: a new expression
// must be added here with its meaning, so the scenarios above keep covering it.
var celExpressions = map[string]func(localReply) bool{
	"response.code_details == 'ext_authz_error'": func(r localReply) bool { return r.details == "ext_authz_error" },
	"response.code == 413 && response.code_details != 'ext_authz_denied'": func(r localReply) bool {
		return r.status == 413 && r.details != "ext_authz_denied"
	},
	"response.code_details.startsWith('ext_proc_error')": func(r localReply) bool {
		return strings.HasPrefix(r.details, "ext_proc_error")
	},
	"response.code_details == 'response_payload_too_large'": func(r localReply) bool {
		return r.details == "response_payload_too_large"
	},
	"response.code_details.startsWith('gatehouse')": func(r localReply) bool {
		return strings.HasPrefix(r.details, "gatehouse")
	},
}

// filterMatches evaluates the access-log filter kinds the mappers use.
func filterMatches(f *accesslogv3.AccessLogFilter, r localReply) (bool, error) {
	switch {
	case f.GetResponseFlagFilter() != nil:
		for _, fl := range f.GetResponseFlagFilter().GetFlags() {
			if slices.Contains(r.flags, fl) {
				return true, nil
			}
		}
		return false, nil
	case f.GetAndFilter() != nil:
		for _, sub := range f.GetAndFilter().GetFilters() {
			ok, err := filterMatches(sub, r)
			if err != nil || !ok {
				return false, err
			}
		}
		return true, nil
	case f.GetMetadataFilter() != nil:
		return dialectMatches(f.GetMetadataFilter(), r)
	case f.GetExtensionFilter() != nil:
		cel := &celv3.ExpressionFilter{}
		if err := f.GetExtensionFilter().GetTypedConfig().UnmarshalTo(cel); err != nil {
			return false, err
		}
		eval, ok := celExpressions[cel.GetExpression()]
		if !ok {
			return false, fmt.Errorf("CEL expression %q has no hand evaluation in celExpressions", cel.GetExpression())
		}
		return eval(r), nil
	default:
		return false, fmt.Errorf("mapper filter %v: kind not modelled by this test", f)
	}
}

// dialectMatches evaluates the one metadata filter the mappers use: an exact match on Check's
// `dialect` key. Envoy's match_if_key_not_found defaults to true, which would send requests
// Gatehouse never answered to a dialect's mapper: the files must set it to false.
func dialectMatches(mf *accesslogv3.MetadataFilter, r localReply) (bool, error) {
	m := mf.GetMatcher()
	path := m.GetPath()
	exact := m.GetValue().GetStringMatch().GetExact()
	if m.GetFilter() != metadataNamespace || len(path) != 1 || path[0].GetKey() != "dialect" || exact == "" ||
		m.GetInvert() || m.GetValue().GetStringMatch().GetIgnoreCase() {
		return false, fmt.Errorf("metadata filter %v: only an exact match on %s:dialect is modelled", mf, metadataNamespace)
	}
	if r.dialect == "" {
		if mf.GetMatchIfKeyNotFound() == nil || mf.GetMatchIfKeyNotFound().GetValue() {
			return false, fmt.Errorf("metadata filter %v: match_if_key_not_found must be false", mf)
		}
		return false, nil
	}
	return r.dialect == exact, nil
}

// TestUnixSocketVariant checks that envoy-uds.yaml is envoy.yaml with only the gatehouse
// cluster changed, and that this cluster is a Unix socket.
func TestUnixSocketVariant(t *testing.T) {
	tcp := loadBootstrap(t, "sidecar/envoy.yaml")
	uds := loadBootstrap(t, "sidecar/envoy-uds.yaml")
	var udsCluster *clusterv3.Cluster
	for i, c := range uds.GetStaticResources().GetClusters() {
		if c.GetName() == "gatehouse" {
			udsCluster = c
			uds.GetStaticResources().GetClusters()[i] = unpackPipeline(t, tcp).clusters["gatehouse"]
		}
	}
	if udsCluster == nil {
		t.Fatal("envoy-uds.yaml has no gatehouse cluster")
	}
	if !proto.Equal(tcp, uds) {
		t.Error("envoy-uds.yaml differs from envoy.yaml outside the gatehouse cluster")
	}
	addr := udsCluster.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress()
	if got := addr.GetPipe().GetPath(); got != "/var/run/gatehouse/gatehouse.sock" {
		t.Errorf("gatehouse cluster address %v, want the pipe /var/run/gatehouse/gatehouse.sock", addr)
	}
}

// sidecarReference returns the local reply config and rate-limit filter of sidecar/envoy.yaml,
// which the Istio and Envoy Gateway copies must equal.
func sidecarReference(t *testing.T) (*hcmv3.LocalReplyConfig, *ratelimitv3.RateLimit) {
	t.Helper()
	p := unpackPipeline(t, loadBootstrap(t, "sidecar/envoy.yaml"))
	return p.hcm.GetLocalReplyConfig(), p.rl
}

// sameRateLimit compares a copy of the rate-limit filter with the reference, the cluster aside.
func sameRateLimit(ref, got *ratelimitv3.RateLimit) bool {
	a, b := proto.Clone(ref).(*ratelimitv3.RateLimit), proto.Clone(got).(*ratelimitv3.RateLimit)
	for _, rl := range []*ratelimitv3.RateLimit{a, b} {
		if g := rl.GetRateLimitService().GetGrpcService().GetEnvoyGrpc(); g != nil {
			g.ClusterName = ""
		}
	}
	return proto.Equal(a, b)
}
