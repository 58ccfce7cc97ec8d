package main

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	commonrl "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
)

// The compose walk-through (deploy/compose/README.md) is replayed here: every curl of its
// console blocks is sent as Envoy would send it (envoy.yaml) to a real Gatehouse running the
// walk-through's configuration on a real redis-server, and the status, Gatehouse's headers
// and body must be those the README shows. The README's text is the expected value (written
// from the seed documents); the code under test only answers.

const (
	composeDir    = "../../deploy/compose"
	composeReadme = composeDir + "/README.md"
	composeConfig = composeDir + "/gatehouse/config.yaml"
)

// composeRoutes is envoy.yaml's route table as far as Gatehouse sees it (envoy/compose_test.go
// pins the same table against the file): the endpoint each route names, and whether its
// rate_limits send ("endpoint", endpoint), ("app", app) from the ext_authz metadata.
var composeRoutes = map[string]struct {
	endpoint string
	limited  bool
}{
	"/v1/hello":   {endpoint: "hello"},
	"/v1/limited": {endpoint: "limited", limited: true},
	"/v1/admin":   {endpoint: "admin"},
}

// echoContentType is what the echo API (an Express app) answers with.
const echoContentType = "application/json; charset=utf-8"

// composeStep is one command of the README with the output it shows.
type composeStep struct {
	line     string
	times    int
	req      request
	codeOnly bool     // -o /dev/null -w '%{http_code}\n': one status per line
	codes    []int    // codeOnly
	status   int      // -i: the status line
	reason   string   // -i: its reason phrase
	headers  []string // -i: "name: value" lines shown
	body     string   // a Gatehouse body, shown whole
	upstream []string // "name: value" of x-gatehouse-* headers the echo API shows
}

// composeReply is what the client would receive through Envoy.
type composeReply struct {
	status   int
	headers  map[string]string
	body     string // Gatehouse's; "" when the echo API answered
	upstream map[string]string
	removed  []string
}

// TestComposeWalkthrough replays deploy/compose/README.md.
func TestComposeWalkthrough(t *testing.T) {
	steps := readmeSteps(t)
	if len(steps) < 5 {
		t.Fatalf("found %d curl commands in the README, want the walk-through's 5 or more", len(steps))
	}
	addr, _ := redisServer(t)
	srv := startServer(t, "--config", composeConfigFor(t, addr))
	srv.waitReady(t)
	replies := make([][]composeReply, len(steps))
	inOneWindow(t, addr, func() [][]composeReply {
		for i, st := range steps {
			replies[i] = nil
			for range st.times {
				replies[i] = append(replies[i], composeCall(t, srv, st.req))
			}
		}
		return replies
	})
	for i, st := range steps {
		checkStep(t, st, replies[i])
	}
}

// inOneWindow runs a sequence of calls until all of it fell in one rate-limit window (at
// most three times). A fixed window can turn between two requests; then the counts are
// another window's. That is seen in the replies (their reset times differ), and the
// sequence runs again on an empty Redis.
func inOneWindow(t *testing.T, addr string, calls func() [][]composeReply) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		if sameWindow(calls()) || attempt == 3 {
			return
		}
		flushRedis(t, addr)
	}
}

