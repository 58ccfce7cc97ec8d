package appattest_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/attest/appattest"
	"github.com/gatehouse/gatehouse/policy/attest/appattest/appattesttest"
	"github.com/gatehouse/gatehouse/policy/challenge"
	"github.com/gatehouse/gatehouse/ratelimit/memstore"
	"github.com/gatehouse/gatehouse/ratelimit/state"
)

var bg = context.Background()

type fixture struct {
	ca      *appattesttest.CA
	records state.Records
	chal    *challenge.Issuer
	keys    *appattest.Keys
}

const keyTTL = 24 * time.Hour

func newFixture(t *testing.T, records state.Records) *fixture {
	t.Helper()
	ca := appattesttest.NewCA(t0.AddDate(-1, 0, 0))
	chal, err := challenge.New(records, time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := appattest.NewKeys(records, chal, "shop", appattest.Params{AppID: appID, Roots: ca.Pool}, keyTTL)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{ca: ca, records: records, chal: chal, keys: keys}
}

// enrol issues a challenge and enrols dev with it.
func (f *fixture) enrol(t *testing.T, dev *appattesttest.Device) {
	t.Helper()
	c, err := f.chal.Issue(bg, t0, "shop")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.keys.Enrol(bg, t0, dev.KeyID, f.attest(dev, c), c); err != nil {
		t.Fatalf("enrol: %v", err)
	}
}

func (f *fixture) attest(dev *appattesttest.Device, chal string) []byte {
	cdh := sha256.Sum256([]byte(chal))
	return f.ca.Attest(dev, appattesttest.Attestation{AppID: appID, ClientDataHash: cdh[:]}, t0)
}

func wantRefusal(t *testing.T, err error, c policy.Code, s appattest.Step) {
	t.Helper()
	var e *appattest.Error
	if !errors.As(err, &e) || e.Code != c || e.Step != s {
		t.Fatalf("err %v, want %s at %q", err, c, s)
	}
}

// TestEnrol: an enrolment consumes its challenge whatever the outcome, is refused with
// another app's, an unknown or a reused challenge, and a key enrols once.
func TestEnrol(t *testing.T) {
	f := newFixture(t, memstore.New(state.MemoryConfig{}, nil))
	dev := appattesttest.NewDevice()
	c, _ := f.chal.Issue(bg, t0, "shop")
	// A bad object consumes the challenge: it cannot be tried again.
	_, err := f.keys.Enrol(bg, t0, dev.KeyID, []byte{0xa0}, c)
	wantRefusal(t, err, policy.InvalidAttestation, appattest.StepFormat)
	_, err = f.keys.Enrol(bg, t0, dev.KeyID, f.attest(dev, c), c)
	wantRefusal(t, err, policy.AttestationFailed, appattest.StepChallenge)

	other, _ := f.chal.Issue(bg, t0, "other-app")
	_, err = f.keys.Enrol(bg, t0, dev.KeyID, f.attest(dev, other), other)
	wantRefusal(t, err, policy.AttestationFailed, appattest.StepChallenge)

	expired, _ := f.chal.Issue(bg, t0, "shop")
	_, err = f.keys.Enrol(bg, t0.Add(time.Minute), dev.KeyID, f.attest(dev, expired), expired)
	wantRefusal(t, err, policy.AttestationFailed, appattest.StepChallenge)

	f.enrol(t, dev)
	c2, _ := f.chal.Issue(bg, t0, "shop")
	_, err = f.keys.Enrol(bg, t0, dev.KeyID, f.attest(dev, c2), c2)
	wantRefusal(t, err, policy.AttestationFailed, appattest.StepEnrolled)
}

// TestAssertCounter: the stored counter starts at 0 and only moves up.
func TestAssertCounter(t *testing.T) {
	f := newFixture(t, memstore.New(state.MemoryConfig{}, nil))
	dev := appattesttest.NewDevice()
	cdh := sha256sum("GET\n/v1/hello\n1")
	_, err := f.keys.Assert(bg, t0, dev.KeyID, dev.Assert(appID, 1, cdh), cdh)
	wantRefusal(t, err, policy.InvalidAttestation, appattest.StepEnrolled)
	f.enrol(t, dev)
	steps := []struct {
		counter uint32
		ok      bool
	}{{0, false}, {1, true}, {1, false}, {0, false}, {2, true}, {10, true}, {9, false}, {10, false}, {11, true}}
	for _, s := range steps {
		n, err := f.keys.Assert(bg, t0, dev.KeyID, dev.Assert(appID, s.counter, cdh), cdh)
		if s.ok && (err != nil || n != s.counter) {
			t.Fatalf("counter %d refused: %v", s.counter, err)
		}
		if !s.ok {
			wantRefusal(t, err, policy.AttestationFailed, appattest.StepCounter)
		}
	}
	// Another key's assertion under this key id fails its signature.
	other := appattesttest.NewDevice()
	_, err = f.keys.Assert(bg, t0, dev.KeyID, other.Assert(appID, 100, cdh), cdh)
	wantRefusal(t, err, policy.AttestationFailed, appattest.StepSignature)
}

// TestKeyTTL: a key lives keyTTL after its last use: one nanosecond before, an assertion
// is accepted and refreshes it; at the ttl it is gone.
func TestKeyTTL(t *testing.T) {
	f := newFixture(t, memstore.New(state.MemoryConfig{}, nil))
	dev := appattesttest.NewDevice()
	f.enrol(t, dev)
	at := t0.Add(keyTTL - time.Nanosecond)
	if _, err := f.keys.Assert(bg, at, dev.KeyID, dev.Assert(appID, 1, nil), nil); err != nil {
		t.Fatal(err)
	}
	at = at.Add(keyTTL - time.Nanosecond)
	if _, err := f.keys.Assert(bg, at, dev.KeyID, dev.Assert(appID, 2, nil), nil); err != nil {
		t.Fatalf("refreshed key: %v", err)
	}
	_, err := f.keys.Assert(bg, at.Add(keyTTL), dev.KeyID, dev.Assert(appID, 3, nil), nil)
	wantRefusal(t, err, policy.InvalidAttestation, appattest.StepEnrolled)
}

// TestAssertRace: one assertion sent 16 times at once through two Keys sharing a store
// (two replicas) is accepted exactly once; and of counters 1..16 sent at once, 16
// always wins and nothing is accepted twice.
func TestAssertRace(t *testing.T) {
	records := memstore.New(state.MemoryConfig{}, nil)
	f := newFixture(t, records)
	replica2, err := appattest.NewKeys(records, f.chal, "shop", appattest.Params{AppID: appID, Roots: f.ca.Pool}, keyTTL)
	if err != nil {
		t.Fatal(err)
	}
	dev := appattesttest.NewDevice()
	f.enrol(t, dev)
	a := dev.Assert(appID, 1, nil)
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range 16 {
		k := f.keys
		if i%2 == 1 {
			k = replica2
		}
		wg.Go(func() {
			if _, err := k.Assert(bg, t0, dev.KeyID, a, nil); err == nil {
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d accepted, want 1", wins.Load())
	}
	var mu sync.Mutex
	accepted := map[uint32]bool{}
	for c := uint32(2); c <= 17; c++ {
		wg.Go(func() {
			if n, err := f.keys.Assert(bg, t0, dev.KeyID, dev.Assert(appID, c, nil), nil); err == nil {
				mu.Lock()
				defer mu.Unlock()
				if accepted[n] {
					t.Errorf("counter %d accepted twice", n)
				}
				accepted[n] = true
			}
		})
	}
	wg.Wait()
	if _, err := f.keys.Assert(bg, t0, dev.KeyID, dev.Assert(appID, 17, nil), nil); err == nil {
		t.Fatal("17 accepted after the race")
	}
}

// failing answers every call with an unreachable store.
type failing struct{ state.Records }

func (failing) Get(context.Context, time.Time, string) ([]byte, bool, error) {
	return nil, false, state.ErrUnavailable
}

// TestStoreDown: an unreachable store is an error (the fail mode decides), never a
// refusal or an acceptance.
func TestStoreDown(t *testing.T) {
	f := newFixture(t, memstore.New(state.MemoryConfig{}, nil))
	dev := appattesttest.NewDevice()
	f.enrol(t, dev)
	down, _ := appattest.NewKeys(failing{f.records}, f.chal, "shop", appattest.Params{AppID: appID, Roots: f.ca.Pool}, keyTTL)
	_, err := down.Assert(bg, t0, dev.KeyID, dev.Assert(appID, 1, nil), nil)
	var e *appattest.Error
	if !errors.Is(err, state.ErrUnavailable) || errors.As(err, &e) {
		t.Fatalf("err %v", err)
	}
}

// TestKeyTTLBounds: [1 h, 400 days], at the bounds and one nanosecond outside.
func TestKeyTTLBounds(t *testing.T) {
	r := memstore.New(state.MemoryConfig{}, nil)
	for _, tc := range []struct {
		ttl time.Duration
		ok  bool
	}{{time.Hour - 1, false}, {time.Hour, true}, {400 * 24 * time.Hour, true}, {400*24*time.Hour + 1, false}} {
		if _, err := appattest.NewKeys(r, nil, "a", appattest.Params{}, tc.ttl); (err == nil) != tc.ok {
			t.Fatalf("ttl %v: %v", tc.ttl, err)
		}
	}
}

// TestDeviceID: the device id is a digest scoped to the app, never the key id.
func TestDeviceID(t *testing.T) {
	r := memstore.New(state.MemoryConfig{}, nil)
	a, _ := appattest.NewKeys(r, nil, "a", appattest.Params{}, keyTTL)
	b, _ := appattest.NewKeys(r, nil, "b", appattest.Params{}, keyTTL)
	id := []byte("0123456789abcdef0123456789abcdef")
	want := sha256.Sum256(append([]byte("a\x00"), id...))
	if got := a.DeviceID(id); got != hexs(want[:]) || got == b.DeviceID(id) {
		t.Fatalf("device id %q", got)
	}
}

// TestAdvance: a counter verified before (a cached verdict) moves the stored counter
// only upward, exactly as Assert would.
func TestAdvance(t *testing.T) {
	f := newFixture(t, memstore.New(state.MemoryConfig{}, nil))
	dev := appattesttest.NewDevice()
	err := f.keys.Advance(bg, t0, dev.KeyID, 1)
	wantRefusal(t, err, policy.InvalidAttestation, appattest.StepEnrolled)
	f.enrol(t, dev)
	if err := f.keys.Advance(bg, t0, dev.KeyID, 5); err != nil {
		t.Fatal(err)
	}
	for _, n := range []uint32{5, 4, 0} {
		wantRefusal(t, f.keys.Advance(bg, t0, dev.KeyID, n), policy.AttestationFailed, appattest.StepCounter)
	}
	if _, err := f.keys.Assert(bg, t0, dev.KeyID, dev.Assert(appID, 5, nil), nil); err == nil {
		t.Fatal("assertion 5 accepted after Advance to 5")
	}
}

// TestKeysScopedToApp: a key enrolled for one Gatehouse app is unknown to another app
// sharing the store, even with the same App Attest app id.
func TestKeysScopedToApp(t *testing.T) {
	records := memstore.New(state.MemoryConfig{}, nil)
	f := newFixture(t, records)
	dev := appattesttest.NewDevice()
	f.enrol(t, dev)
	other, _ := appattest.NewKeys(records, f.chal, "other", appattest.Params{AppID: appID, Roots: f.ca.Pool}, keyTTL)
	_, err := other.Assert(bg, t0, dev.KeyID, dev.Assert(appID, 1, nil), nil)
	wantRefusal(t, err, policy.InvalidAttestation, appattest.StepEnrolled)
	// And a challenge issued to "other" does not enrol under "shop".
	c, _ := other.Challenge(bg, t0)
	_, err = f.keys.Enrol(bg, t0, appattesttest.NewDevice().KeyID, f.attest(dev, c), c)
	wantRefusal(t, err, policy.AttestationFailed, appattest.StepChallenge)
}

// TestKeysBoundToTrust: a key is trusted only under the environment and trust anchors it
// was enrolled under. A development key, or one enrolled under a test root, sharing the
// store with (or surviving a switch to) a production configuration of the same app must
// enrol again there: its assertions are refused as for a key never enrolled.
func TestKeysBoundToTrust(t *testing.T) {
	records := memstore.New(state.MemoryConfig{}, nil)
	f := newFixture(t, records)
	dev := appattesttest.NewDevice()
	devParams := appattest.Params{AppID: appID, Env: appattest.Development, Roots: f.ca.Pool}
	devKeys, err := appattest.NewKeys(records, f.chal, "shop", devParams, keyTTL)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := f.chal.Issue(bg, t0, "shop")
	cdh := sha256.Sum256([]byte(c))
	obj := f.ca.Attest(dev, appattesttest.Attestation{AppID: appID, ClientDataHash: cdh[:], AAGUID: appattesttest.AAGUIDDevelopment}, t0)
	if _, err := devKeys.Enrol(bg, t0, dev.KeyID, obj, c); err != nil {
		t.Fatalf("development enrolment: %v", err)
	}
	if _, err := devKeys.Assert(bg, t0, dev.KeyID, dev.Assert(appID, 1, nil), nil); err != nil {
		t.Fatalf("development key refused under development: %v", err)
	}
	// f.keys: production, same app, same store, same (test) root.
	_, err = f.keys.Assert(bg, t0, dev.KeyID, dev.Assert(appID, 2, nil), nil)
	wantRefusal(t, err, policy.InvalidAttestation, appattest.StepEnrolled)
	if err := f.keys.Advance(bg, t0, dev.KeyID, 3); err == nil {
		t.Fatal("Advance of a development key accepted under production")
	}

	// A key enrolled under a test root is unknown once the app trusts Apple's root again.
	prod := appattesttest.NewDevice()
	f.enrol(t, prod)
	apple, err := appattest.NewKeys(records, f.chal, "shop", appattest.Params{AppID: appID}, keyTTL)
	if err != nil {
		t.Fatal(err)
	}
	_, err = apple.Assert(bg, t0, prod.KeyID, prod.Assert(appID, 1, nil), nil)
	wantRefusal(t, err, policy.InvalidAttestation, appattest.StepEnrolled)
	// Under its own trust it still works, and the refusals above did not touch it.
	if _, err := f.keys.Assert(bg, t0, prod.KeyID, prod.Assert(appID, 1, nil), nil); err != nil {
		t.Fatalf("key refused under the trust it was enrolled with: %v", err)
	}
}
