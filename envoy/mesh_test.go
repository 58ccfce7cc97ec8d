package envoy

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
)

// The Istio and Envoy Gateway resources are decoded strictly into the mirrors below rather
// than into istio.io/client-go and github.com/envoyproxy/gateway, whose modules would pull in
// Kubernetes and controller-runtime for a handful of fields. Each mirror declares the fields
// of its CRD that the files here use, under the CRD's own JSON names (checked against
// istio/api and envoyproxy/gateway api/v1alpha1): a misspelt or misplaced field fails
// decoding. The Envoy configuration inside them is decoded into go-control-plane's protos.

// istioMeshValues mirrors istio.mesh.v1alpha1.MeshConfig.extensionProviders (the
// envoyExtAuthzGrpc provider) under the istiod chart's `meshConfig` value.
type istioMeshValues struct {
	MeshConfig struct {
		ExtensionProviders []struct {
			Name              string `yaml:"name"`
			EnvoyExtAuthzGrpc *struct {
				Service                   string `yaml:"service"`
				Port                      uint32 `yaml:"port"`
				Timeout                   string `yaml:"timeout"`
				FailOpen                  bool   `yaml:"failOpen"`
				StatusOnError             string `yaml:"statusOnError"`
				IncludeRequestBodyInCheck *struct {
					MaxRequestBytes     uint32 `yaml:"maxRequestBytes"`
					AllowPartialMessage bool   `yaml:"allowPartialMessage"`
					PackAsBytes         bool   `yaml:"packAsBytes"`
				} `yaml:"includeRequestBodyInCheck"`
			} `yaml:"envoyExtAuthzGrpc"`
		} `yaml:"extensionProviders"`
		// PathNormalization mirrors MeshConfig.ProxyPathNormalization.
		PathNormalization *struct {
			Normalization string `yaml:"normalization"`
		} `yaml:"pathNormalization"`
	} `yaml:"meshConfig"`
}

// istioAuthorizationPolicy mirrors security.istio.io/v1 AuthorizationPolicy.
type istioAuthorizationPolicy struct {
	typeMeta `yaml:",inline"`
	Metadata objectMeta `yaml:"metadata"`
	Spec     struct {
		Selector *struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Action   string `yaml:"action"`
		Provider *struct {
			Name string `yaml:"name"`
		} `yaml:"provider"`
		Rules []struct {
			To []struct {
				Operation struct {
					Hosts      []string `yaml:"hosts"`
					NotHosts   []string `yaml:"notHosts"`
					Ports      []string `yaml:"ports"`
					NotPorts   []string `yaml:"notPorts"`
					Methods    []string `yaml:"methods"`
					NotMethods []string `yaml:"notMethods"`
					Paths      []string `yaml:"paths"`
					NotPaths   []string `yaml:"notPaths"`
				} `yaml:"operation"`
			} `yaml:"to"`
		} `yaml:"rules"`
	} `yaml:"spec"`
}

// istioServiceEntry mirrors networking.istio.io/v1 ServiceEntry.
type istioServiceEntry struct {
	typeMeta `yaml:",inline"`
	Metadata objectMeta `yaml:"metadata"`
	Spec     struct {
		Hosts     []string `yaml:"hosts"`
		Endpoints []struct {
			Address string `yaml:"address"`
		} `yaml:"endpoints"`
		Ports []struct {
			Name     string `yaml:"name"`
			Number   uint32 `yaml:"number"`
			Protocol string `yaml:"protocol"`
		} `yaml:"ports"`
		Resolution string `yaml:"resolution"`
	} `yaml:"spec"`
}

