package ratelimit

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/ratelimit/internal/redistest"
	"github.com/gatehouse/gatehouse/ratelimit/state"
)

// collide returns b with a's digests: the two keys now look alike to any index built on
// the digest, as an attacker who found a collision of the digest would make them.
func collide(a, b Key) Key { return b.ForgeDigests(a) }

// TestCollidingKeysKeepTheirOwnCounters: two distinct keys whose digests collide never
// share a counter: the second one neither spends nor (with a refund) restores the first
// one's quota, in every store.
func TestCollidingKeysKeepTheirOwnCounters(t *testing.T) {
	for _, st := range isolationStores(t) {
		t.Run(st.name, func(t *testing.T) {
			ctx := context.Background()
			exp := t0.Add(time.Minute).UnixNano()
			victim := NewKey("app/a/window#w1", "a", t0.Unix(), "victim-device")
			attacker := collide(victim, NewKey("app/a/window#w1", "a", t0.Unix(), "attacker-device"))
			counter := func(k Key, cost int64) Op {
				return Op{Key: k, Kind: KindCounter, Limit: 2, Cost: cost, Expire: exp, Exact: true}
			}
			out := make([]Outcome, 1)
			apply := func(op Op) Outcome {
				t.Helper()
				if err := st.s.Apply(ctx, t0, []Op{op}, out); err != nil {
					t.Fatal(err)
				}
				return out[0]
			}
			if o := apply(counter(victim, 2)); !o.Allowed || o.Value != 2 {
				t.Fatalf("victim spends its quota: %+v", o)
			}
			if o := apply(counter(attacker, 1)); !o.Allowed || o.Value != 1 {
				t.Fatalf("attacker's first request: %+v, want allowed with its own count 1", o)
			}
			apply(counter(attacker, -2)) // a refund on the attacker's key
			if o := apply(counter(victim, 1)); o.Allowed {
				t.Fatalf("victim after the attacker's refund: %+v, want refused (2 of 2 spent)", o)
			}
			if o := apply(counter(attacker, 2)); !o.Allowed || o.Value != 2 {
				t.Fatalf("attacker after its refund: %+v, want allowed at 2", o)
			}
			// GCRA buckets: the attacker's bucket is not the victim's.
			gv := NewKey("app/a/bucket#g1", "a", 0, "victim-device")
			ga := collide(gv, NewKey("app/a/bucket#g1", "a", 0, "attacker-device"))
			bucket := func(k Key) Op {
				return Op{Key: k, Kind: KindGCRA, Limit: 1, Cost: 1, Interval: int64(time.Minute)}
			}
			if o := apply(bucket(gv)); !o.Allowed {
				t.Fatalf("victim's bucket: %+v", o)
			}
			if o := apply(bucket(ga)); !o.Allowed {
				t.Fatalf("attacker's bucket refused: it shares the victim's (%+v)", o)
			}
			// Busy counters (Redis leases units of those): 50 each, then the victim
			// still has its other 50.
			lv := NewKey("app/a/busy#w1", "a", t0.Unix(), "victim-device")
			la := collide(lv, NewKey("app/a/busy#w1", "a", t0.Unix(), "attacker-device"))
			busy := func(k Key) Op {
				return Op{Key: k, Kind: KindCounter, Limit: 100, Cost: 1, Expire: exp}
			}
			for i := 0; i < 50; i++ {
				apply(busy(lv))
				if o := apply(busy(la)); !o.Allowed {
					t.Fatalf("attacker's busy request %d refused", i+1)
				}
			}
			for i := 0; i < 50; i++ {
				if o := apply(busy(lv)); !o.Allowed {
					t.Fatalf("victim's busy request %d refused: the attacker spent its units", 51+i)
				}
			}
			if o := apply(busy(lv)); o.Allowed {
				t.Fatal("victim's request 101 admitted")
			}
		})
	}
}

type isolationStore struct {
	name string
	s    Store
}

// isolationStores are the stores every isolation test runs on: memory, Redis (native
// counters and scripts) and a one-node Redis Cluster.
func isolationStores(t *testing.T) []isolationStore {
	t.Helper()
	p := redistest.Start(t)
	cl := redistest.StartCluster(t)
	return []isolationStore{
		{"memory", memStore(t, MemoryConfig{}, nil)},
		{"redis-native", openTestRedis(t, RedisConfig{Addrs: []string{p.Addr()}, KeyPrefix: "n:"}, nil)},
		{"redis-script", openTestRedis(t, RedisConfig{Addrs: []string{p.Addr()}, KeyPrefix: "s:", Counters: "script"}, nil)},
		{"redis-cluster", openTestRedis(t, RedisConfig{Mode: "cluster", Addrs: []string{cl.Addr()}}, nil)},
	}
}

// startCluster starts a one-node Redis Cluster that serves every slot.
// waitTick yields between polls of an external process's state (no fixed wait: polling
// a condition, bounded by the caller's attempt count).
func waitTick() { time.Sleep(5 * time.Millisecond) }

