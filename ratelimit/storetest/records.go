package storetest

// The contract of ratelimit.Records, checked against hand-typed expectations.

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/ratelimit"
)

// RecordsOptions says what a store's clock lets the records suite check.
type RecordsOptions struct {
	// ExactExpiry: the store expires a record at exactly the call's now plus its ttl (the
	// memory store). A store that keeps time itself (Redis: its own clock, in
	// milliseconds) skips those cases and checks its expiries in its own tests.
	ExactExpiry bool
}

// RunRecords runs the records suite against the stores open makes, which must implement
// ratelimit.Records.
func RunRecords(t *testing.T, open Open, opt RecordsOptions) {
	rs := func(t *testing.T, clock ratelimit.Clock) ratelimit.Records {
		s := open(t, clock)
		r, ok := s.(ratelimit.Records)
		if !ok {
			t.Fatalf("%T does not implement ratelimit.Records", s)
		}
		return r
	}
	t.Run("create and get", func(t *testing.T) { recordsCreate(t, rs(t, newClock().Now)) })
	t.Run("swap", func(t *testing.T) { recordsSwap(t, rs(t, newClock().Now)) })
	t.Run("take", func(t *testing.T) { recordsTake(t, rs(t, newClock().Now)) })
	t.Run("bounds", func(t *testing.T) { recordsBounds(t, rs(t, newClock().Now)) })
	t.Run("keys stored exactly", func(t *testing.T) { recordsKeys(t, rs(t, newClock().Now)) })
	t.Run("values are copies", func(t *testing.T) { recordsCopies(t, rs(t, newClock().Now)) })
	t.Run("concurrent take", func(t *testing.T) { recordsRaceTake(t, rs(t, newClock().Now)) })
	t.Run("concurrent create", func(t *testing.T) { recordsRaceCreate(t, rs(t, newClock().Now)) })
	t.Run("concurrent swap", func(t *testing.T) { recordsRaceSwap(t, rs(t, newClock().Now)) })
	if opt.ExactExpiry {
		t.Run("expiry", func(t *testing.T) { recordsExpiry(t, rs(t, newClock().Now)) })
	}
}

var bg = context.Background()

// getIs checks that key holds want (nil: no record).
func getIs(t *testing.T, r ratelimit.Records, now time.Time, key string, want []byte) {
	t.Helper()
	v, ok, err := r.Get(bg, now, key)
	if err != nil {
		t.Fatalf("get %q: %v", key, err)
	}
	if want == nil {
		if ok {
			t.Fatalf("get %q = %q, want no record", key, v)
		}
		return
	}
	if !ok || !bytes.Equal(v, want) || v == nil {
		t.Fatalf("get %q = %q %v, want %q", key, v, ok, want)
	}
}

func mustCreate(t *testing.T, r ratelimit.Records, now time.Time, key string, val []byte, ttl time.Duration) {
	t.Helper()
	if held, created, err := r.Create(bg, now, key, val, ttl); err != nil || !created || held != nil {
		t.Fatalf("create %q = %q %v %v, want created", key, held, created, err)
	}
}

func recordsCreate(t *testing.T, r ratelimit.Records) {
	mustCreate(t, r, t0, "c:a", []byte("one"), time.Minute)
	getIs(t, r, t0, "c:a", []byte("one"))
	held, created, err := r.Create(bg, t0, "c:a", []byte("two"), time.Hour)
	if err != nil || created || string(held) != "one" {
		t.Fatalf("second create = %q %v %v, want held \"one\", not created", held, created, err)
	}
	getIs(t, r, t0, "c:a", []byte("one"))
	getIs(t, r, t0, "c:missing", nil)
	mustCreate(t, r, t0, "c:empty", []byte{}, time.Minute) // an empty value is a record
	getIs(t, r, t0, "c:empty", []byte{})
	mustCreate(t, r, t0, "c:nil", nil, time.Minute) // so is a nil one
	getIs(t, r, t0, "c:nil", []byte{})
	if held, created, err := r.Create(bg, t0, "c:empty", []byte("x"), time.Minute); err != nil || created || held == nil || len(held) != 0 {
		t.Fatalf("create over an empty record = %q (nil %v) %v %v", held, held == nil, created, err)
	}
	bin := []byte{0, 1, 0xff, '\r', '\n', 0}
	mustCreate(t, r, t0, "c:bin", bin, time.Minute)
	getIs(t, r, t0, "c:bin", bin)
}