// istioEnvoyFilter mirrors networking.istio.io/v1alpha3 EnvoyFilter.
type istioEnvoyFilter struct {
	typeMeta `yaml:",inline"`
	Metadata objectMeta `yaml:"metadata"`
	Spec     struct {
		WorkloadSelector struct {
			Labels map[string]string `yaml:"labels"`
		} `yaml:"workloadSelector"`
		Priority      int32 `yaml:"priority"`
		ConfigPatches []struct {
			ApplyTo string `yaml:"applyTo"`
			Match   struct {
				Context  string `yaml:"context"`
				Listener *struct {
					PortNumber  uint32 `yaml:"portNumber"`
					FilterChain struct {
						Filter struct {
							Name      string `yaml:"name"`
							SubFilter *struct {
								Name string `yaml:"name"`
							} `yaml:"subFilter"`
						} `yaml:"filter"`
					} `yaml:"filterChain"`
				} `yaml:"listener"`
				RouteConfiguration *struct {
					Vhost struct {
						Name  string `yaml:"name"`
						Route struct {
							Name string `yaml:"name"`
						} `yaml:"route"`
					} `yaml:"vhost"`
				} `yaml:"routeConfiguration"`
			} `yaml:"match"`
			Patch struct {
				Operation string `yaml:"operation"`
				Value     any    `yaml:"value"`
			} `yaml:"patch"`
		} `yaml:"configPatches"`
	} `yaml:"spec"`
}

// istioPatchTypes maps an EnvoyFilter applyTo to the Envoy message its patch value is.
var istioPatchTypes = map[string]func() proto.Message{
	"LISTENER":            func() proto.Message { return &listenerv3.Listener{} },
	"NETWORK_FILTER":      func() proto.Message { return &listenerv3.Filter{} },
	"HTTP_FILTER":         func() proto.Message { return &hcmv3.HttpFilter{} },
	"ROUTE_CONFIGURATION": func() proto.Message { return &routev3.RouteConfiguration{} },
	"VIRTUAL_HOST":        func() proto.Message { return &routev3.VirtualHost{} },
	"HTTP_ROUTE":          func() proto.Message { return &routev3.Route{} },
	"CLUSTER":             func() proto.Message { return &clusterv3.Cluster{} },
}

// istioConfig is everything under istio/, decoded.
type istioConfig struct {
	mesh          []istioMeshValues
	policies      []istioAuthorizationPolicy
	entries       []istioServiceEntry
	envoyFilters  []istioEnvoyFilter
	patchMessages map[string][]proto.Message // EnvoyFilter name → decoded patch values
}

func loadIstio(t *testing.T) istioConfig {
	t.Helper()
	files, _ := filepath.Glob("istio/*.yaml")
	if len(files) == 0 {
		t.Fatal("no istio files")
	}
	cfg := istioConfig{patchMessages: map[string][]proto.Message{}}
	for _, f := range files {
		for i, doc := range yamlDocs(t, f) {
			at := fmt.Sprintf("%s#%d", f, i)
			apiVersion, kind := kindOf(t, doc)
			var err error
			switch apiVersion + " " + kind {
			case " ":
				var v istioMeshValues
				err = strictYAML(doc, &v)
				cfg.mesh = append(cfg.mesh, v)
			case "security.istio.io/v1 AuthorizationPolicy":
				var v istioAuthorizationPolicy
				if err = strictYAML(doc, &v); err == nil {
					err = v.Metadata.check()
				}
				cfg.policies = append(cfg.policies, v)
			case "networking.istio.io/v1 ServiceEntry":
				var v istioServiceEntry
				if err = strictYAML(doc, &v); err == nil {
					err = v.Metadata.check()
				}
				cfg.entries = append(cfg.entries, v)
			case "networking.istio.io/v1alpha3 EnvoyFilter":
				var v istioEnvoyFilter
				if err = strictYAML(doc, &v); err == nil {
					err = v.Metadata.check()
				}
				if err == nil {
					cfg.patchMessages[v.Metadata.Name], err = decodeIstioPatches(v)
				}
				cfg.envoyFilters = append(cfg.envoyFilters, v)
			default:
				err = fmt.Errorf("unexpected resource %s %s", apiVersion, kind)
			}
			if err != nil {
				t.Fatalf("%s: %v", at, err)
			}
		}
	}
	return cfg
}

// decodeIstioPatches decodes and validates each patch value of ef; MERGE values are fragments.
func decodeIstioPatches(ef istioEnvoyFilter) ([]proto.Message, error) {
	var out []proto.Message
	for i, p := range ef.Spec.ConfigPatches {
		newMsg, ok := istioPatchTypes[p.ApplyTo]
		if !ok {
			return nil, fmt.Errorf("configPatches[%d]: applyTo %q not modelled", i, p.ApplyTo)
		}
		m := newMsg()
		if err := valueProto(p.Patch.Value, m); err != nil {
			return nil, fmt.Errorf("configPatches[%d].patch.value: %w", i, err)
		}
		validate := validateDeep
		if p.Patch.Operation == "MERGE" {
			validate = validatePartial
		}
		if err := validate(m); err != nil {
			return nil, fmt.Errorf("configPatches[%d].patch.value: %w", i, err)
		}
		out = append(out, m)
	}
	return out, nil
}

