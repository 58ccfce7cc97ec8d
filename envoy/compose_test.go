package envoy

import (
	"net"
	"slices"
	"strconv"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
)

// composeBootstrap is the Envoy of the compose walk-through (deploy/compose/README.md).
const composeBootstrap = "../deploy/compose/envoy.yaml"

// TestComposeBootstrap loads the compose Envoy strictly, runs every validator in it and
// checks what the walk-through relies on, with the same checks as the sidecar bootstraps
// where they apply (tracing aside: the compose file runs no collector).
func TestComposeBootstrap(t *testing.T) {
	bs := loadBootstrap(t, composeBootstrap)
	if err := validateDeep(bs); err != nil {
		t.Fatal(err)
	}
	p := unpackPipeline(t, bs)
	if want := []string{extAuthzFilter, rateLimitFilter, routerFilter}; !slices.Equal(p.filters, want) {
		t.Fatalf("filter order %v, want %v", p.filters, want)
	}
	checkExtAuthz(t, p.authz, "gatehouse")
	checkGatehouseCluster(t, p.clusters["gatehouse"])
	checkRoutes(t, p.hcm.GetRouteConfig())
	checkLocalReplyConfig(t, p.hcm.GetLocalReplyConfig())
	checkNormalization(t, composeBootstrap, p.hcm)
	checkComposeRateLimit(t, p.rl)
	if got := bs.GetStaticResources().GetListeners()[0].GetAddress().GetSocketAddress().GetPortValue(); got != 8080 {
		t.Errorf("listener port %d, want 8080 (the port the README curls)", got)
	}
	if got := bs.GetAdmin().GetAddress().GetSocketAddress().GetAddress(); got != "127.0.0.1" {
		t.Errorf("admin listens on %q, want 127.0.0.1 (inside the container only)", got)
	}
	for name, want := range map[string]string{"gatehouse": "gatehouse:9191", "echo": "echo:8080"} {
		if got := clusterAddress(p.clusters[name]); got != want {
			t.Errorf("cluster %s points at %q, want the compose service %q", name, got, want)
		}
	}
	if hc := p.clusters["gatehouse"].GetHealthChecks(); len(hc) != 1 || hc[0].GetGrpcHealthCheck().GetServiceName() != "gatehouse" {
		t.Errorf("gatehouse cluster: want one gRPC health check of service gatehouse, got %v", hc)
	}
}

// checkComposeRateLimit: the filter calls Gatehouse's RLS in domain compose with its own
// headers off (Gatehouse adds the documented ones), and only /v1/limited sends a
// descriptor, ("endpoint", endpoint), ("app", app), both from Gatehouse's dynamic metadata.
func checkComposeRateLimit(t *testing.T, rl *ratelimitv3.RateLimit) {
	t.Helper()
	if rl == nil {
		t.Fatal("no ratelimit filter")
	}
	if rl.GetDomain() != "compose" {
		t.Errorf("ratelimit: domain %q, want compose (gatehouse/config.yaml)", rl.GetDomain())
	}
	if rl.GetEnableXRatelimitHeaders() != ratelimitv3.RateLimit_OFF {
		t.Error("ratelimit: Envoy's draft headers must be off: Gatehouse sends the documented X-RateLimit-* (epoch reset)")
	}
	if to := rl.GetTimeout(); to == nil || to.AsDuration() <= 0 {
		t.Error("ratelimit: timeout must be explicit")
	}
	if rl.GetRateLimitService().GetGrpcService().GetEnvoyGrpc().GetClusterName() != "gatehouse" || len(rl.GetRateLimits()) != 0 {
		t.Error("ratelimit: want the gatehouse cluster and descriptors on the routes, not on the filter")
	}
}

// TestComposeRoutes pins the routes the README walks through: the endpoint each names
// and the descriptors each sends to the rate-limit service.
func TestComposeRoutes(t *testing.T) {
	p := unpackPipeline(t, loadBootstrap(t, composeBootstrap))
	type route struct {
		endpoint    string
		descriptors [][2]string // descriptor key ← ext_authz metadata key
	}
	want := map[string]route{
		"/v1/hello":   {endpoint: "hello"},
		"/v1/limited": {endpoint: "limited", descriptors: [][2]string{{"endpoint", "endpoint"}, {"app", "app"}}},
		"/v1/admin":   {endpoint: "admin"},
	}
	got := map[string]route{}
	for _, vh := range p.hcm.GetRouteConfig().GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			if r.GetRoute().GetCluster() != "echo" {
				t.Errorf("route %s goes to %q, want echo", r.GetName(), r.GetRoute().GetCluster())
			}
			path := r.GetMatch().GetPath()
			if path == "" {
				continue
			}
			per := &extauthzv3.ExtAuthzPerRoute{}
			if err := r.GetTypedPerFilterConfig()[extAuthzFilter].UnmarshalTo(per); err != nil {
				t.Fatal(err)
			}
			got[path] = route{endpoint: per.GetCheckSettings().GetContextExtensions()["endpoint"],
				descriptors: metadataActions(t, r.GetRoute().GetRateLimits())}
		}
	}
	if len(got) != len(want) {
		t.Errorf("routes %v, want %v", got, want)
	}
	for path, w := range want {
		g := got[path]
		if g.endpoint != w.endpoint || !slices.Equal(g.descriptors, w.descriptors) {
			t.Errorf("route %s: %+v, want %+v", path, g, w)
		}
	}
}

// metadataActions flattens a route's rate limits into (descriptor key, metadata key)
// pairs, failing on any action that does not read Gatehouse's dynamic metadata.
func metadataActions(t *testing.T, rls []*routev3.RateLimit) [][2]string {
	t.Helper()
	var out [][2]string
	for _, r := range rls {
		for _, a := range r.GetActions() {
			md := a.GetMetadata()
			mk := md.GetMetadataKey()
			if md == nil || md.GetSource() != routev3.RateLimit_Action_MetaData_DYNAMIC || mk.GetKey() != metadataNamespace || len(mk.GetPath()) != 1 {
				t.Errorf("rate-limit action %v: want a metadata action on %s:<key>", a, metadataNamespace)
				continue
			}
			out = append(out, [2]string{md.GetDescriptorKey(), mk.GetPath()[0].GetKey()})
		}
	}
	return out
}

// clusterAddress is host:port of a cluster's only endpoint.
func clusterAddress(c *clusterv3.Cluster) string {
	eps := c.GetLoadAssignment().GetEndpoints()
	if len(eps) != 1 || len(eps[0].GetLbEndpoints()) != 1 {
		return ""
	}
	sa := eps[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
	return net.JoinHostPort(sa.GetAddress(), strconv.FormatUint(uint64(sa.GetPortValue()), 10))
}