// TestRLSKeysAreInjective: descriptor lists that differ never share a counter, whatever
// separators (":", "%", "{", "}", NUL, newlines) their values hold and however many
// entries they have (past six, entries fold into one part), in every store.
func TestRLSKeysAreInjective(t *testing.T) {
	a5 := []string{"k", "a", "k", "a", "k", "a", "k", "a", "k", "a"}
	kv := func(pairs ...string) []RLSEntry {
		var es []RLSEntry
		for i := 0; i+1 < len(pairs); i += 2 {
			es = append(es, RLSEntry{pairs[i], pairs[i+1]})
		}
		return es
	}
	with := func(tail ...string) []string { return append(append([]string{}, a5...), tail...) }
	rows := []struct {
		name string
		a, b []RLSEntry
	}{
		{"folded tail vs NUL in a value", kv(with("k", "x", "k", "y")...), kv(with("k", "x\x001:ky")...)},
		{"folded tail vs length prefixes in a value", kv(with("k", "x", "k", "y")...), kv(with("k", "x1:k1:ky")...)},
		{"folded tail vs escape marker", kv(with("k", "x", "k", "y")...), kv(with("k", "%F1:kx1:ky")...)},
		{"two entries vs a colon", kv("k", "a", "k", "b"), kv("k", "a:1:kb")},
		{"two entries vs a newline", kv("k", "a", "k", "b"), kv("k", "a\nb")},
		{"trailing NUL", kv("k", "a"), kv("k", "a\x00")},
		{"hash tag in a value", kv("k", "x"), kv("k", "{d}x")},
		{"escaped vs raw braces", kv("k", "%7Bd%7D"), kv("k", "{d}")},
		{"escaped vs raw colon", kv("k", "a%3Ab"), kv("k", "a:b")},
		{"key/value boundary", kv("kk", "v"), kv("k", "kv")},
		{"eight vs seven entries", kv(with("k", "x", "k", "y", "k", "z")...), kv(with("k", "x", "k", "y\x001:kz")...)},
	}
	in := CompileInput{RLS: RLSConfig{Domains: []DomainConfig{injectiveDomain("d")}}}
	for _, st := range isolationStores(t) {
		t.Run(st.name, func(t *testing.T) {
			e := mustCompile(t, in, st.s)
			ctx := context.Background()
			for i, r := range rows {
				now := t0.Add(time.Duration(i) * time.Minute) // a window of its own
				call := func(es []RLSEntry) bool {
					res, err := e.ShouldRateLimit(ctx, now, RLSRequest{Domain: "d", Descriptors: []RLSDescriptor{{Entries: es}}})
					if err != nil {
						t.Fatal(err)
					}
					if res.Statuses[0].Limit == nil {
						t.Fatalf("%s: no limit matched %q", r.name, es)
					}
					return !res.OverLimit
				}
				if !call(r.a) || call(r.a) {
					t.Fatalf("%s: the first list does not count 1 per minute", r.name)
				}
				if !call(r.b) {
					t.Fatalf("%s: %q is refused: it shares the counter of %q", r.name, r.b, r.a)
				}
			}
		})
	}
}

// injectiveDomain matches any list of up to eight entries of key k (and one of key kk)
// with the same limit, 1 per minute, so that every list counts under one rule.
func injectiveDomain(name string) DomainConfig {
	limit := &RateLimitConfig{Unit: "minute", RequestsPerUnit: 1}
	var level []DescriptorConfig
	for i := 0; i < 8; i++ {
		level = []DescriptorConfig{{Key: "k", RateLimit: limit, Descriptors: level}}
	}
	return DomainConfig{Domain: name, Descriptors: append(level, DescriptorConfig{Key: "kk", RateLimit: limit})}
}

// TestRedisHashTagsStayInTheirSlot: braces in a client's value never move a key out of
// its request's slot (the domain's hash tag), in cluster mode.
func TestRedisHashTagsStayInTheirSlot(t *testing.T) {
	cl := redistest.StartCluster(t)
	want, err := cl.Query("CLUSTER", "KEYSLOT", "{d}")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"{x}", "}{x}", "{}", "a{b}c", "%7Bx%7D", "{x", "x}"} {
		k := NewKey("rls/d#w1", "d", 1, "1:k"+v)
		got, err := cl.Query("CLUSTER", "KEYSLOT", k.Render("gh:", true))
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("value %q: key %q in slot %s, the domain's is %s", v, k.Render("gh:", true), got, want)
		}
	}
}

// TestDescriptorKeyFoldsLikeAdd: the key of a descriptor with more entries than a key has
// parts, folded in one buffer, is the key Key.add builds entry by entry.
func TestDescriptorKeyFoldsLikeAdd(t *testing.T) {
	for n := 1; n <= 16; n++ {
		var es []RLSEntry
		for j := 0; j < n; j++ {
			es = append(es, RLSEntry{Key: "key" + strings.Repeat("k", j), Value: "v:\x00" + strings.Repeat("x", 3*j)})
		}
		got := Key{ID: "rls/d#w1"}
		descriptorKey(&got, es, nil, 0)
		got.Seal()
		want := Key{ID: "rls/d#w1"}
		for _, en := range es {
			want.Add(fmt.Sprintf("%d:%s%s", len(en.Key), en.Key, en.Value))
		}
		want.Seal()
		if !state.SameKey(&got, &want) || got.Identity() != want.Identity() || got.Render("p:", false) != want.Render("p:", false) {
			t.Fatalf("%d entries: %q, want %q", n, got.Render("p:", false), want.Render("p:", false))
		}
	}
}