// swapCase is one Swap on key "s:k" holding "v1" (or nothing, when held is nil).
type swapCase struct {
	name      string
	held      []byte
	old, val  []byte
	swapped   bool
	heldAfter []byte // nil: no record
}

var swapCases = []swapCase{
	{"equal old", []byte("v1"), []byte("v1"), []byte("v2"), true, []byte("v2")},
	{"other old", []byte("v1"), []byte("v0"), []byte("v2"), false, []byte("v1")},
	{"old a prefix", []byte("v1"), []byte("v"), []byte("v2"), false, []byte("v1")},
	{"old longer", []byte("v1"), []byte("v1\x00"), []byte("v2"), false, []byte("v1")},
	{"nil old over a record", []byte("v1"), nil, []byte("v2"), false, []byte("v1")},
	{"nil old, no record: create", nil, nil, []byte("v2"), true, []byte("v2")},
	{"old, no record", nil, []byte("v1"), []byte("v2"), false, nil},
	{"empty old, no record", nil, []byte{}, []byte("v2"), false, nil},
	{"empty old over v1", []byte("v1"), []byte{}, []byte("v2"), false, []byte("v1")},
	{"nil val deletes", []byte("v1"), []byte("v1"), nil, true, nil},
	{"nil val, other old", []byte("v1"), []byte("v0"), nil, false, []byte("v1")},
	{"nil old and val, no record", nil, nil, nil, true, nil},
	{"nil old and val over a record", []byte("v1"), nil, nil, false, []byte("v1")},
	{"empty val", []byte("v1"), []byte("v1"), []byte{}, true, []byte{}},
}

func recordsSwap(t *testing.T, r ratelimit.Records) {
	for i, c := range swapCases {
		key := "s:" + string(rune('a'+i))
		if c.held != nil {
			mustCreate(t, r, t0, key, c.held, time.Minute)
		}
		swapped, err := r.Swap(bg, t0, key, c.old, c.val, time.Minute)
		if err != nil || swapped != c.swapped {
			t.Fatalf("%s: swapped %v %v, want %v", c.name, swapped, err, c.swapped)
		}
		getIs(t, r, t0, key, c.heldAfter)
	}
	// An empty record is not "no record".
	mustCreate(t, r, t0, "s:empty", []byte{}, time.Minute)
	if swapped, err := r.Swap(bg, t0, "s:empty", []byte{}, []byte("x"), time.Minute); err != nil || !swapped {
		t.Fatalf("swap of an empty record = %v %v, want swapped", swapped, err)
	}
	getIs(t, r, t0, "s:empty", []byte("x"))
}

func recordsTake(t *testing.T, r ratelimit.Records) {
	mustCreate(t, r, t0, "t:a", []byte("once"), time.Minute)
	v, ok, err := r.Take(bg, t0, "t:a")
	if err != nil || !ok || string(v) != "once" {
		t.Fatalf("take = %q %v %v, want \"once\"", v, ok, err)
	}
	if v, ok, err := r.Take(bg, t0, "t:a"); err != nil || ok {
		t.Fatalf("second take = %q %v %v, want none", v, ok, err)
	}
	getIs(t, r, t0, "t:a", nil)
	mustCreate(t, r, t0, "t:a", []byte("again"), time.Minute) // taken: free for a new record
	if v, ok, err := r.Take(bg, t0, "t:missing"); err != nil || ok {
		t.Fatalf("take of nothing = %q %v %v", v, ok, err)
	}
	mustCreate(t, r, t0, "t:empty", []byte{}, time.Minute)
	if v, ok, err := r.Take(bg, t0, "t:empty"); err != nil || !ok || v == nil || len(v) != 0 {
		t.Fatalf("take of an empty record = %q (nil %v) %v %v, want an empty value", v, v == nil, ok, err)
	}
}

func tooLarge(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, ratelimit.ErrRecordTooLarge) {
		t.Fatalf("%s: err %v, want ErrRecordTooLarge", what, err)
	}
}

