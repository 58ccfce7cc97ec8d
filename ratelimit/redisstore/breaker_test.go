package redisstore

import (
	"context"
	"testing"
	"time"
)

// TestBreaker: a burst of failures (every call in flight timing out together while the
// machine stalls) does not open the breaker; failures that last open it, an open breaker
// refuses calls until one probe after the cooldown, and the probe's success closes it.
func TestBreaker(t *testing.T) {
	b := breaker{failures: 5, window: 50 * time.Millisecond, cooldown: 250 * time.Millisecond}
	now := t0
	fail := func(d time.Duration) {
		now = now.Add(d)
		ok, probe := b.allow(now)
		if !ok {
			t.Fatalf("refused at +%v", now.Sub(t0))
		}
		b.done(now, probe, true)
	}
	for i := 0; i < 64; i++ { // 64 calls time out within 6 ms
		fail(100 * time.Microsecond)
	}
	if b.isOpen() {
		t.Fatal("a 6 ms burst of failures opened the breaker")
	}
	if ok, _ := b.allow(now); !ok {
		t.Fatal("closed breaker refused a call")
	}
	b.done(now, false, false) // a success ends the streak
	for i := 0; i < 4; i++ {
		fail(20 * time.Millisecond)
	}
	if b.isOpen() {
		t.Fatal("open after 4 failures")
	}
	fail(20 * time.Millisecond) // the 5th, 80 ms after the first
	if !b.isOpen() {
		t.Fatal("still closed after 5 failures over 80 ms")
	}
	if ok, _ := b.allow(now.Add(100 * time.Millisecond)); ok {
		t.Fatal("open breaker let a call through before the cooldown")
	}
	now = now.Add(300 * time.Millisecond)
	ok, probe := b.allow(now)
	if !ok || !probe {
		t.Fatalf("after the cooldown: ok %v probe %v, want a probe", ok, probe)
	}
	if ok, _ := b.allow(now); ok {
		t.Fatal("a second call passed while the probe is out")
	}
	b.release(true) // the probe's caller was gone before it reached Redis
	if !b.isOpen() {
		t.Fatal("a released probe closed the breaker")
	}
	if ok, probe = b.allow(now); !ok || !probe {
		t.Fatalf("after a released probe: ok %v probe %v, want another probe", ok, probe)
	}
	b.done(now, true, true) // the probe fails: open for another cooldown
	if ok, _ := b.allow(now.Add(time.Millisecond)); ok {
		t.Fatal("open after a failed probe, yet a call passed")
	}
	now = now.Add(300 * time.Millisecond)
	ok, probe = b.allow(now)
	b.done(now, probe, false)
	if !ok || !probe || b.isOpen() {
		t.Fatalf("a successful probe: ok %v probe %v open %v", ok, probe, b.isOpen())
	}
}

// TestDeadlines: store calls are bounded by timeout (plus at most the slack) even when
// the caller has no deadline, by the caller's deadline when it is sooner, and calls made
// close together share one context.
func TestDeadlines(t *testing.T) {
	// Calls share a context while it has at least the timeout left, that is for one
	// slack (timeout/5 = 40 ms) after it is made. Which call shares is decided on the
	// clock d.now (held still here); the contexts themselves expire on the wall clock.
	d := newDeadlines(200 * time.Millisecond)
	clock := newFakeClock(time.Now())
	d.now = clock.Now
	start := clock.Now()
	a, cancelA, sharedA := d.bound(context.Background())
	defer cancelA()
	clock.Add(40 * time.Millisecond) // the last instant that still shares
	b, cancelB, _ := d.bound(context.Background())
	defer cancelB()
	if dl, ok := a.Deadline(); !ok || !dl.Equal(start.Add(240*time.Millisecond)) {
		t.Fatalf("deadline %v after start, want 240ms (timeout 200ms + slack 40ms)", dl.Sub(start))
	}
	if a != b || !sharedA {
		t.Errorf("two calls 40 ms apart got different contexts (shared %v)", sharedA)
	}
	clock.Add(time.Nanosecond) // less than the timeout left: a fresh context
	c, cancelC, _ := d.bound(context.Background())
	defer cancelC()
	if c == a {
		t.Fatal("a call with less than the timeout left shares the old context")
	}
	select {
	case <-a.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the shared context never expired")
	}
	shortAt := clock.Now().Add(time.Millisecond)
	short, cancel := context.WithDeadline(context.Background(), shortAt)
	defer cancel()
	s, cancelS, sharedS := d.bound(short)
	defer cancelS()
	if dl, _ := s.Deadline(); sharedS || !dl.Equal(shortAt) {
		t.Fatalf("a caller's 1 ms deadline became %v (shared %v)", dl.Sub(shortAt), sharedS)
	}
}
