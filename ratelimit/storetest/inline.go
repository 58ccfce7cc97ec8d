package storetest

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/ratelimit"
)

// bucketModel is a token bucket as the GCRA defines it, written out here: tat is the
// theoretical arrival time (unix ns, 0 for a bucket never used). A request of cost
// tokens fits when, starting from the later of tat and now, cost emission intervals
// end no more than burst intervals after now.
type bucketModel map[string]int64

func (b bucketModel) fits(name string, now, cost, interval, burst int64) (next int64, ok bool) {
	start := max(b[name], now)
	next = start + cost*interval
	return next, cost <= burst && next-now <= burst*interval
}

// tokens is how many whole tokens a bucket whose TAT is tat holds at now: what a
// client is told (a TAT a store reports for a bucket it found full may be any time not
// after now).
func tokens(tat, now, interval, burst int64) int64 {
	return min(max((now+burst*interval-tat)/interval, 0), burst)
}

// inlineLimit is one limit of an inline request: a device bucket, or a counter whose
// window is the one containing now (an hour, a calendar month, or none for credits).
type inlineLimit struct {
	name     string
	bucket   bool
	limit    int64 // counter: units per window; bucket: burst
	interval time.Duration
	window   func(now time.Time) (start, end time.Time) // counters; nil: credits, never expire
	shadow   bool
}

// month is the calendar month containing now in loc: its start and the next one's.
func month(loc *time.Location) func(time.Time) (time.Time, time.Time) {
	return func(now time.Time) (time.Time, time.Time) {
		l := now.In(loc)
		start := time.Date(l.Year(), l.Month(), 1, 0, 0, 0, 0, loc)
		return start, start.AddDate(0, 1, 0)
	}
}

func minute(now time.Time) (time.Time, time.Time) {
	s := now.Truncate(time.Minute)
	return s, s.Add(time.Minute)
}

// randomInline replays random inline requests (an app's limits: a device's token bucket,
// an IP's minute window, a calendar month, prepaid credits, a minute window in shadow
// mode, in the shapes the engine sends) and checks every verdict, count and bucket
// against the models: all or nothing, so a request one enforcing limit refuses takes
// nothing of the others. An op the store reports Unknown (it answered without looking,
// the request being refused by another op) is checked for that only.
func randomInline(t *testing.T, open Open) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	device := inlineLimit{name: "device", bucket: true, limit: 8, interval: 200 * time.Millisecond}
	counters := []inlineLimit{
		{name: "ip", limit: 20, window: minute},
		{name: "month", limit: 150, window: month(ny)},
		{name: "credits", limit: 120},
		{name: "shadow", limit: 3, window: minute, shadow: true},
	}
	for _, tc := range []struct {
		name   string
		limits []inlineLimit
	}{
		{"bucket and counters", append([]inlineLimit{device}, counters...)},
		{"counters", counters},
		{"bucket alone", []inlineLimit{{name: "tight", bucket: true, limit: 3, interval: 500 * time.Millisecond}}},
		{"bucket alone in shadow mode", []inlineLimit{{name: "tight", bucket: true, limit: 3, interval: 500 * time.Millisecond, shadow: true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := newClock()
			s := open(t, clock.Now)
			refused := replayInline(t, s, clock.Set, tc.limits)
			if shadowOnly := len(tc.limits) == 1 && tc.limits[0].shadow; refused == 0 && !shadowOnly {
				t.Fatal("no request was refused: the sequence does not exercise refusals")
			}
		})
	}
}

