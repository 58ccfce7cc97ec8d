package main

// End-to-end: every metric that the chart's alerts (templates/prometheusrule.yaml) and
// Grafana dashboard (dashboards/gatehouse.json) query exists in /metrics after a scripted
// mix of requests through the real gRPC server, so that the server, the alerts and the
// dashboard cannot drift apart. And the decision log's per-code budget holds over gRPC.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	commonrl "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"github.com/gatehouse/gatehouse/policy/attest/attesttest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const (
	chartDir        = "../../k8s/gatehouse"
	ruleTemplate    = chartDir + "/templates/prometheusrule.yaml"
	dashboardFile   = chartDir + "/dashboards/gatehouse.json"
	minRuleExprs    = 6  // the alerts the chart documents
	minDashboardExp = 20 // the dashboard's queries, roughly: fewer means extraction broke
)

// query is one PromQL expression the chart ships, and where it comes from.
type query struct{ source, expr string }

var (
	ruleExprRE  = regexp.MustCompile(`^\s*expr:\s*(.+?)\s*$`)
	ruleAlertRE = regexp.MustCompile(`^\s*- alert:\s*(\S+)`)
	helmAction  = regexp.MustCompile(`\{\{-?\s*(.*?)\s*-?\}\}`)
	labelValues = regexp.MustCompile(`^label_values\((.*),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)$`)
)

// ruleQueries reads the alert expressions of the PrometheusRule template. Helm actions
// are replaced as the chart renders them: the release's selector ($sel) by label
// matchers, the thresholds by a number.
func ruleQueries(t *testing.T, text string) []query {
	t.Helper()
	var out []query
	alert := ""
	for _, line := range strings.Split(text, "\n") {
		if m := ruleAlertRE.FindStringSubmatch(line); m != nil {
			alert = m[1]
		}
		m := ruleExprRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		expr := helmAction.ReplaceAllStringFunc(m[1], func(a string) string {
			if strings.Contains(a, "$sel") {
				return `job="gatehouse", namespace="gatehouse"`
			}
			return "0.01"
		})
		out = append(out, query{source: "alert " + alert, expr: expr})
	}
	return out
}

// dashboardQueries reads every panel query (nested rows included) and every templating
// query of a Grafana dashboard.
func dashboardQueries(t *testing.T, data []byte) []query {
	t.Helper()
	var d struct {
		Panels     []json.RawMessage `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	var out []query
	var walk func(raw json.RawMessage)
	walk = func(raw json.RawMessage) {
		var p struct {
			Title   string            `json:"title"`
			Panels  []json.RawMessage `json:"panels"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		}
		if err := json.Unmarshal(raw, &p); err != nil {
			t.Fatalf("dashboard panel: %v", err)
		}
		for _, tg := range p.Targets {
			out = append(out, query{source: "panel " + strconv.Quote(p.Title), expr: tg.Expr})
		}
		for _, c := range p.Panels {
			walk(c)
		}
	}
	for _, p := range d.Panels {
		walk(p)
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, _ := v.Query.(string)
		if m, ok := v.Query.(map[string]any); ok {
			q, _ = m["query"].(string)
		}
		if m := labelValues.FindStringSubmatch(q); m != nil {
			q = m[1] // label_values(selector, label): the selector is PromQL
		}
		out = append(out, query{source: "variable " + v.Name, expr: q})
	}
	return out
}

// series maps each sample name of a /metrics body (histograms as _bucket, _sum and
// _count) to the label sets it was exposed with.
type series map[string][]map[string]string

var sampleLabel = regexp.MustCompile(`([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"`)

func exposedMetrics(body string) series {
	out := series{}
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.IndexAny(line, "{ ")
		if i <= 0 {
			continue
		}
		labels := map[string]string{}
		if line[i] == '{' {
			for _, m := range sampleLabel.FindAllStringSubmatch(line[i:strings.LastIndexByte(line, '}')+1], -1) {
				labels[m[1]] = m[2]
			}
		}
		out[line[:i]] = append(out[line[:i]], labels)
	}
	return out
}

