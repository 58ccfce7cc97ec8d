package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// printCacheMetrics prints every gatehouse_cache_* sample of t's /metrics and a hit ratio
// for each pair of metrics whose names differ only in "hits"/"misses" (same labels).
// The counters are cumulative over the whole run (warmups and every round).
// printExchangeMetrics prints Gatehouse's response-phase stream counters, which tell whether
// the streams of an extproc run were processed (pass, replace) or skipped.
func printExchangeMetrics(ctx context.Context, w io.Writer, t *target) {
	url := "http://" + t.adminAddr + "/metrics"
	fmt.Fprintf(w, "\n== %s %s: gatehouse_response_exchanges_total (cumulative over the run) ==\n", t.name, url)
	lines, err := fetchMetrics(ctx, url, "gatehouse_response_exchanges_total")
	if err != nil {
		fmt.Fprintf(w, "metrics unavailable: %v\n", err)
		return
	}
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
}

func printCacheMetrics(ctx context.Context, w io.Writer, t *target) {
	url := "http://" + t.adminAddr + "/metrics"
	fmt.Fprintf(w, "\n== %s %s: gatehouse_cache_* (cumulative over the run) ==\n", t.name, url)
	lines, err := fetchMetrics(ctx, url, "gatehouse_cache_")
	if err != nil {
		fmt.Fprintf(w, "metrics unavailable: %v\n", err)
		return
	}
	if len(lines) == 0 {
		fmt.Fprintln(w, "(no gatehouse_cache_ samples)")
		return
	}
	type pair struct {
		hits, misses float64
		hasH, hasM   bool
	}
	pairs := map[string]*pair{}
	for _, l := range lines {
		fmt.Fprintln(w, l)
		name, labels, val, ok := parseSample(l)
		if !ok {
			continue
		}
		for _, kind := range []string{"hits", "misses", "hit", "miss"} {
			i := strings.LastIndex(name, "_"+kind)
			if i < 0 || (i+1+len(kind) < len(name) && name[i+1+len(kind)] != '_') {
				continue
			}
			key := name[:i] + "_*" + name[i+1+len(kind):] + labels
			p := pairs[key]
			if p == nil {
				p = &pair{}
				pairs[key] = p
			}
			if strings.HasPrefix(kind, "hit") {
				p.hits, p.hasH = val, true
			} else {
				p.misses, p.hasM = val, true
			}
			break
		}
	}
	keys := make([]string, 0, len(pairs))
	for k := range pairs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p := pairs[k]
		if !p.hasH || !p.hasM || p.hits+p.misses == 0 {
			continue
		}
		fmt.Fprintf(w, "hit ratio %s: %.4f (hits %.0f, misses %.0f)\n", k, p.hits/(p.hits+p.misses), p.hits, p.misses)
	}
}

func fetchMetrics(ctx context.Context, url, prefix string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	var out []string
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 64<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if l := sc.Text(); strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out, sc.Err()
}

// parseSample splits a Prometheus text sample "name{labels} value [ts]".
func parseSample(l string) (name, labels string, val float64, ok bool) {
	rest := l
	if i := strings.IndexByte(l, '{'); i >= 0 {
		j := strings.LastIndexByte(l, '}')
		if j < i {
			return "", "", 0, false
		}
		name, labels, rest = l[:i], l[i:j+1], l[j+1:]
	} else {
		f := strings.Fields(l)
		if len(f) < 2 {
			return "", "", 0, false
		}
		name, rest = f[0], strings.Join(f[1:], " ")
	}
	f := strings.Fields(rest)
	if len(f) < 1 {
		return "", "", 0, false
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return "", "", 0, false
	}
	return name, labels, v, true
}