// replayInline sends 400 random requests on limits to s and returns how many were refused.
func replayInline(t *testing.T, s ratelimit.Store, set func(time.Time), limits []inlineLimit) (refused int) {
	rng := rand.New(rand.NewPCG(1, 2))
	// A minute before January ends in New York (05:00 UTC): the run (about 80 s) crosses
	// the month's end and minutes'.
	now := time.Date(2025, 2, 1, 4, 59, 0, 0, time.UTC)
	counts, buckets := model{}, bucketModel{}
	for step := 0; step < 400; step++ {
		now = now.Add(time.Duration(rng.IntN(400)) * time.Millisecond)
		set(now)
		dev, ip, cost := fmt.Sprint("d", rng.IntN(3)), fmt.Sprint("ip", rng.IntN(2)), int64(1+rng.IntN(2))
		ops, names := inlineOps(limits, now, dev, ip, cost)
		want, nexts, commit := expectInline(limits, ops, names, counts, buckets, now.UnixNano())
		got := apply(t, s, now, ops...)
		for i, l := range limits {
			g, w := got[i], want[i]
			switch {
			case g.Unknown && commit:
				t.Fatalf("step %d, %s: Unknown for an admitted request", step, l.name)
			case g.Unknown:
			case g.Allowed != w.Allowed:
				t.Fatalf("step %d (%s, %s, cost %d), %s: allowed %v, want %v", step, dev, ip, cost, l.name, g.Allowed, w.Allowed)
			case l.bucket && tokens(g.Value, now.UnixNano(), int64(l.interval), l.limit) != tokens(w.Value, now.UnixNano(), int64(l.interval), l.limit):
				t.Fatalf("step %d (%s, cost %d), %s: TAT now%+v, want now%+v", step, dev, cost, l.name,
					time.Duration(g.Value-now.UnixNano()), time.Duration(w.Value-now.UnixNano()))
			case !l.bucket && g.Value != w.Value:
				t.Fatalf("step %d (%s, %s, cost %d), %s: count %d, want %d", step, dev, ip, cost, l.name, g.Value, w.Value)
			}
		}
		for name, tat := range nexts {
			buckets[name] = tat
		}
		if !commit {
			refused++
		}
	}
	return refused
}

// inlineOps builds a request's ops on limits, and the model's name of each op's value.
func inlineOps(limits []inlineLimit, now time.Time, dev, ip string, cost int64) ([]ratelimit.Op, []string) {
	var ops []ratelimit.Op
	var names []string
	for _, l := range limits {
		op := ratelimit.Op{Kind: ratelimit.KindCounter, Limit: l.limit, Cost: cost, Shadow: l.shadow}
		subject := ip
		switch {
		case l.bucket:
			subject = dev
			op.Kind, op.Interval = ratelimit.KindGCRA, int64(l.interval)
			op.Key = ratelimit.NewKey(l.name, "suite", 0, subject)
		case l.window == nil: // credits
			subject = "L"
			op.Key, op.Persist = ratelimit.NewKey(l.name, "suite", 0, subject), true
		default:
			start, end := l.window(now)
			op.Key = ratelimit.NewKey(l.name, "suite", start.UnixNano(), subject)
			op.Expire, op.Persist = end.UnixNano(), l.name == "month"
		}
		ops = append(ops, op)
		names = append(names, fmt.Sprint(l.name, "/", subject, "@", op.Key.Window))
	}
	return ops, names
}

// expectInline returns the outcomes a store must report for ops, the buckets' TATs to
// record, and whether the request was admitted; it commits the counters to counts.
func expectInline(limits []inlineLimit, ops []ratelimit.Op, names []string, counts model, buckets bucketModel, ns int64) ([]ratelimit.Outcome, map[string]int64, bool) {
	want := make([]ratelimit.Outcome, len(ops))
	next := make([]int64, len(ops))
	commit := true
	for i, op := range ops {
		if limits[i].bucket {
			next[i], want[i].Allowed = buckets.fits(names[i], ns, op.Cost, op.Interval, op.Limit)
		} else {
			next[i] = counts[names[i]] + op.Cost
			want[i].Allowed = next[i] <= op.Limit
		}
		commit = commit && (want[i].Allowed || op.Shadow)
	}
	nexts := map[string]int64{}
	for i := range ops {
		keep := want[i].Allowed && commit
		switch {
		case limits[i].bucket && keep:
			nexts[names[i]], want[i].Value = next[i], next[i]
		case limits[i].bucket:
			want[i].Value = buckets[names[i]]
		case keep:
			counts[names[i]], want[i].Value = next[i], next[i]
		default:
			want[i].Value = counts[names[i]]
		}
	}
	return want, nexts, commit
}