// TestComposeAttacks tries to get around the walk-through's gate the way a client could:
// each row is one request through Envoy after those above it, with the code or the
// upstream identity a client must see (codes and statuses from seeds/000).
func TestComposeAttacks(t *testing.T) {
	addr, _ := redisServer(t)
	srv := startServer(t, "--config", composeConfigFor(t, addr))
	srv.waitReady(t)
	tok := map[string]string{"x-app-token": "compose-app-token"}
	with := func(k, v string) map[string]string {
		return map[string]string{"x-app-token": "compose-app-token", k: v}
	}
	cases := []struct {
		name     string
		req      request
		status   int
		code     string // of a denial
		upstream string // x-gatehouse-app the API receives when allowed
	}{
		{"forged identity header is overwritten", request{path: "/v1/hello", headers: with("x-gatehouse-app", "admin")}, 200, "", "shop"},
		{"token sent twice is ambiguous", request{path: "/v1/hello", headers: map[string]string{"x-app-token": "compose-app-token,compose-app-token"}}, 401, "UNAUTHORIZED", ""},
		{"unknown token", request{path: "/v1/limited", headers: map[string]string{"x-app-token": "guess"}}, 404, "APP_NOT_FOUND", ""},
		{"dot segments to a refused endpoint", request{path: "/v1/hello/../admin", headers: tok}, 404, "ENDPOINT_NOT_FOUND", ""},
		{"admin in another case", request{path: "/V1/ADMIN", headers: tok}, 404, "ENDPOINT_NOT_FOUND", ""},
		{"wrong method on hello", request{method: "POST", path: "/v1/hello", headers: tok}, 405, "INVALID_METHOD", ""},
		{"limited 1", request{path: "/v1/limited", headers: tok}, 200, "", "shop"},
		{"limited 2", request{path: "/v1/limited", headers: tok}, 200, "", "shop"},
		{"limited 3, a forged app header changes no count", request{path: "/v1/limited", headers: with("x-gatehouse-app", "other")}, 200, "", "shop"},
		{"limited 4 with a query string is still counted", request{path: "/v1/limited?fresh=1", headers: tok}, 429, "RATE_LIMITED", ""},
	}
	got := make([]composeReply, len(cases))
	inOneWindow(t, addr, func() [][]composeReply {
		for i, c := range cases {
			got[i] = composeCall(t, srv, c.req)
		}
		return [][]composeReply{got}
	})
	for i, c := range cases {
		r := got[i]
		switch {
		case r.status != c.status:
			t.Errorf("%s: status %d (%s), want %d", c.name, r.status, r.body, c.status)
		case c.code != "" && bodyCode(t, r.body) != c.code:
			t.Errorf("%s: %s, want %s", c.name, r.body, c.code)
		case c.upstream != "" && r.upstream["x-gatehouse-app"] != c.upstream:
			t.Errorf("%s: the API is told x-gatehouse-app %q, want %q", c.name, r.upstream["x-gatehouse-app"], c.upstream)
		}
	}
}