// TestIstio decodes every Istio resource strictly, validates the Envoy parts of the
// EnvoyFilters, and checks the wiring between them.
func TestIstio(t *testing.T) {
	cfg := loadIstio(t)
	refLRC, refRL := sidecarReference(t)
	refProc := unpackPipeline(t, loadBootstrap(t, "sidecar/envoy.yaml")).proc

	providers := map[string]string{} // name → service
	for _, m := range cfg.mesh {
		for _, p := range m.MeshConfig.ExtensionProviders {
			g := p.EnvoyExtAuthzGrpc
			if g == nil {
				t.Errorf("provider %s: want envoyExtAuthzGrpc", p.Name)
				continue
			}
			providers[p.Name] = g.Service
			if d, err := time.ParseDuration(g.Timeout); err != nil || d <= 0 || d > time.Second {
				t.Errorf("provider %s: timeout %q must be set and at most 1s (Istio's default is 600s)", p.Name, g.Timeout)
			}
			if g.FailOpen || g.StatusOnError != "503" || g.Port != 9191 {
				t.Errorf("provider %s: want failOpen false, statusOnError 503, port 9191", p.Name)
			}
			if b := g.IncludeRequestBodyInCheck; b == nil || b.MaxRequestBytes == 0 || b.AllowPartialMessage {
				t.Errorf("provider %s: want the body with a size limit and no partial messages", p.Name)
			}
		}
	}
	for _, ap := range cfg.policies {
		if ap.Spec.Action != "CUSTOM" || ap.Spec.Provider == nil || providers[ap.Spec.Provider.Name] == "" {
			t.Errorf("AuthorizationPolicy %s: want action CUSTOM with a provider from meshconfig.yaml", ap.Metadata.Name)
		}
	}
	hosts := map[string]bool{}
	for _, se := range cfg.entries {
		if len(se.Spec.Endpoints) != 1 || se.Spec.Endpoints[0].Address != "127.0.0.1" {
			t.Errorf("ServiceEntry %s: want one endpoint on 127.0.0.1", se.Metadata.Name)
		}
		for _, h := range se.Spec.Hosts {
			hosts[h] = true
		}
	}
	if svc := providers["gatehouse-local"]; !hosts[svc] {
		t.Errorf("provider gatehouse-local: service %q has no ServiceEntry", svc)
	}

	var rateLimits, extProcs, extProcRoutes, localReplies, endpoints int
	for _, ef := range cfg.envoyFilters {
		for i, m := range cfg.patchMessages[ef.Metadata.Name] {
			p := ef.Spec.ConfigPatches[i]
			at := fmt.Sprintf("EnvoyFilter %s configPatches[%d]", ef.Metadata.Name, i)
			switch v := m.(type) {
			case *hcmv3.HttpFilter:
				sub := p.Match.Listener.FilterChain.Filter.SubFilter
				if v.GetName() == extProcFilter {
					extProcs++
					checkIstioExtProc(t, at, sub, p.Patch.Operation, v, refProc, providers)
					continue
				}
				rateLimits++
				checkIstioRateLimit(t, at, sub, p.Patch.Operation, v, refRL, providers)
			case *listenerv3.Filter:
				hcm, _ := patchHCM(t, at, v)
				if hcm.GetLocalReplyConfig() == nil {
					continue // another HCM setting (TestIstioNormalizes)
				}
				localReplies++
				if !proto.Equal(hcm.GetLocalReplyConfig(), refLRC) {
					t.Errorf("%s: local_reply_config differs from sidecar/envoy.yaml", at)
				}
			case *routev3.Route:
				if v.GetTypedPerFilterConfig()[extProcFilter] != nil {
					extProcRoutes++
					if per := extProcPerRoute(t, v); !per.GetDisabled() {
						checkOverrideMode(t, at, per.GetOverrides().GetProcessingMode())
					}
				}
				if v.GetTypedPerFilterConfig()[extAuthzFilter] == nil {
					continue
				}
				endpoints++
				per := &extauthzv3.ExtAuthzPerRoute{}
				if err := v.GetTypedPerFilterConfig()[extAuthzFilter].UnmarshalTo(per); err != nil {
					t.Fatalf("%s: %v", at, err)
				}
				if per.GetCheckSettings().GetContextExtensions()["endpoint"] == "" {
					t.Errorf("%s: want context_extensions.endpoint", at)
				}
			}
		}
	}
	checkIstioFilterOrder(t, cfg)
	if rateLimits < 2 || localReplies == 0 || endpoints == 0 || extProcs < 2 || extProcRoutes == 0 {
		t.Errorf("want rate-limit and ext_proc patches for gateway and sidecar, a local reply patch, endpoint patches "+
			"and ext_proc route overrides; got %d, %d, %d, %d, %d", rateLimits, extProcs, localReplies, endpoints, extProcRoutes)
	}
}