func recordsBounds(t *testing.T, r ratelimit.Records) {
	key512, key513 := strings.Repeat("k", 512), strings.Repeat("k", 513)
	val, val1 := bytes.Repeat([]byte{'v'}, 1<<20), bytes.Repeat([]byte{'v'}, 1<<20+1)
	mustCreate(t, r, t0, key512, []byte("x"), time.Minute)
	getIs(t, r, t0, key512, []byte("x"))
	mustCreate(t, r, t0, "b:big", val, time.Minute)
	getIs(t, r, t0, "b:big", val)
	if ok, err := r.Swap(bg, t0, key512, []byte("x"), val, time.Minute); err != nil || !ok {
		t.Fatalf("swap to the largest value: %v %v", ok, err)
	}
	_, _, err := r.Create(bg, t0, key513, []byte("x"), time.Minute)
	tooLarge(t, "create, key 513", err)
	_, _, err = r.Create(bg, t0, "b:big1", val1, time.Minute)
	tooLarge(t, "create, value 2^20+1", err)
	_, _, err = r.Get(bg, t0, key513)
	tooLarge(t, "get, key 513", err)
	_, _, err = r.Take(bg, t0, key513)
	tooLarge(t, "take, key 513", err)
	_, err = r.Swap(bg, t0, key513, nil, []byte("x"), time.Minute)
	tooLarge(t, "swap, key 513", err)
	_, err = r.Swap(bg, t0, "b:big", val, val1, time.Minute)
	tooLarge(t, "swap, value 2^20+1", err)
	for _, ttl := range []time.Duration{0, -1, -time.Hour} {
		_, _, err = r.Create(bg, t0, "b:ttl", []byte("x"), ttl)
		tooLarge(t, "create, ttl "+ttl.String(), err)
		_, err = r.Swap(bg, t0, "b:ttl", nil, []byte("x"), ttl)
		tooLarge(t, "swap, ttl "+ttl.String(), err)
	}
	getIs(t, r, t0, "b:ttl", nil)
	getIs(t, r, t0, "b:big1", nil)
	getIs(t, r, t0, "b:big", val) // refused swaps changed nothing
	if _, _, err := r.Create(bg, t0, "b:ttl1", []byte("x"), time.Nanosecond); err != nil {
		t.Fatalf("create, ttl 1ns: %v", err)
	}
}

// recordKeys are keys a store must keep apart, stored exactly: Redis glob characters,
// hash tags, separators, the escapes of counter keys, CR/LF and NUL.
var recordKeys = []string{
	"a", "a*", "*", "?", "a?", "[a-z]", "a\r\nDEL x", "a\n", "a\r", "a\x00", "a\x00b",
	"{a}", "{a}b", "a:b", "a%3Ab", "a%25", "%", "", " ", "a b", "bind:a", "\xff\xfe",
}

func recordsKeys(t *testing.T, r ratelimit.Records) {
	for i, k := range recordKeys {
		mustCreate(t, r, t0, k, []byte{byte('A' + i)}, time.Minute)
	}
	for i, k := range recordKeys {
		getIs(t, r, t0, k, []byte{byte('A' + i)})
	}
	getIs(t, r, t0, "ab", nil) // "a*" and "a?" match no other key
	getIs(t, r, t0, "b", nil)
	if v, ok, err := r.Take(bg, t0, "*"); err != nil || !ok || string(v) != "C" {
		t.Fatalf("take \"*\" = %q %v %v", v, ok, err)
	}
	for i, k := range recordKeys {
		if k != "*" {
			getIs(t, r, t0, k, []byte{byte('A' + i)}) // the take touched no other key
		}
	}
}

func recordsCopies(t *testing.T, r ratelimit.Records) {
	in := []byte("abc")
	mustCreate(t, r, t0, "cp:a", in, time.Minute)
	in[0] = 'X'
	v, _, _ := r.Get(bg, t0, "cp:a")
	v[1] = 'Y'
	getIs(t, r, t0, "cp:a", []byte("abc"))
	held, _, _ := r.Create(bg, t0, "cp:a", []byte("z"), time.Minute)
	held[2] = 'Z'
	getIs(t, r, t0, "cp:a", []byte("abc"))
}

// race runs f(i) on n goroutines started together and waits for them.
func race(n int, f func(i int)) {
	var start, done sync.WaitGroup
	start.Add(1)
	for i := range n {
		done.Add(1)
		go func() {
			defer done.Done()
			start.Wait()
			f(i)
		}()
	}
	start.Done()
	done.Wait()
}

const racers = 16