// targetLabels are added by Prometheus when it scrapes, so /metrics cannot show them.
var targetLabels = map[string]bool{"job": true, "namespace": true, "pod": true, "instance": true, "service": true, "container": true, "endpoint": true}

// has reports whether some series of metric carries every label value of equal (target
// labels and dashboard variables aside).
func (s series) has(metric string, equal map[string]string) bool {
	for _, labels := range s[metric] {
		ok := true
		for k, v := range equal {
			if !targetLabels[k] && !strings.Contains(v, "$") && labels[k] != v {
				ok = false
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// unknownMetrics lists each query that is not valid PromQL, or selects a metric (or a
// label value of a label="value" matcher) that is not exposed.
func unknownMetrics(qs []query, exposed series) []string {
	var problems []string
	for _, q := range qs {
		sels, err := promqlSelectors(q.expr)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", q.source, err))
			continue
		}
		if len(sels) == 0 {
			problems = append(problems, fmt.Sprintf("%s: queries no metric: %s", q.source, q.expr))
		}
		for _, sel := range sels {
			switch {
			case len(exposed[sel.metric]) == 0:
				problems = append(problems, fmt.Sprintf("%s: %s is not in /metrics", q.source, sel.metric))
			case !exposed.has(sel.metric, sel.equal):
				problems = append(problems, fmt.Sprintf("%s: no %s series has the labels %v", q.source, sel.metric, sel.equal))
			}
		}
	}
	sort.Strings(problems)
	return problems
}

// TestMonitoringCheckCatchesMisspelling: the check itself fails on a panel or an alert
// that queries a misspelled metric, or holds broken PromQL.
func TestMonitoringCheckCatchesMisspelling(t *testing.T) {
	exposed := exposedMetrics("# HELP x\n" + `gatehouse_decisions_total{decision="allow",code=""} 1` + "\n" +
		`gatehouse_check_duration_seconds_bucket{decision="allow",le="0.1"} 1` + "\n")
	dash := `{"panels":[{"type":"row","title":"r","panels":[
		{"title":"ok","targets":[{"expr":"sum(rate(gatehouse_decisions_total{pod=~\"$pod\"}[$__rate_interval]))"}]},
		{"title":"typo","targets":[{"expr":"sum(rate(gatehouse_decision_total[5m]))"}]},
		{"title":"label","targets":[{"expr":"sum(rate(gatehouse_decisions_total{decision=\"fail_open\"}[5m]))"}]}]}],
		"templating":{"list":[{"name":"ns","type":"query","query":{"query":"label_values(gatehouse_decisions_totl, namespace)"}}]}}`
	rule := "        - alert: A\n          expr: histogram_quantile(0.99, sum by (le) (rate(gatehouse_check_duration_seconds_bucket{ {{ $sel }} }[5m]))) > {{ $r.x }}\n" +
		"        - alert: B\n          expr: sum(rate(gatehouse_decisions_total{a=\"1\"}[5m])\n"
	qs := append(dashboardQueries(t, []byte(dash)), ruleQueries(t, rule)...)
	got := unknownMetrics(qs, exposed)
	want := []string{
		`alert B: unclosed '('`,
		`panel "label": no gatehouse_decisions_total series has the labels map[decision:fail_open]`,
		`panel "typo": gatehouse_decision_total is not in /metrics`,
		`variable ns: gatehouse_decisions_totl is not in /metrics`,
	}
	if len(got) != len(want) {
		t.Fatalf("problems %q, want %q", got, want)
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("problem %q, want %q", got[i], want[i])
		}
	}
}

const monitoringE2EConfig = `
store: {type: redis, redis: {addrs: ["{{REDIS}}"], timeout: 1s, breaker: {failures: 1, window: 1ms, cooldown: 1h}}}
jwt_providers:
  - {name: idp, issuer: https://id.test, audiences: [api], jwks: {url: "{{JWKS}}", allow_http: true, min_refresh: 1h}}
apps:
  - {name: main, app_token_sha256: ["{{T:main}}"], endpoints: ["*"]}
  - {name: opener, fail_mode: open, app_token_sha256: ["{{T:opener}}"], endpoints: ["*"]}
  - {name: erring, fail_mode: error, app_token_sha256: ["{{T:erring}}"], endpoints: ["*"]}
endpoints:
  - {name: hello, path: /v1/hello}
  - {name: api, path: /v1/api, user: {provider: idp}}
  - name: limited
    path: /v1/limited
    limits: [{name: per_app, key: [app], requests: 1, per: 1h}]
  - name: fresh
    path: /v1/fresh
    limits: [{name: per_app, key: [app], requests: 1000, per: 1h}]
rate_limit_service:
  domains:
    - domain: mon
      descriptors:
        - key: device
          rate_limit: {unit: hour, requests_per_unit: 1}
        - key: trial
          shadow_mode: true
          rate_limit: {unit: hour, requests_per_unit: 1}
`

// TestMonitoringQueriesMatchMetrics runs a scripted mix through a real server (allowed,
// denied, rate-limited, fail-open and undecided requests, RLS calls with a shadow-mode
// limit, a good and a bad reload, a Redis store that dies and opens its breaker) and
// checks that every metric the alerts and the dashboard query is in /metrics.
func TestMonitoringQueriesMatchMetrics(t *testing.T) {
	rule, err := os.ReadFile(ruleTemplate)
	if err != nil {
		t.Fatal(err)
	}
	dash, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	rules, panels := ruleQueries(t, string(rule)), dashboardQueries(t, dash)
	if len(rules) < minRuleExprs || len(panels) < minDashboardExp {
		t.Fatalf("found %d alert and %d dashboard queries, want at least %d and %d", len(rules), len(panels), minRuleExprs, minDashboardExp)
	}

	srv, path, kill := startMonitoredServer(t)
	runScriptedMix(t, srv, path, kill)

	if problems := unknownMetrics(append(rules, panels...), exposedMetrics(srv.body(t, "/metrics"))); len(problems) > 0 {
		t.Errorf("the chart queries metrics the server does not expose:\n  %s", strings.Join(problems, "\n  "))
	}
}

// startMonitoredServer starts Redis, a key server that fails, and Gatehouse on them.
func startMonitoredServer(t *testing.T) (srv *testServer, path string, killRedis func()) {
	addr, kill := redisServer(t)
	keys := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "key service down", http.StatusInternalServerError)
	}))
	t.Cleanup(keys.Close)
	cfg := strings.NewReplacer("{{REDIS}}", addr, "{{JWKS}}", keys.URL+"/keys").Replace(monitoringE2EConfig)
	path = writeConfig(t, t.TempDir(), cfg)
	srv = startServer(t, "--config", path, "--log-denials-per-second", "1")
	srv.waitReady(t)
	return srv, path, kill
}

