package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// --attest: the request shape of the embedded demo configuration's attested endpoint.
const (
	attestHeader   = "x-attestation-token"
	attestPath     = "/v1/secure"
	attestEndpoint = "secure"
)

// attestTTL is the lifetime asked of the tokens: the whole run (every measurement of every
// target, plus start-up) with margin, at least demo-token's default 10m, at most its 24h.
// The demo configuration refuses tokens older than its max_age (1h) whatever their exp.
func attestTTL(c *runConfig) time.Duration {
	targets := 2 // noop and gatehouse
	if c.hasVariant() {
		targets++
	}
	d := time.Duration(len(c.concurrency)*c.rounds*targets)*(c.warmup+c.duration) + 5*time.Minute
	return min(max(d, 10*time.Minute), 24*time.Hour).Round(time.Second)
}

// mintTokens runs "BIN demo-token --count n --ttl ttl" and returns the device ids and
// tokens it printed, one "DEVICE<TAB>TOKEN" line each.
func mintTokens(ctx context.Context, bin string, n int, ttl time.Duration, stderr io.Writer) (ids, toks []string, err error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "demo-token", "--count", strconv.Itoa(n), "--ttl", ttl.String())
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		fmt.Fprint(stderr, errb.String())
		return nil, nil, fmt.Errorf("--attest: %s: %w", strings.Join(cmd.Args, " "), err)
	}
	return parseTokens(&out, n)
}

// parseTokens reads demo-token --count output: exactly n "DEVICE<TAB>TOKEN" lines.
func parseTokens(r io.Reader, n int) (ids, toks []string, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		id, tok, ok := strings.Cut(sc.Text(), "\t")
		if !ok || id == "" || tok == "" || strings.Count(tok, ".") != 2 {
			return nil, nil, fmt.Errorf("--attest: demo-token output line %d is not DEVICE<TAB>TOKEN (is the gatehouse binary older than demo-token --count?)", line)
		}
		ids, toks = append(ids, id), append(toks, tok)
	}
	if err := sc.Err(); err != nil {
		return nil, nil, err
	}
	if len(toks) != n {
		return nil, nil, fmt.Errorf("--attest: demo-token printed %d tokens, want %d", len(toks), n)
	}
	if len(toks) == 0 {
		return nil, nil, errors.New("--attest: demo-token printed no tokens")
	}
	return ids, toks, nil
}
