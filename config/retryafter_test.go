package config

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
)

// retrySeq makes app names unique within the process: counters outlive snapshots.
var retrySeq atomic.Int64

// TestRetryAfterOfTheLongestRefusal: when several limits refuse one request, the client is
// told the wait after which a retry can pass (the longest), with the X-RateLimit state of
// that limit; when only one refuses, that one's. Expected values are typed by hand from
// the fixed windows: t0 is a whole hour, the second request comes 10 s later. Each run
// has its own app, so that counters never carry over.
func TestRetryAfterOfTheLongestRefusal(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0) // 500000 whole hours since the epoch
	sum := sha256.Sum256([]byte("tok"))
	tokHash := hex.EncodeToString(sum[:])
	minute := `{name: per_minute, key: [app], requests: 1, per: 1m}`
	for _, tc := range []struct {
		name       string
		limits     string
		want       policy.Code
		retryAfter time.Duration
		limit      string
		reset      time.Time
	}{
		{"minute_then_hour", minute + `, {name: per_hour, key: [app], requests: 1, per: 1h}`,
			policy.RateLimited, 3590 * time.Second, "per_hour", t0.Add(time.Hour)},
		{"hour_then_minute", `{name: per_hour, key: [app], requests: 1, per: 1h}, ` + minute,
			policy.RateLimited, 3590 * time.Second, "per_hour", t0.Add(time.Hour)},
		{"only_minute_refuses", minute + `, {name: per_hour, key: [app], requests: 5, per: 1h}`,
			policy.RateLimited, 50 * time.Second, "per_minute", t0.Add(time.Minute)},
		{"only_hour_refuses", `{name: per_hour, key: [app], requests: 1, per: 1h}, {name: per_minute, key: [app], requests: 5, per: 1m}`,
			policy.RateLimited, 3590 * time.Second, "per_hour", t0.Add(time.Hour)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			yaml := `
apps:
  - {name: ` + tc.name + `-` + strconv.FormatInt(retrySeq.Add(1), 10) + `, app_token_sha256: [` + tokHash + `], endpoints: ["*"]}
endpoints:
  - {name: e, path: /e, limits: [` + tc.limits + `]}
`
			snap, err := LoadBytes([]byte(yaml), "retry.yaml", testDeps())
			if err != nil {
				t.Fatal(err)
			}
			in := &policy.Input{Method: "GET", Path: "/e", Source: netip.MustParseAddr("192.0.2.1"),
				Headers: map[string]string{"x-app-token": "tok"}}
			if d := snap.Rules.Decide(context.Background(), t0, in); !d.Allowed() {
				t.Fatalf("first request: %s", d.Code)
			}
			d := snap.Rules.Decide(context.Background(), t0.Add(10*time.Second), in)
			if d.Allowed() || d.Code != tc.want {
				t.Fatalf("second request: outcome %d code %s, want %s", d.Outcome, d.Code, tc.want)
			}
			rl := d.RateLimit
			if d.RetryAfter != tc.retryAfter || rl.Name != tc.limit || !rl.Reset.Equal(tc.reset) || rl.Remaining != 0 {
				t.Fatalf("retry-after %v limit %q reset %v remaining %d; want %v %q %v 0",
					d.RetryAfter, rl.Name, rl.Reset, rl.Remaining, tc.retryAfter, tc.limit, tc.reset)
			}
		})
	}
}
