package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/extauthz"
	"github.com/gatehouse/gatehouse/policy"
)

// loadOffline compiles a configuration the way a reload does, without network fetches.
// With missingOK, referenced files that are absent are warnings (validate --offline).
func loadOffline(path string, missingOK bool) (*config.Snapshot, func(), error) {
	rt, closeRT, err := offlineRuntime()
	if err != nil {
		return nil, nil, err
	}
	deps := config.Deps{Offline: true, MissingFilesOK: missingOK, Keys: config.NewKeySources(), Runtime: rt}
	cleanup := func() { deps.Keys.Close(); closeRT() }
	var snap *config.Snapshot
	if path == "" {
		snap, err = config.LoadBytes(config.Demo, config.DemoPath, deps)
	} else {
		snap, err = config.Load(path, deps)
	}
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	return snap, cleanup, nil
}

func validate(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("validate", "validate [--offline] --config FILE\n\nChecks a configuration the way a reload does; exits 1 with every problem.")
	path := fs.String("config", "", "configuration file to check (required)")
	offline := fs.Bool("offline", false, "for CI without the mounted secrets: a referenced file that is absent is a warning, and everything else is checked strictly")
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	if *path == "" {
		fmt.Fprintln(stderr, "gatehouse validate: --config is required")
		return exitError(2)
	}
	snap, cleanup, err := loadOffline(*path, *offline)
	if err != nil {
		fmt.Fprintf(stderr, "%s: invalid configuration:\n", *path)
		var errs config.Errors
		if errors.As(err, &errs) {
			for _, e := range errs {
				fmt.Fprintf(stderr, "  %v\n", e)
			}
		} else {
			fmt.Fprintf(stderr, "  %v\n", err)
		}
		return exitError(1)
	}
	defer cleanup()
	for _, w := range snap.Warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	if len(snap.Warnings) > 0 {
		fmt.Fprintf(stderr, "%d referenced files were not present and not checked\n", len(snap.Warnings))
	}
	fmt.Fprintf(stdout, "%s: OK (version %s, %d apps, %d endpoints)\n", *path, snap.Version, len(snap.File.Apps), len(snap.File.Endpoints))
	return nil
}

func hash(stdin io.Reader, stdout io.Writer) error {
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return errors.New("hash: no credential on stdin (example: printf %s \"$TOKEN\" | gatehouse hash)")
	}
	sum := sha256.Sum256([]byte(line))
	fmt.Fprintln(stdout, hex.EncodeToString(sum[:]))
	return nil
}

type headerFlags []string

func (h *headerFlags) String() string     { return strings.Join(*h, ", ") }
func (h *headerFlags) Set(v string) error { *h = append(*h, v); return nil }

// check explains one request offline: it builds the CheckRequest Envoy would send, runs
// the pipeline and prints exactly what the client would receive.
func check(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("check", "check [--config FILE] [-X METHOD] [-H 'name: value']... [-d BODY] PATH\n\nExplains one request offline: decision, code, status, headers and body.")
	path := fs.String("config", "", "configuration file (default: the embedded demo)")
	method := fs.String("X", "GET", "HTTP method")
	body := fs.String("d", "", "request body (sent as Envoy's with_request_body would)")
	source := fs.String("source", "127.0.0.1", "client address as Envoy sees it")
	var headers, exts headerFlags
	fs.Var(&headers, "H", "request header 'name: value' (repeatable)")
	fs.Var(&exts, "ext", "context extension key=value, as set per route in Envoy (repeatable)")
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "gatehouse check: exactly one request path is required, e.g. /v1/hello")
		return exitError(2)
	}
	req, err := checkRequest(*method, fs.Arg(0), *body, *source, headers, exts)
	if err != nil {
		fmt.Fprintln(stderr, "gatehouse check:", err)
		return exitError(2)
	}
	snap, cleanup, err := loadOffline(*path, false)
	if err != nil {
		fmt.Fprintf(stderr, "invalid configuration:\n%v\n", err)
		return exitError(1)
	}
	defer cleanup()
	in := extauthz.ToInput(req)
	d := snap.Rules.Decide(ctx, time.Now(), &in)
	printDecision(stdout, &d)
	return nil
}

func checkRequest(method, target, body, source string, headers, exts []string) (*authv3.CheckRequest, error) {
	h := map[string]string{":method": strings.ToUpper(method), ":path": target, ":authority": "localhost", ":scheme": "https"}
	for _, kv := range headers {
		k, v, ok := strings.Cut(kv, ":")
		if !ok {
			return nil, fmt.Errorf("header %q is not 'name: value'", kv)
		}
		k = strings.ToLower(strings.TrimSpace(k))
		v = strings.TrimSpace(v)
		if old, dup := h[k]; dup {
			v = old + "," + v // as Envoy merges repeated headers
		}
		h[k] = v
	}
	ext := map[string]string{}
	for _, kv := range exts {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("context extension %q is not key=value", kv)
		}
		ext[k] = v
	}
	hr := &authv3.AttributeContext_HttpRequest{Id: "gatehouse-check", Method: h[":method"], Path: target, Host: "localhost",
		Scheme: "https", Protocol: "HTTP/1.1", Headers: h, Size: int64(len(body)), Body: body}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:            &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: source, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 40000}}}}},
		Request:           &authv3.AttributeContext_Request{Http: hr},
		ContextExtensions: ext,
	}}, nil
}

func printDecision(w io.Writer, d *policy.Decision) {
	if d.Outcome == policy.Undecided {
		fmt.Fprintf(w, "decision: error (could not decide at step %s: %s)\nEnvoy applies its failure_mode_allow.\n", d.Step, d.Cause)
		return
	}
	resp := extauthz.ToResponse(d, "check")
	if ok := resp.GetOkResponse(); ok != nil {
		fmt.Fprintf(w, "decision: allow\napp:      %s\nendpoint: %s\n", d.App, d.Endpoint)
		if d.FailOpen {
			fmt.Fprintf(w, "fail-open: %s\n", d.Cause)
		}
		fmt.Fprintln(w, "upstream request headers set:")
		printHeaders(w, ok.GetHeaders())
		if len(ok.GetHeadersToRemove()) > 0 {
			fmt.Fprintf(w, "upstream request headers removed: %s\n", strings.Join(ok.GetHeadersToRemove(), ", "))
		}
		if len(ok.GetResponseHeadersToAdd()) > 0 {
			fmt.Fprintln(w, "client response headers added:")
			printHeaders(w, ok.GetResponseHeadersToAdd())
		}
		return
	}
	den := resp.GetDeniedResponse()
	fmt.Fprintf(w, "decision: deny\ncode:     %s (step %s)\n", d.Code, d.Step)
	if d.Cause != "" {
		fmt.Fprintf(w, "cause:    %s\n", d.Cause)
	}
	fmt.Fprintf(w, "\nHTTP/1.1 %d\n", den.GetStatus().GetCode())
	printHeaders(w, den.GetHeaders())
	fmt.Fprintf(w, "\n%s\n", den.GetBody())
}

func printHeaders(w io.Writer, hs []*corev3.HeaderValueOption) {
	lines := make([]string, 0, len(hs))
	for _, h := range hs {
		lines = append(lines, fmt.Sprintf("  %s: %s", h.GetHeader().GetKey(), h.GetHeader().GetValue()))
	}
	sort.Strings(lines)
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
}