// runScriptedMix sends the requests; each step checks that it did what it says.
func runScriptedMix(t *testing.T, srv *testServer, path string, killRedis func()) {
	jwt := "Bearer " + attesttest.Sign(t, attesttest.NewKey(t, "ES256", "no-such-kid"),
		attesttest.Claims{"iss": "https://id.test", "aud": "api", "sub": "u", "exp": time.Now().Add(time.Hour).Unix()}, nil)
	expect := func(r request, wantCode string) {
		t.Helper()
		resp, err := srv.check(t, r)
		switch {
		case wantCode == "UNAVAILABLE":
			if status.Code(err) != codes.Unavailable {
				t.Fatalf("%s: got %v %s, want gRPC UNAVAILABLE", r.path, err, describe(resp))
			}
		case err != nil:
			t.Fatalf("%s: %v", r.path, err)
		case wantCode == "" && resp.GetOkResponse() == nil:
			t.Fatalf("%s: %s, want allowed", r.path, describe(resp))
		case wantCode != "" && (resp.GetDeniedResponse() == nil || bodyCode(t, resp.GetDeniedResponse().GetBody()) != wantCode):
			t.Fatalf("%s: %s, want %s", r.path, describe(resp), wantCode)
		}
	}
	expect(request{path: "/v1/hello", headers: app("main")}, "")
	for range 20 {
		expect(request{path: "/v1/hello"}, "UNAUTHORIZED")
	}
	expect(request{path: "/v1/limited", headers: app("main")}, "")
	expect(request{path: "/v1/limited", headers: app("main")}, "RATE_LIMITED")
	expect(request{path: "/v1/api", headers: with(app("opener"), "authorization", jwt)}, "")
	expect(request{path: "/v1/api", headers: with(app("erring"), "authorization", jwt)}, "UNAVAILABLE")
	for i, d := range []struct {
		key  string
		want rlsv3.RateLimitResponse_Code
	}{{"device", rlsv3.RateLimitResponse_OK}, {"device", rlsv3.RateLimitResponse_OVER_LIMIT}, {"trial", rlsv3.RateLimitResponse_OK}, {"trial", rlsv3.RateLimitResponse_OK}} {
		if got := monitoredRLS(t, srv, d.key); got != d.want {
			t.Fatalf("RLS call %d (%s): %v, want %v", i, d.key, got, d.want)
		}
	}
	reloadAndWait(t, srv, path)
	killRedis()
	awaitBreakerOpen(t, srv)
}