// checkIstioFilterOrder: both filters are inserted before the router, so the one patched last
// ends up next to it; ext_proc's EnvoyFilters must come after the rate-limit ones (a higher
// priority is applied later) so that the order is ext_authz, ratelimit, ext_proc, router.
func checkIstioFilterOrder(t *testing.T, cfg istioConfig) {
	t.Helper()
	highestRL, lowestProc := int32(-1<<31), int32(1<<31-1)
	for _, ef := range cfg.envoyFilters {
		for _, m := range cfg.patchMessages[ef.Metadata.Name] {
			switch f, _ := m.(*hcmv3.HttpFilter); f.GetName() {
			case rateLimitFilter:
				highestRL = max(highestRL, ef.Spec.Priority)
			case extProcFilter:
				lowestProc = min(lowestProc, ef.Spec.Priority)
			}
		}
	}
	if lowestProc <= highestRL {
		t.Errorf("ext_proc EnvoyFilter priority %d must be above the rate-limit ones' (%d)", lowestProc, highestRL)
	}
}

// checkIstioExtProc checks an inserted ext_proc filter: before the router (so after the
// ext_authz filter of the CUSTOM policy), the settings of sidecar/envoy.yaml, on the outbound
// cluster of a Gatehouse provider.
func checkIstioExtProc(t *testing.T, at string, sub *struct {
	Name string `yaml:"name"`
}, op string, f *hcmv3.HttpFilter, ref *extprocv3.ExternalProcessor, providers map[string]string) {
	t.Helper()
	if sub == nil || sub.Name != routerFilter || op != "INSERT_BEFORE" {
		t.Errorf("%s: the ext_proc filter must be inserted before the router (after ext_authz)", at)
	}
	p := &extprocv3.ExternalProcessor{}
	if err := f.GetTypedConfig().UnmarshalTo(p); err != nil {
		t.Fatalf("%s: %v", at, err)
	}
	cluster := p.GetGrpcService().GetEnvoyGrpc().GetClusterName()
	checkExtProc(t, p, cluster)
	if !sameExtProc(ref, p) {
		t.Errorf("%s: ext_proc settings differ from sidecar/envoy.yaml", at)
	}
	ok := false
	for _, svc := range providers {
		ok = ok || cluster == "outbound|9191||"+svc
	}
	if !ok {
		t.Errorf("%s: cluster %q is not Istio's outbound cluster of a Gatehouse provider", at, cluster)
	}
}

// sameExtProc compares a copy of the ext_proc filter with the reference, the cluster aside.
func sameExtProc(ref, got *extprocv3.ExternalProcessor) bool {
	a, b := proto.Clone(ref).(*extprocv3.ExternalProcessor), proto.Clone(got).(*extprocv3.ExternalProcessor)
	for _, p := range []*extprocv3.ExternalProcessor{a, b} {
		if g := p.GetGrpcService().GetEnvoyGrpc(); g != nil {
			g.ClusterName = ""
		}
	}
	return proto.Equal(a, b)
}

