package envoy

import (
	"fmt"
	"path/filepath"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
)

// Gatehouse judges the path and headers Envoy shows it; the upstream serves the ones Envoy
// forwards. These tests fail if a configuration here stops normalising the path before
// ext_authz runs or lets header names with underscores through (an upstream that reads
// x_gatehouse_user as x-gatehouse-user would trust a client's own identity header).

// checkNormalization asserts an HTTP connection manager's path and header hygiene.
func checkNormalization(t *testing.T, at string, hcm *hcmv3.HttpConnectionManager) {
	t.Helper()
	if !hcm.GetNormalizePath().GetValue() {
		t.Errorf("%s: normalize_path must be true (dot segments resolved before ext_authz and routing)", at)
	}
	if !hcm.GetMergeSlashes() {
		t.Errorf("%s: merge_slashes must be true", at)
	}
	if a := hcm.GetPathWithEscapedSlashesAction(); a != hcmv3.HttpConnectionManager_REJECT_REQUEST {
		t.Errorf("%s: path_with_escaped_slashes_action is %v, want REJECT_REQUEST", at, a)
	}
	if a := hcm.GetCommonHttpProtocolOptions().GetHeadersWithUnderscoresAction(); a != corev3.HttpProtocolOptions_REJECT_REQUEST {
		t.Errorf("%s: common_http_protocol_options.headers_with_underscores_action is %v, want REJECT_REQUEST", at, a)
	}
}

// TestBootstrapsNormalize: both sidecar bootstraps normalise paths and reject underscores.
func TestBootstrapsNormalize(t *testing.T) {
	for _, f := range bootstrapFiles(t) {
		checkNormalization(t, f, unpackPipeline(t, loadBootstrap(t, f)).hcm)
	}
}

// TestIstioNormalizes: the mesh normalises paths (merging slashes) and an EnvoyFilter rejects
// header names with underscores on the ingress gateway and on inbound sidecars.
func TestIstioNormalizes(t *testing.T) {
	cfg := loadIstio(t)
	normalized := false
	for _, m := range cfg.mesh {
		if pn := m.MeshConfig.PathNormalization; pn != nil {
			switch pn.Normalization {
			case "MERGE_SLASHES", "DECODE_AND_MERGE_SLASHES":
				normalized = true
			default:
				t.Errorf("meshConfig.pathNormalization.normalization %q: want MERGE_SLASHES or DECODE_AND_MERGE_SLASHES", pn.Normalization)
			}
		}
	}
	if !normalized {
		t.Error("meshConfig.pathNormalization is missing")
	}
	rejected := map[string]bool{}
	for _, ef := range cfg.envoyFilters {
		for i, m := range cfg.patchMessages[ef.Metadata.Name] {
			hcm, ok := patchHCM(t, fmt.Sprintf("EnvoyFilter %s configPatches[%d]", ef.Metadata.Name, i), m)
			if ok && hcm.GetCommonHttpProtocolOptions().GetHeadersWithUnderscoresAction() == corev3.HttpProtocolOptions_REJECT_REQUEST {
				rejected[ef.Spec.ConfigPatches[i].Match.Context] = true
			}
		}
	}
	for _, ctx := range []string{"GATEWAY", "SIDECAR_INBOUND"} {
		if !rejected[ctx] {
			t.Errorf("no EnvoyFilter sets headers_with_underscores_action: REJECT_REQUEST for context %s", ctx)
		}
	}
}

// TestEnvoyGatewayNormalizes: a ClientTrafficPolicy on the Gateway rejects escaped slashes
// and header names with underscores and keeps slash merging on.
func TestEnvoyGatewayNormalizes(t *testing.T) {
	files, _ := filepath.Glob("envoy-gateway/*.yaml")
	var found bool
	for _, f := range files {
		for i, doc := range yamlDocs(t, f) {
			apiVersion, kind := kindOf(t, doc)
			if apiVersion+" "+kind != "gateway.envoyproxy.io/v1alpha1 ClientTrafficPolicy" {
				continue
			}
			var v egClientTrafficPolicy
			if err := strictYAML(doc, &v); err != nil {
				t.Fatalf("%s#%d: %v", f, i, err)
			}
			if err := v.Metadata.check(); err != nil {
				t.Fatalf("%s#%d: %v", f, i, err)
			}
			found = true
			s := v.Spec
			if s.Path == nil || s.Path.EscapedSlashesAction != "RejectRequest" {
				t.Errorf("ClientTrafficPolicy %s: want path.escapedSlashesAction: RejectRequest", v.Metadata.Name)
			}
			if s.Path == nil || s.Path.DisableMergeSlashes == nil || *s.Path.DisableMergeSlashes {
				t.Errorf("ClientTrafficPolicy %s: want path.disableMergeSlashes: false, explicitly", v.Metadata.Name)
			}
			if s.Headers == nil || s.Headers.WithUnderscoresAction != "RejectRequest" {
				t.Errorf("ClientTrafficPolicy %s: want headers.withUnderscoresAction: RejectRequest", v.Metadata.Name)
			}
			if len(s.TargetRefs) == 0 || s.TargetRefs[0].Kind != "Gateway" || s.TargetRefs[0].Name != "eg" {
				t.Errorf("ClientTrafficPolicy %s: want targetRefs naming the Gateway eg (as envoypatchpolicy.yaml)", v.Metadata.Name)
			}
		}
	}
	if !found {
		t.Fatal("no ClientTrafficPolicy in envoy-gateway/")
	}
}

// egClientTrafficPolicy mirrors gateway.envoyproxy.io/v1alpha1 ClientTrafficPolicy (path and
// header settings).
type egClientTrafficPolicy struct {
	typeMeta `yaml:",inline"`
	Metadata objectMeta `yaml:"metadata"`
	Spec     struct {
		TargetRefs []egTargetRef `yaml:"targetRefs"`
		Path       *struct {
			EscapedSlashesAction string `yaml:"escapedSlashesAction"`
			DisableMergeSlashes  *bool  `yaml:"disableMergeSlashes"`
		} `yaml:"path"`
		Headers *struct {
			WithUnderscoresAction string `yaml:"withUnderscoresAction"`
		} `yaml:"headers"`
	} `yaml:"spec"`
}