func monitoredRLS(t *testing.T, srv *testServer, key string) rlsv3.RateLimitResponse_Code {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := rlsv3.NewRateLimitServiceClient(srv.conn).ShouldRateLimit(ctx, &rlsv3.RateLimitRequest{Domain: "mon",
		Descriptors: []*commonrl.RateLimitDescriptor{{Entries: []*commonrl.RateLimitDescriptor_Entry{{Key: key, Value: "v"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	return res.GetOverallCode()
}

// reloadAndWait rewrites the file with one more endpoint, then with a typo, and waits
// (polling /metrics, bounded) until the server has counted the good and the bad load.
func reloadAndWait(t *testing.T, srv *testServer, path string) {
	t.Helper()
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct{ content, metric string }{
		{strings.Replace(string(good), "endpoints:\n", "endpoints:\n  - {name: added, path: /v1/added}\n", 1), `gatehouse_config_reloads_total{result="success"} 2`},
		{string(good) + "\nnot_a_key: 1\n", `gatehouse_config_reloads_total{result="failure"} 1`},
	}
	for _, s := range steps {
		if err := os.WriteFile(filepath.Join(filepath.Dir(path), "config.yaml.tmp"), []byte(s.content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(filepath.Dir(path), "config.yaml.tmp"), path); err != nil {
			t.Fatal(err)
		}
		awaitMetric(t, srv, s.metric)
	}
}

// awaitBreakerOpen sends requests on a limited endpoint (not over its limit: an over-limit
// key is answered without Redis) to the dead Redis until the
// breaker is open (each is refused with 503: fail mode closed).
func awaitBreakerOpen(t *testing.T, srv *testServer) {
	t.Helper()
	for i := 0; i < 1000; i++ { // the breaker opens once its failures span 1ms
		resp, err := srv.check(t, request{path: "/v1/fresh", headers: app("main")})
		if err != nil || bodyCode(t, resp.GetDeniedResponse().GetBody()) != "SERVICE_UNAVAILABLE" {
			t.Fatalf("Redis down: %v %s, want SERVICE_UNAVAILABLE", err, describe(resp))
		}
		if strings.Contains(srv.body(t, "/metrics"), "\ngatehouse_store_circuit_breaker_open 1\n") {
			return
		}
	}
	t.Fatal("the breaker did not open")
}

// awaitMetric polls /metrics until it holds the sample line want (bounded: only a hung
// reload takes that long).
func awaitMetric(t *testing.T, srv *testServer, want string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(srv.body(t, "/metrics"), "\n"+want+"\n") {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("/metrics never showed %s", want)
}

// TestDecisionLogBudgetEndToEnd: a flood of one denial code through the real gRPC server
// writes at most --log-denials-per-second lines of it per second; every other denial is
// counted in gatehouse_decision_logs_suppressed_total{code}, so lines and count add up to
// the requests sent. Another code keeps its own budget.
func TestDecisionLogBudgetEndToEnd(t *testing.T) {
	const perSecond, flood = 2, 40
	srv := startServer(t, "--config", writeConfig(t, t.TempDir(), monitoringMinimalConfig), "--log-denials-per-second", strconv.Itoa(perSecond))
	srv.waitReady(t)
	first := time.Now().Unix()
	for range flood {
		resp, err := srv.check(t, request{path: "/v1/hello"})
		if err != nil || bodyCode(t, resp.GetDeniedResponse().GetBody()) != "UNAUTHORIZED" {
			t.Fatalf("%v %s, want UNAUTHORIZED", err, describe(resp))
		}
	}
	seconds := time.Now().Unix() - first + 1 // wall-clock seconds the flood touched: each has its own budget
	resp, err := srv.check(t, request{path: "/v1/nowhere", headers: app("main")})
	if err != nil || bodyCode(t, resp.GetDeniedResponse().GetBody()) != "ENDPOINT_NOT_FOUND" {
		t.Fatalf("%v %s, want ENDPOINT_NOT_FOUND", err, describe(resp))
	}

	logged := map[string]int{}
	for _, r := range srv.out.records("decision") {
		code, _ := r["code"].(string)
		logged[code]++
	}
	body := srv.body(t, "/metrics")
	if n := metricValue(t, body, `gatehouse_decision_logs_suppressed_total{code="ENDPOINT_NOT_FOUND"}`); n != 0 {
		t.Errorf("%v ENDPOINT_NOT_FOUND lines suppressed, want 0", n)
	}
	suppressed := int(metricValue(t, body, `gatehouse_decision_logs_suppressed_total{code="UNAUTHORIZED"}`))
	if logged["UNAUTHORIZED"]+suppressed != flood {
		t.Errorf("%d lines logged + %d suppressed, want %d in all", logged["UNAUTHORIZED"], suppressed, flood)
	}
	if max := perSecond * int(seconds); logged["UNAUTHORIZED"] < perSecond || logged["UNAUTHORIZED"] > max {
		t.Errorf("%d UNAUTHORIZED lines over %d second(s), want %d to %d", logged["UNAUTHORIZED"], seconds, perSecond, max)
	}
	if logged["ENDPOINT_NOT_FOUND"] != 1 {
		t.Errorf("%d ENDPOINT_NOT_FOUND lines, want 1: another code has its own budget", logged["ENDPOINT_NOT_FOUND"])
	}
}

// metricValue returns the value of the sample line that starts with series (0 if none).
func metricValue(t *testing.T, body, series string) float64 {
	t.Helper()
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	return 0
}

// TestAlertNamesMatchSchema: prometheusRule.disabled accepts exactly the alerts the
// template defines, so that each alert can be left out and a typo is refused.
func TestAlertNamesMatchSchema(t *testing.T) {
	rule, err := os.ReadFile(ruleTemplate)
	if err != nil {
		t.Fatal(err)
	}
	var defined []string
	for _, line := range strings.Split(string(rule), "\n") {
		if m := ruleAlertRE.FindStringSubmatch(line); m != nil {
			defined = append(defined, m[1])
			if !strings.Contains(string(rule), `(has "`+m[1]+`" $off)`) {
				t.Errorf("alert %s cannot be disabled: no (has %q $off) guard", m[1], m[1])
			}
		}
	}
	raw, err := os.ReadFile(chartDir + "/values.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Properties struct {
			PrometheusRule struct {
				Properties struct {
					Disabled struct {
						Items struct {
							Enum []string `json:"enum"`
						} `json:"items"`
					} `json:"disabled"`
				} `json:"properties"`
			} `json:"prometheusRule"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatal(err)
	}
	enum := schema.Properties.PrometheusRule.Properties.Disabled.Items.Enum
	sort.Strings(defined)
	sort.Strings(enum)
	if len(defined) < minRuleExprs || strings.Join(defined, " ") != strings.Join(enum, " ") {
		t.Errorf("alerts in the template %v, in the schema's prometheusRule.disabled enum %v", defined, enum)
	}
}