// patchHCM returns the HTTP connection manager a NETWORK_FILTER patch value merges, if it is one.
func patchHCM(t *testing.T, at string, m proto.Message) (*hcmv3.HttpConnectionManager, bool) {
	t.Helper()
	f, ok := m.(*listenerv3.Filter)
	if !ok {
		return nil, false
	}
	hcm := &hcmv3.HttpConnectionManager{}
	if err := f.GetTypedConfig().UnmarshalTo(hcm); err != nil {
		t.Fatalf("%s: %v", at, err)
	}
	return hcm, true
}

func checkIstioRateLimit(t *testing.T, at string, sub *struct {
	Name string `yaml:"name"`
}, op string, f *hcmv3.HttpFilter, ref *ratelimitv3.RateLimit, providers map[string]string) {
	t.Helper()
	if sub == nil || sub.Name != routerFilter || op != "INSERT_BEFORE" {
		t.Errorf("%s: the rate-limit filter must be inserted before the router (after ext_authz)", at)
	}
	rl := &ratelimitv3.RateLimit{}
	if f.GetName() != rateLimitFilter || f.GetTypedConfig().UnmarshalTo(rl) != nil {
		t.Fatalf("%s: want the %s filter", at, rateLimitFilter)
	}
	if !sameRateLimit(ref, rl) {
		t.Errorf("%s: rate-limit settings differ from sidecar/envoy.yaml", at)
	}
	cluster := rl.GetRateLimitService().GetGrpcService().GetEnvoyGrpc().GetClusterName()
	ok := false
	for _, svc := range providers {
		ok = ok || cluster == "outbound|9191||"+svc
	}
	if !ok {
		t.Errorf("%s: cluster %q is not Istio's outbound cluster of a Gatehouse provider", at, cluster)
	}
}

// egSecurityPolicy mirrors gateway.envoyproxy.io/v1alpha1 SecurityPolicy (extAuth.grpc).
type egSecurityPolicy struct {
	typeMeta `yaml:",inline"`
	Metadata objectMeta `yaml:"metadata"`
	Spec     struct {
		TargetRefs []egTargetRef `yaml:"targetRefs"`
		ExtAuth    *struct {
			GRPC *struct {
				BackendRefs []struct {
					Group     string `yaml:"group"`
					Kind      string `yaml:"kind"`
					Name      string `yaml:"name"`
					Namespace string `yaml:"namespace"`
					Port      uint32 `yaml:"port"`
				} `yaml:"backendRefs"`
			} `yaml:"grpc"`
			HeadersToExtAuth []string `yaml:"headersToExtAuth"`
			BodyToExtAuth    *struct {
				MaxRequestBytes uint32 `yaml:"maxRequestBytes"`
			} `yaml:"bodyToExtAuth"`
			Timeout        string `yaml:"timeout"`
			FailOpen       *bool  `yaml:"failOpen"`
			RecomputeRoute *bool  `yaml:"recomputeRoute"`
		} `yaml:"extAuth"`
	} `yaml:"spec"`
}

type egTargetRef struct {
	Group string `yaml:"group"`
	Kind  string `yaml:"kind"`
	Name  string `yaml:"name"`
}

// gwReferenceGrant mirrors gateway.networking.k8s.io/v1beta1 ReferenceGrant.
type gwReferenceGrant struct {
	typeMeta `yaml:",inline"`
	Metadata objectMeta `yaml:"metadata"`
	Spec     struct {
		From []struct {
			Group     string `yaml:"group"`
			Kind      string `yaml:"kind"`
			Namespace string `yaml:"namespace"`
		} `yaml:"from"`
		To []struct {
			Group string `yaml:"group"`
			Kind  string `yaml:"kind"`
			Name  string `yaml:"name"`
		} `yaml:"to"`
	} `yaml:"spec"`
}

// egEnvoyPatchPolicy mirrors gateway.envoyproxy.io/v1alpha1 EnvoyPatchPolicy.
type egEnvoyPatchPolicy struct {
	typeMeta `yaml:",inline"`
	Metadata objectMeta `yaml:"metadata"`
	Spec     struct {
		TargetRef   egTargetRef `yaml:"targetRef"`
		Type        string      `yaml:"type"`
		Priority    int32       `yaml:"priority"`
		JSONPatches []struct {
			Type      string `yaml:"type"`
			Name      string `yaml:"name"`
			Operation struct {
				Op       string `yaml:"op"`
				Path     string `yaml:"path"`
				JSONPath string `yaml:"jsonPath"`
				From     string `yaml:"from"`
				Value    any    `yaml:"value"`
			} `yaml:"operation"`
		} `yaml:"jsonPatches"`
	} `yaml:"spec"`
}