// composeConfigFor writes the walk-through's configuration with Redis at addr. The store
// timeout is raised too: what is replayed here is what clients see, not how fast a shared,
// loaded test machine answers (a timed-out RLS call would fail the test, not the gate).
func composeConfigFor(t *testing.T, addr string) string {
	t.Helper()
	raw, err := os.ReadFile(composeConfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(raw)
	for at, to := range map[string]string{"addrs: [redis:6379]": "addrs: [" + addr + "]", "timeout: 50ms": "timeout: 2s"} {
		if strings.Count(cfg, at) != 1 {
			t.Fatalf("%s: want exactly one %q to rewrite for the test", composeConfig, at)
		}
		cfg = strings.Replace(cfg, at, to, 1)
	}
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestComposeConfigValidates runs `gatehouse validate` on the walk-through's configuration,
// as a CI job would (Redis need not be reachable for that).
func TestComposeConfigValidates(t *testing.T) {
	var out, errb syncBuffer
	if err := run(context.Background(), []string{"validate", "--config", composeConfig}, strings.NewReader(""), &out, &errb); err != nil {
		t.Fatalf("validate: %v\n%s", err, errb.String())
	}
	if !strings.Contains(out.String(), ": OK (") || !strings.Contains(out.String(), "1 apps, 3 endpoints") {
		t.Errorf("validate said %q, want OK with the walk-through's 1 app and 3 endpoints", out.String())
	}
}

// composeCall sends r as Envoy would: Check, then, on an allowed request to a rate-limited
// route, ShouldRateLimit with the descriptor built from the Check's dynamic metadata.
func composeCall(t *testing.T, s *testServer, r request) composeReply {
	t.Helper()
	path, _, _ := strings.Cut(r.path, "?") // Envoy matches routes on the path without the query
	route, routed := composeRoutes[path]
	if routed {
		r.ext = map[string]string{"endpoint": route.endpoint}
	}
	resp, err := s.check(t, r)
	if err != nil {
		t.Fatalf("%s %s: Check: %v", r.method, r.path, err)
	}
	if d := resp.GetDeniedResponse(); d != nil {
		out := composeReply{status: int(d.GetStatus().GetCode()), headers: map[string]string{}, body: d.GetBody()}
		for _, h := range d.GetHeaders() {
			out.headers[strings.ToLower(h.GetHeader().GetKey())] = h.GetHeader().GetValue()
		}
		return out
	}
	ok := resp.GetOkResponse()
	out := composeReply{status: http.StatusOK, headers: map[string]string{"content-type": echoContentType},
		upstream: map[string]string{}, removed: ok.GetHeadersToRemove()}
	for _, h := range ok.GetHeaders() {
		out.upstream[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
	}
	for _, h := range ok.GetResponseHeadersToAdd() {
		out.headers[strings.ToLower(h.GetHeader().GetKey())] = h.GetHeader().GetValue()
	}
	if route.limited {
		md := resp.GetDynamicMetadata().GetFields()
		rlsCall(t, s, &out, md["endpoint"].GetStringValue(), md["app"].GetStringValue())
	}
	return out
}

// rlsCall asks the rate-limit service as envoy.yaml's filter does (domain compose) and
// applies its answer as Envoy would: an OVER_LIMIT is a 429 with raw_body, the service's
// headers and Envoy's x-envoy-ratelimited; an OK adds the service's headers.
func rlsCall(t *testing.T, s *testServer, out *composeReply, endpoint, app string) {
	t.Helper()
	if endpoint == "" || app == "" {
		t.Fatalf("allowed Check without endpoint or app metadata: Envoy would send no descriptor")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := rlsv3.NewRateLimitServiceClient(s.conn).ShouldRateLimit(ctx, &rlsv3.RateLimitRequest{
		Domain: "compose",
		Descriptors: []*commonrl.RateLimitDescriptor{{Entries: []*commonrl.RateLimitDescriptor_Entry{
			{Key: "endpoint", Value: endpoint}, {Key: "app", Value: app}}}},
	})
	if err != nil {
		t.Fatalf("ShouldRateLimit: %v", err)
	}
	if resp.GetOverallCode() == rlsv3.RateLimitResponse_OVER_LIMIT {
		*out = composeReply{status: http.StatusTooManyRequests, body: string(resp.GetRawBody()),
			headers: map[string]string{"x-envoy-ratelimited": "true"}}
	}
	for _, h := range resp.GetResponseHeadersToAdd() {
		out.headers[strings.ToLower(h.GetKey())] = h.GetValue()
	}
}

// sameWindow reports whether every reply that names a reset names the same one.
func sameWindow(replies [][]composeReply) bool {
	reset := ""
	for _, rs := range replies {
		for _, r := range rs {
			v := r.headers["x-ratelimit-reset"]
			if v == "" {
				continue
			}
			if reset != "" && v != reset {
				return false
			}
			reset = v
		}
	}
	return true
}

// flushRedis empties the test's redis-server (FLUSHALL over RESP).
func flushRedis(t *testing.T, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("*1\r\n$8\r\nFLUSHALL\r\n")); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || line != "+OK\r\n" {
		t.Fatalf("FLUSHALL: %q %v", line, err)
	}
}

// checkStep compares what the client would receive with what the README shows.
func checkStep(t *testing.T, st composeStep, got []composeReply) {
	t.Helper()
	if st.codeOnly {
		var codes []int
		for _, r := range got {
			codes = append(codes, r.status)
		}
		if !slices.Equal(codes, st.codes) {
			t.Errorf("README %q shows %v, the server answers %v", st.line, st.codes, codes)
		}
		return
	}
	r := got[0]
	if r.status != st.status || http.StatusText(r.status) != st.reason {
		t.Errorf("README %q shows %d %s, the server answers %d (%s)", st.line, st.status, st.reason, r.status, r.body)
	}
	if r.body != "" && r.body != st.body {
		t.Errorf("README %q shows body\n%s\nthe server answers\n%s", st.line, st.body, r.body)
	}
	shown := map[string]bool{}
	for _, h := range st.headers {
		k, v, _ := strings.Cut(h, ": ")
		shown[k] = true
		checkShownHeader(t, st.line, k, v, r.headers)
	}
	for k := range r.headers {
		if !shown[k] {
			t.Errorf("README %q does not show the header %s: %s", st.line, k, r.headers[k])
		}
	}
	checkUpstream(t, st, r)
}

// variable headers differ from run to run: the README shows an example value.
var variableHeaders = map[string]bool{"x-ratelimit-reset": true, "retry-after": true}

func checkShownHeader(t *testing.T, line, k, v string, got map[string]string) {
	t.Helper()
	g, ok := got[k]
	switch {
	case !ok:
		t.Errorf("README %q shows %s: %s, which the client does not receive", line, k, v)
	case variableHeaders[k]:
		checkVariableHeader(t, line, k, v, g)
	case g != v:
		t.Errorf("README %q shows %s: %s, the client receives %q", line, k, v, g)
	}
}

// checkVariableHeader: both the README's example and the real value are whole seconds; the
// reset is at most a minute away, the wait between 1 and 60 seconds.
func checkVariableHeader(t *testing.T, line, k, shown, got string) {
	t.Helper()
	ex, err1 := strconv.ParseInt(shown, 10, 64)
	n, err2 := strconv.ParseInt(got, 10, 64)
	if err1 != nil || err2 != nil {
		t.Errorf("README %q: %s %q (shown) and %q (received) must both be whole seconds", line, k, shown, got)
		return
	}
	now := time.Now().Unix()
	switch {
	case k == "retry-after" && (ex < 1 || ex > 60 || n < 1 || n > 60):
		t.Errorf("README %q: retry-after %d shown, %d received: want 1..60 seconds (a one-minute window)", line, ex, n)
	case k == "x-ratelimit-reset" && (n < now-1 || n > now+61 || ex < 1_000_000_000):
		t.Errorf("README %q: x-ratelimit-reset %d shown, %d received at %d: want epoch seconds within the minute", line, ex, n, now)
	}
}

// checkUpstream: the x-gatehouse-* headers the echo API shows are those Gatehouse sets, and
// the app token the client sent never reaches the API.
func checkUpstream(t *testing.T, st composeStep, r composeReply) {
	t.Helper()
	if r.upstream == nil {
		return
	}
	if _, sent := st.req.headers["x-app-token"]; sent && !slices.Contains(r.removed, "x-app-token") {
		t.Errorf("README %q: the app token is not removed before the API (removed: %v)", st.line, r.removed)
	}
	if len(st.upstream) == 0 {
		return
	}
	var got []string
	for k, v := range r.upstream {
		got = append(got, k+": "+v)
	}
	slices.Sort(got)
	want := slices.Sorted(slices.Values(st.upstream))
	if !slices.Equal(got, want) {
		t.Errorf("README %q shows the API receiving %v, Gatehouse sets %v", st.line, want, got)
	}
}

// readmeSteps reads every curl to Envoy (localhost:8080) in the README's console blocks,
// with the output shown under it.
func readmeSteps(t *testing.T) []composeStep {
	t.Helper()
	raw, err := os.ReadFile(composeReadme)
	if err != nil {
		t.Fatal(err)
	}
	var steps []composeStep
	var block []string
	in := false
	for _, line := range strings.Split(string(raw), "\n") {
		switch {
		case !in && line == "```console":
			in, block = true, nil
		case in && line == "```":
			in = false
			steps = append(steps, consoleSteps(t, block)...)
		case in:
			block = append(block, line)
		}
	}
	return steps
}

// consoleSteps splits a console block into commands and their output.
func consoleSteps(t *testing.T, block []string) []composeStep {
	t.Helper()
	var steps []composeStep
	for i := 0; i < len(block); i++ {
		cmd, ok := strings.CutPrefix(block[i], "$ ")
		if !ok {
			continue
		}
		var out []string
		for i+1 < len(block) && !strings.HasPrefix(block[i+1], "$ ") {
			i++
			out = append(out, block[i])
		}
		if st, ok := parseCommand(t, cmd); ok {
			parseOutput(t, &st, out)
			steps = append(steps, st)
		}
	}
	return steps
}

var forLoop = regexp.MustCompile(`^for i in ([0-9 ]+); do (curl .+); done$`)

// parseCommand reads a curl command (or a for loop of one) into a request; other commands
// (cd, docker compose) are not requests.
func parseCommand(t *testing.T, line string) (composeStep, bool) {
	t.Helper()
	st := composeStep{line: line, times: 1}
	cmd := line
	if m := forLoop.FindStringSubmatch(line); m != nil {
		st.times, cmd = len(strings.Fields(m[1])), m[2]
	}
	args := shellWords(t, cmd)
	if len(args) == 0 || args[0] != "curl" {
		return st, false
	}
	st.req = request{method: "GET", headers: map[string]string{}}
	flags := map[string]string{}
	for i := 1; i < len(args); i++ {
		switch a := args[i]; a {
		case "-i", "-s":
			flags[a] = ""
		case "-H", "-X", "-o", "-w", "-d":
			if i+1 == len(args) {
				t.Fatalf("README %q: %s without a value", line, a)
			}
			i++
			if a == "-H" {
				k, v, _ := strings.Cut(args[i], ": ")
				st.req.headers[strings.ToLower(k)] = v
			}
			flags[a] = args[i]
		default:
			path, ok := strings.CutPrefix(a, "localhost:8080")
			if !ok || !strings.HasPrefix(path, "/") {
				t.Fatalf("README %q: %q is not a request to Envoy on localhost:8080 this test can replay", line, a)
			}
			st.req.path = path
		}
	}
	if m, ok := flags["-X"]; ok {
		st.req.method = m
	}
	st.req.body = flags["-d"]
	st.codeOnly = flags["-o"] == "/dev/null" && flags["-w"] == `%{http_code}\n`
	if _, i := flags["-i"]; !i && !st.codeOnly {
		t.Fatalf("README %q: want curl -i, or -o /dev/null -w '%%{http_code}\\n'", line)
	}
	return st, true
}

// shellWords splits a command line on spaces, keeping single-quoted words whole.
func shellWords(t *testing.T, s string) []string {
	t.Helper()
	var words []string
	var w strings.Builder
	quoted, inWord := false, false
	for _, c := range s {
		switch {
		case c == '\'':
			quoted, inWord = !quoted, true
		case c == ' ' && !quoted:
			if inWord {
				words = append(words, w.String())
				w.Reset()
			}
			inWord = false
		default:
			w.WriteRune(c)
			inWord = true
		}
	}
	if quoted {
		t.Fatalf("unbalanced quote in %q", s)
	}
	if inWord {
		words = append(words, w.String())
	}
	return words
}

var (
	statusLine   = regexp.MustCompile(`^HTTP/1\.1 ([0-9]{3}) (.+)$`)
	headerLine   = regexp.MustCompile(`^([a-z0-9-]+): (.+)$`)
	upstreamLine = regexp.MustCompile(`^\s*"(x-gatehouse-[a-z0-9-]+)": "([^"]*)",?$`)
)

// parseOutput reads what the README shows under a curl: status codes one per line, or a
// status line, headers ("…" for those left out), a blank line and a body.
func parseOutput(t *testing.T, st *composeStep, out []string) {
	t.Helper()
	if st.codeOnly {
		for _, l := range out {
			n, err := strconv.Atoi(l)
			if err != nil {
				t.Fatalf("README %q: output line %q is not a status code", st.line, l)
			}
			st.codes = append(st.codes, n)
		}
		return
	}
	m := statusLine.FindStringSubmatch(firstOr(out))
	if m == nil {
		t.Fatalf("README %q: output starts with %q, want a status line", st.line, firstOr(out))
	}
	st.status, _ = strconv.Atoi(m[1])
	st.reason = m[2]
	i := 1
	for ; i < len(out) && out[i] != ""; i++ {
		if out[i] == "…" {
			continue
		}
		if !headerLine.MatchString(out[i]) {
			t.Fatalf("README %q: %q is not a lower-case header line", st.line, out[i])
		}
		st.headers = append(st.headers, out[i])
	}
	body := out[min(i+1, len(out)):]
	if len(body) == 1 && strings.HasPrefix(body[0], "{") {
		st.body = body[0]
	}
	for _, l := range body {
		if m := upstreamLine.FindStringSubmatch(l); m != nil {
			st.upstream = append(st.upstream, m[1]+": "+m[2])
		}
	}
	if st.body == "" && len(st.upstream) == 0 && st.status != http.StatusOK {
		t.Fatalf("README %q: a denial must show its body", st.line)
	}
}

func firstOr(lines []string) string {
	if len(lines) == 0 {
		return ""
	}
	return lines[0]
}