func recordsRaceTake(t *testing.T, r ratelimit.Records) {
	for round := range 8 {
		key := "rt:" + string(rune('a'+round))
		mustCreate(t, r, t0, key, []byte("challenge"), time.Minute)
		var mu sync.Mutex
		wins := 0
		race(racers, func(int) {
			v, ok, err := r.Take(bg, t0, key)
			if err != nil || ok && string(v) != "challenge" {
				t.Errorf("take = %q %v %v", v, ok, err)
			}
			if ok {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		})
		if wins != 1 {
			t.Fatalf("round %d: %d takes got the record, want exactly 1", round, wins)
		}
	}
}

func recordsRaceCreate(t *testing.T, r ratelimit.Records) {
	for round := range 8 {
		key := "rc:" + string(rune('a'+round))
		var mu sync.Mutex
		var winners []int
		helds := map[string]int{}
		race(racers, func(i int) {
			held, created, err := r.Create(bg, t0, key, []byte{byte('A' + i)}, time.Minute)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				t.Errorf("create: %v", err)
			case created:
				winners = append(winners, i)
			default:
				helds[string(held)]++
			}
		})
		if len(winners) != 1 {
			t.Fatalf("round %d: %d creates won, want exactly 1", round, len(winners))
		}
		want := string(rune('A' + winners[0]))
		if len(helds) != 1 || helds[want] != racers-1 {
			t.Fatalf("round %d: losers saw %v, want %d × %q", round, helds, racers-1, want)
		}
		getIs(t, r, t0, key, []byte(want))
	}
}

func recordsRaceSwap(t *testing.T, r ratelimit.Records) {
	for round := range 8 {
		key := "rs:" + string(rune('a'+round))
		mustCreate(t, r, t0, key, []byte("v0"), time.Minute)
		var mu sync.Mutex
		var winners []int
		race(racers, func(i int) {
			ok, err := r.Swap(bg, t0, key, []byte("v0"), []byte{byte('A' + i)}, time.Minute)
			if err != nil {
				t.Errorf("swap: %v", err)
			}
			if ok {
				mu.Lock()
				winners = append(winners, i)
				mu.Unlock()
			}
		})
		if len(winners) != 1 {
			t.Fatalf("round %d: %d swaps won, want exactly 1", round, len(winners))
		}
		getIs(t, r, t0, key, []byte{byte('A' + winners[0])})
	}
}

// recordsExpiry: a record made at t0 with a ttl of 10s lives until t0+10s-1ns and is gone
// at t0+10s, for every method, whether or not anything swept it.
func recordsExpiry(t *testing.T, r ratelimit.Records) {
	const ttl = 10 * time.Second
	before, at, after := t0.Add(ttl-1), t0.Add(ttl), t0.Add(ttl+1)
	for _, k := range []string{"e:get", "e:take", "e:swap", "e:create", "e:nilswap"} {
		mustCreate(t, r, t0, k, []byte("v"), ttl)
	}
	getIs(t, r, before, "e:get", []byte("v"))
	getIs(t, r, at, "e:get", nil)
	getIs(t, r, after, "e:get", nil)
	if v, ok, err := r.Take(bg, at, "e:take"); err != nil || ok {
		t.Fatalf("take at expiry = %q %v %v, want none", v, ok, err)
	}
	if ok, err := r.Swap(bg, at, "e:swap", []byte("v"), []byte("w"), ttl); err != nil || ok {
		t.Fatalf("swap of an expired record = %v %v, want not swapped", ok, err)
	}
	if ok, err := r.Swap(bg, at, "e:nilswap", nil, []byte("w"), ttl); err != nil || !ok {
		t.Fatalf("nil-old swap over an expired record = %v %v, want swapped", ok, err)
	}
	getIs(t, r, at.Add(ttl-1), "e:nilswap", []byte("w")) // the new ttl counts from the swap
	getIs(t, r, at.Add(ttl), "e:nilswap", nil)
	held, created, err := r.Create(bg, before, "e:create", []byte("w"), ttl)
	if err != nil || created || string(held) != "v" {
		t.Fatalf("create 1ns before expiry = %q %v %v, want held \"v\"", held, created, err)
	}
	mustCreate(t, r, at, "e:create", []byte("w"), ttl)
	getIs(t, r, at.Add(ttl-1), "e:create", []byte("w"))
	// A swap sets the ttl again, from its now.
	mustCreate(t, r, t0, "e:reset", []byte("v"), ttl)
	if ok, err := r.Swap(bg, before, "e:reset", []byte("v"), []byte("w"), time.Second); err != nil || !ok {
		t.Fatalf("swap before expiry = %v %v", ok, err)
	}
	getIs(t, r, before.Add(time.Second-1), "e:reset", []byte("w"))
	getIs(t, r, before.Add(time.Second), "e:reset", nil)
	mustCreate(t, r, t0, "e:1ns", []byte("v"), 1)
	getIs(t, r, t0, "e:1ns", []byte("v"))
	getIs(t, r, t0.Add(1), "e:1ns", nil)
}