const (
	egListener = "type.googleapis.com/envoy.config.listener.v3.Listener"
	egCluster  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
)

// egPatchMessage says which Envoy message a JSON patch value is, from where it goes.
func egPatchMessage(typ, path, jsonPath string) (proto.Message, error) {
	switch {
	case typ == egCluster && path == "":
		return &clusterv3.Cluster{}, nil
	case typ == egListener && path == "" && strings.Contains(jsonPath, "http_filters["):
		return &hcmv3.HttpFilter{}, nil
	case typ == egListener && path == "local_reply_config":
		return &hcmv3.LocalReplyConfig{}, nil
	}
	return nil, fmt.Errorf("patch of %s at %q/%q not modelled by this test", typ, jsonPath, path)
}

// TestEnvoyGateway decodes the Envoy Gateway resources strictly, validates every patch value
// as the Envoy message it becomes, and checks the wiring.
func TestEnvoyGateway(t *testing.T) {
	files, _ := filepath.Glob("envoy-gateway/*.yaml")
	if len(files) == 0 {
		t.Fatal("no envoy-gateway files")
	}
	refLRC, refRL := sidecarReference(t)
	var (
		policies   []egSecurityPolicy
		extensions []egEnvoyExtensionPolicy
		grants     []gwReferenceGrant
		patches    []proto.Message
	)
	for _, f := range files {
		for i, doc := range yamlDocs(t, f) {
			at := fmt.Sprintf("%s#%d", f, i)
			apiVersion, kind := kindOf(t, doc)
			var err error
			switch apiVersion + " " + kind {
			case "gateway.envoyproxy.io/v1alpha1 SecurityPolicy":
				var v egSecurityPolicy
				if err = strictYAML(doc, &v); err == nil {
					err = v.Metadata.check()
				}
				policies = append(policies, v)
			case "gateway.envoyproxy.io/v1alpha1 EnvoyExtensionPolicy":
				var v egEnvoyExtensionPolicy
				if err = strictYAML(doc, &v); err == nil {
					err = v.Metadata.check()
				}
				extensions = append(extensions, v)
			case "gateway.envoyproxy.io/v1alpha1 ClientTrafficPolicy":
				var v egClientTrafficPolicy // its settings: TestEnvoyGatewayNormalizes
				if err = strictYAML(doc, &v); err == nil {
					err = v.Metadata.check()
				}
			case "gateway.networking.k8s.io/v1beta1 ReferenceGrant":
				var v gwReferenceGrant
				if err = strictYAML(doc, &v); err == nil {
					err = v.Metadata.check()
				}
				grants = append(grants, v)
			case "gateway.envoyproxy.io/v1alpha1 EnvoyPatchPolicy":
				var v egEnvoyPatchPolicy
				if err = strictYAML(doc, &v); err == nil {
					err = v.Metadata.check()
				}
				for j, p := range v.Spec.JSONPatches {
					if err != nil {
						break
					}
					var m proto.Message
					if m, err = egPatchMessage(p.Type, p.Operation.Path, p.Operation.JSONPath); err == nil {
						if err = valueProto(p.Operation.Value, m); err == nil {
							err = validateDeep(m)
						}
					}
					if err != nil {
						err = fmt.Errorf("jsonPatches[%d]: %w", j, err)
					}
					patches = append(patches, m)
				}
			default:
				err = fmt.Errorf("unexpected resource %s %s", apiVersion, kind)
			}
			if err != nil {
				t.Fatalf("%s: %v", at, err)
			}
		}
	}

	for _, sp := range policies {
		checkSecurityPolicy(t, sp, grants)
	}
	checkExtensionPolicies(t, extensions, policies, grants)
	checkPatches(t, patches, refLRC, refRL)
}

func checkSecurityPolicy(t *testing.T, sp egSecurityPolicy, grants []gwReferenceGrant) {
	t.Helper()
	ea := sp.Spec.ExtAuth
	if ea == nil || ea.GRPC == nil || len(ea.GRPC.BackendRefs) == 0 {
		t.Fatalf("SecurityPolicy %s: want extAuth.grpc.backendRefs", sp.Metadata.Name)
	}
	if d, err := time.ParseDuration(ea.Timeout); err != nil || d <= 0 || d > time.Second {
		t.Errorf("SecurityPolicy %s: timeout %q must be set and at most 1s", sp.Metadata.Name, ea.Timeout)
	}
	if ea.FailOpen == nil || *ea.FailOpen {
		t.Errorf("SecurityPolicy %s: want failOpen: false, explicitly", sp.Metadata.Name)
	}
	if ea.BodyToExtAuth == nil || ea.BodyToExtAuth.MaxRequestBytes == 0 {
		t.Errorf("SecurityPolicy %s: want bodyToExtAuth with a size limit", sp.Metadata.Name)
	}
	for _, br := range ea.GRPC.BackendRefs {
		if br.Port != 9191 {
			t.Errorf("SecurityPolicy %s: backend port %d, want 9191", sp.Metadata.Name, br.Port)
		}
		if br.Namespace == "" || br.Namespace == sp.Metadata.Namespace {
			continue
		}
		if !granted(grants, "SecurityPolicy", sp.Metadata.Namespace, br.Namespace, br.Name) {
			t.Errorf("SecurityPolicy %s: backend %s/%s crosses namespaces without a ReferenceGrant", sp.Metadata.Name, br.Namespace, br.Name)
		}
	}
}

func checkPatches(t *testing.T, patches []proto.Message, refLRC *hcmv3.LocalReplyConfig, refRL *ratelimitv3.RateLimit) {
	t.Helper()
	clusters := map[string]*clusterv3.Cluster{}
	var rl *ratelimitv3.RateLimit
	var lrc *hcmv3.LocalReplyConfig
	for _, m := range patches {
		switch v := m.(type) {
		case *clusterv3.Cluster:
			clusters[v.GetName()] = v
		case *hcmv3.HttpFilter:
			rl = &ratelimitv3.RateLimit{}
			if v.GetName() != rateLimitFilter || v.GetTypedConfig().UnmarshalTo(rl) != nil {
				t.Fatalf("EnvoyPatchPolicy: http filter patch %s is not the rate-limit filter", v.GetName())
			}
		case *hcmv3.LocalReplyConfig:
			lrc = v
		}
	}
	if rl == nil || lrc == nil {
		t.Fatal("EnvoyPatchPolicy: want the rate-limit filter and local_reply_config patches")
	}
	if !sameRateLimit(refRL, rl) {
		t.Error("EnvoyPatchPolicy: rate-limit settings differ from sidecar/envoy.yaml")
	}
	if !proto.Equal(lrc, refLRC) {
		t.Error("EnvoyPatchPolicy: local_reply_config differs from sidecar/envoy.yaml")
	}
	name := rl.GetRateLimitService().GetGrpcService().GetEnvoyGrpc().GetClusterName()
	c := clusters[name]
	if c == nil {
		t.Fatalf("EnvoyPatchPolicy: rate-limit cluster %q is not added by the policy", name)
	}
	checkGatehouseCluster(t, c)
}

// granted reports whether a ReferenceGrant lets a policy of kind in namespace from reach the
// Service ns/name.
func granted(grants []gwReferenceGrant, kind, from, ns, name string) bool {
	for _, g := range grants {
		for _, f := range g.Spec.From {
			for _, to := range g.Spec.To {
				if g.Metadata.Namespace == ns && f.Kind == kind && f.Namespace == from &&
					to.Kind == "Service" && (to.Name == "" || to.Name == name) {
					return true
				}
			}
		}
	}
	return false
}

// egEnvoyExtensionPolicy mirrors gateway.envoyproxy.io/v1alpha1 EnvoyExtensionPolicy (extProc).
type egEnvoyExtensionPolicy struct {
	typeMeta `yaml:",inline"`
	Metadata objectMeta `yaml:"metadata"`
	Spec     struct {
		TargetRefs []egTargetRef `yaml:"targetRefs"`
		ExtProc    []struct {
			BackendRefs []struct {
				Group     string `yaml:"group"`
				Kind      string `yaml:"kind"`
				Name      string `yaml:"name"`
				Namespace string `yaml:"namespace"`
				Port      uint32 `yaml:"port"`
			} `yaml:"backendRefs"`
			MessageTimeout string `yaml:"messageTimeout"`
			FailOpen       *bool  `yaml:"failOpen"`
			ProcessingMode *struct {
				Request           *egProcessingModeOptions `yaml:"request"`
				Response          *egProcessingModeOptions `yaml:"response"`
				AllowModeOverride bool                     `yaml:"allowModeOverride"`
			} `yaml:"processingMode"`
			Metadata *struct {
				AccessibleNamespaces []string `yaml:"accessibleNamespaces"`
				WritableNamespaces   []string `yaml:"writableNamespaces"`
			} `yaml:"metadata"`
		} `yaml:"extProc"`
	} `yaml:"spec"`
}

// egProcessingModeOptions mirrors ProcessingModeOptions: present means the headers are sent.
type egProcessingModeOptions struct {
	Body       string   `yaml:"body"`
	Attributes []string `yaml:"attributes"`
}

// checkExtensionPolicies checks the ext_proc policies: the settings of sidecar/envoy.yaml in
// Envoy Gateway's words, on routes that Check also runs on, with examples of each body mode.
// Routes that need nothing have no policy, hence no ext_proc stream.
func checkExtensionPolicies(t *testing.T, eps []egEnvoyExtensionPolicy, sps []egSecurityPolicy, grants []gwReferenceGrant) {
	t.Helper()
	checked := map[string]bool{} // HTTPRoute names with ext_authz
	for _, sp := range sps {
		for _, r := range sp.Spec.TargetRefs {
			checked[r.Kind+"/"+r.Name] = true
		}
	}
	modes := map[[2]string]bool{}
	for _, ep := range eps {
		at := "EnvoyExtensionPolicy " + ep.Metadata.Name
		for _, r := range ep.Spec.TargetRefs {
			if r.Kind != "HTTPRoute" || !checked[r.Kind+"/"+r.Name] {
				t.Errorf("%s: target %s/%s has no SecurityPolicy: Process would learn nothing about its requests", at, r.Kind, r.Name)
			}
		}
		if len(ep.Spec.ExtProc) != 1 {
			t.Fatalf("%s: want one extProc", at)
		}
		x := ep.Spec.ExtProc[0]
		if d, err := time.ParseDuration(x.MessageTimeout); err != nil || d <= 0 || d > time.Second {
			t.Errorf("%s: messageTimeout %q must be set and at most 1s", at, x.MessageTimeout)
		}
		if x.FailOpen == nil || *x.FailOpen {
			t.Errorf("%s: want failOpen: false, explicitly", at)
		}
		if x.Metadata == nil || !slices.Contains(x.Metadata.AccessibleNamespaces, metadataNamespace) {
			t.Errorf("%s: metadata.accessibleNamespaces must hold %s", at, metadataNamespace)
		}
		pm := x.ProcessingMode
		if pm == nil || pm.Request == nil || pm.Response == nil || !pm.AllowModeOverride {
			t.Fatalf("%s: want processingMode with request and response (so headers are sent) and allowModeOverride", at)
		}
		for _, b := range []string{pm.Request.Body, pm.Response.Body} {
			if b != "" && b != "Buffered" {
				t.Errorf("%s: body mode %q, want Buffered or none", at, b)
			}
		}
		modes[[2]string{pm.Request.Body, pm.Response.Body}] = true
		for _, br := range x.BackendRefs {
			if br.Port != 9191 {
				t.Errorf("%s: backend port %d, want 9191", at, br.Port)
			}
			if br.Namespace != "" && br.Namespace != ep.Metadata.Namespace &&
				!granted(grants, "EnvoyExtensionPolicy", ep.Metadata.Namespace, br.Namespace, br.Name) {
				t.Errorf("%s: backend %s/%s crosses namespaces without a ReferenceGrant", at, br.Namespace, br.Name)
			}
		}
	}
	if !modes[[2]string{"Buffered", "Buffered"}] || !modes[[2]string{"Buffered", ""}] {
		t.Errorf("want a policy buffering both bodies (signed, idempotent) and one the request only (login); got %v", modes)
	}
}
