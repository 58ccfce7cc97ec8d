package attest_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/attest"
	"github.com/gatehouse/gatehouse/policy/attest/appattest"
	"github.com/gatehouse/gatehouse/policy/attest/appattest/appattesttest"
	"github.com/gatehouse/gatehouse/policy/challenge"
	"github.com/gatehouse/gatehouse/ratelimit/memstore"
	"github.com/gatehouse/gatehouse/ratelimit/state"
)

const aaAppID = "ABCDE12345.com.example.app"

var aaT0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// appAttestProvider returns an app_attest provider with dev enrolled.
func appAttestProvider(t testing.TB, records state.Records, dev *appattesttest.Device) (*attest.Provider, *appattest.Keys) {
	t.Helper()
	ca := appattesttest.NewCA(aaT0.AddDate(-1, 0, 0))
	chal, _ := challenge.New(records, time.Minute, nil)
	keys, err := appattest.NewKeys(records, chal, "shop", appattest.Params{AppID: aaAppID, Roots: ca.Pool}, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := keys.Challenge(context.Background(), aaT0)
	cdh := sha256.Sum256([]byte(c))
	obj := ca.Attest(dev, appattesttest.Attestation{AppID: aaAppID, ClientDataHash: cdh[:]}, aaT0)
	if _, err := keys.Enrol(context.Background(), aaT0, dev.KeyID, obj, c); err != nil {
		t.Fatal(err)
	}
	return attest.New(attest.Config{Kind: attest.AppAttest, App: "shop", CacheID: "aa", BindingHeader: attest.DefaultAppAttestBindingHeader,
		AppAttest: &attest.AppAttestSettings{Keys: keys}}), keys
}

// aaInput is a request carrying dev's assertion with counter n, signed over the
// clientDataHash computed here by hand: SHA-256("GET\n/v1/orders?id=7\nnonce-1").
func aaInput(dev *appattesttest.Device, n uint32, signedOver string) *policy.Input {
	cdh := sha256.Sum256([]byte(signedOver))
	return &policy.Input{Method: "GET", Path: "/v1/orders", RawPath: "/v1/orders?id=7", Headers: map[string]string{
		"x-app-attest-key-id":    base64.StdEncoding.EncodeToString(dev.KeyID),
		"x-app-attest-assertion": base64.StdEncoding.EncodeToString(dev.Assert(aaAppID, n, cdh[:])),
		"x-app-attest-binding":   "nonce-1",
	}}
}

const aaSigned = "GET\n/v1/orders?id=7\nnonce-1"

// TestAppAttestProvider: an assertion bound to the method, the request target with its
// query, and the binding header is accepted once, with the app-scoped digest of the key
// id as device id; each part of the binding, the headers and the counter are checked.
func TestAppAttestProvider(t *testing.T) {
	ctx := context.Background()
	dev := appattesttest.NewDevice()
	for _, tc := range []struct {
		name string
		in   func() *policy.Input
		want policy.Code
	}{
		{"valid", func() *policy.Input { return aaInput(dev, 1, aaSigned) }, ""},
		{"signed for another path", func() *policy.Input { return aaInput(dev, 1, "GET\n/v1/orders?id=8\nnonce-1") }, policy.AttestationFailed},
		{"signed without the query", func() *policy.Input { return aaInput(dev, 1, "GET\n/v1/orders\nnonce-1") }, policy.AttestationFailed},
		{"signed for another method", func() *policy.Input { return aaInput(dev, 1, "POST\n/v1/orders?id=7\nnonce-1") }, policy.AttestationFailed},
		{"signed for another binding", func() *policy.Input { return aaInput(dev, 1, "GET\n/v1/orders?id=7\nnonce-2") }, policy.AttestationFailed},
		{"binding absent, signed over empty", func() *policy.Input {
			in := aaInput(dev, 1, "GET\n/v1/orders?id=7\n")
			delete(in.Headers, "x-app-attest-binding")
			return in
		}, ""},
		{"binding repeated", func() *policy.Input {
			in := aaInput(dev, 1, aaSigned)
			in.Headers["x-app-attest-binding"] = "nonce-1,nonce-1"
			return in
		}, policy.InvalidAttestation},
		{"key id missing", func() *policy.Input {
			in := aaInput(dev, 1, aaSigned)
			delete(in.Headers, "x-app-attest-key-id")
			return in
		}, policy.InvalidAttestation},
		{"key id repeated", func() *policy.Input {
			in := aaInput(dev, 1, aaSigned)
			in.Headers["x-app-attest-key-id"] += "," + in.Headers["x-app-attest-key-id"]
			return in
		}, policy.InvalidAttestation},
		{"key id url alphabet", func() *policy.Input {
			in := aaInput(dev, 1, aaSigned)
			in.Headers["x-app-attest-key-id"] = base64.RawURLEncoding.EncodeToString(dev.KeyID)
			return in
		}, policy.InvalidAttestation},
		{"key id 31 bytes", func() *policy.Input {
			in := aaInput(dev, 1, aaSigned)
			in.Headers["x-app-attest-key-id"] = base64.StdEncoding.EncodeToString(dev.KeyID[:31])
			return in
		}, policy.InvalidAttestation},
		{"unknown key", func() *policy.Input { return aaInput(appattesttest.NewDevice(), 1, aaSigned) }, policy.InvalidAttestation},
		{"assertion not base64", func() *policy.Input {
			in := aaInput(dev, 1, aaSigned)
			in.Headers["x-app-attest-assertion"] = "%%%"
			return in
		}, policy.InvalidAttestation},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, keys := appAttestProvider(t, memstore.New(state.MemoryConfig{}, nil), dev)
			in := tc.in()
			o := p.Check(ctx, aaT0, in, in.Headers["x-app-attest-assertion"], nil)
			if o.Code != tc.want || o.Err != nil {
				t.Fatalf("code %q (%s), err %v; want %q", o.Code, o.Message, o.Err, tc.want)
			}
			if tc.want == "" && o.DeviceID != keys.DeviceID(dev.KeyID) {
				t.Fatalf("device id %q", o.DeviceID)
			}
		})
	}
}

// TestAppAttestReplayCached: a replayed assertion is refused from the cache (no second
// signature verification) by the counter, as is one replayed after the cache forgot it.
func TestAppAttestReplayCached(t *testing.T) {
	ctx := context.Background()
	dev := appattesttest.NewDevice()
	p, _ := appAttestProvider(t, memstore.New(state.MemoryConfig{}, nil), dev)
	cache, err := policy.NewCache(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	in := aaInput(dev, 1, aaSigned)
	tok := in.Headers["x-app-attest-assertion"]
	if o := p.Check(ctx, aaT0, in, tok, cache); o.Code != "" || o.CacheHit {
		t.Fatalf("first: %+v", o)
	}
	cache.Wait()
	if o := p.Check(ctx, aaT0, in, tok, cache); o.Code != policy.AttestationFailed || !o.CacheHit {
		t.Fatalf("replay: %+v", o)
	}
	if o := p.Check(ctx, aaT0, in, tok, nil); o.Code != policy.AttestationFailed {
		t.Fatalf("replay uncached: %+v", o)
	}
	next := aaInput(dev, 2, aaSigned)
	if o := p.Check(ctx, aaT0, next, next.Headers["x-app-attest-assertion"], cache); o.Code != "" {
		t.Fatalf("next counter: %+v", o)
	}
}

// TestClientDataHash: the README's worked example, its digest computed with sha256sum.
func TestClientDataHash(t *testing.T) {
	got := attest.ClientDataHash("POST", "/v1/orders?id=7", "1700000000")
	if hex.EncodeToString(got[:]) != "eb4f8d7e3295776afbf1e5f601e6a26dd10273a8b00acdbd78b26ed923b8fe48" {
		t.Fatalf("ClientDataHash = %x", got)
	}
}

// downRecords is a store that cannot be reached after enrolment.
type downRecords struct{ state.Records }

func (downRecords) Get(context.Context, time.Time, string) ([]byte, bool, error) {
	return nil, false, state.ErrUnavailable
}

// TestAppAttestStoreDown: an unreachable store leaves the verdict undecided (the fail
// mode decides), never accepted, and names the key's device id as a claim only, so that
// the device block list still applies to it.
func TestAppAttestStoreDown(t *testing.T) {
	dev := appattesttest.NewDevice()
	records := memstore.New(state.MemoryConfig{}, nil)
	_, keys := appAttestProvider(t, records, dev)
	down, _ := appattest.NewKeys(downRecords{records}, nil, "shop", appattest.Params{AppID: aaAppID}, 24*time.Hour)
	p := attest.New(attest.Config{Kind: attest.AppAttest, App: "shop", CacheID: "aa", AppAttest: &attest.AppAttestSettings{Keys: down}})
	in := aaInput(dev, 1, "GET\n/v1/orders?id=7\n")
	o := p.Check(context.Background(), aaT0, in, in.Headers["x-app-attest-assertion"], nil)
	if o.Err == nil || o.Code != "" || o.DeviceID != "" || o.Claimed != keys.DeviceID(dev.KeyID) {
		t.Fatalf("%+v", o)
	}
}

// swapDown is a store whose reads work and whose compare-and-set fails: the counter
// cannot be moved after the signature verified.
type swapDown struct{ state.Records }

func (swapDown) Swap(context.Context, time.Time, string, []byte, []byte, time.Duration) (bool, error) {
	return false, state.ErrUnavailable
}

// TestAppAttestSwapDown: an assertion whose signature verified but whose counter could
// not be stored is undecided (the fail mode decides), with no verified device id and
// nothing cached: once the store answers, the same assertion is checked in full and
// accepted once, never twice.
func TestAppAttestSwapDown(t *testing.T) {
	cache, err := policy.NewCache(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	dev := appattesttest.NewDevice()
	records := memstore.New(state.MemoryConfig{}, nil)
	ca := appattesttest.NewCA(aaT0.AddDate(-1, 0, 0))
	params := appattest.Params{AppID: aaAppID, Roots: ca.Pool}
	chal, _ := challenge.New(records, time.Minute, nil)
	keys, _ := appattest.NewKeys(records, chal, "shop", params, 24*time.Hour)
	c, _ := keys.Challenge(context.Background(), aaT0)
	cdh := sha256.Sum256([]byte(c))
	if _, err := keys.Enrol(context.Background(), aaT0, dev.KeyID, ca.Attest(dev, appattesttest.Attestation{AppID: aaAppID, ClientDataHash: cdh[:]}, aaT0), c); err != nil {
		t.Fatal(err)
	}
	down, _ := appattest.NewKeys(swapDown{records}, chal, "shop", params, 24*time.Hour)
	provider := func(k *appattest.Keys) *attest.Provider {
		return attest.New(attest.Config{Kind: attest.AppAttest, App: "shop", CacheID: "aa", BindingHeader: attest.DefaultAppAttestBindingHeader,
			AppAttest: &attest.AppAttestSettings{Keys: k}})
	}
	in := aaInput(dev, 1, "GET\n/v1/orders?id=7\nnonce-1")
	tok := in.Headers["x-app-attest-assertion"]
	o := provider(down).Check(context.Background(), aaT0, in, tok, cache)
	if o.Err == nil || o.Code != "" || o.DeviceID != "" {
		t.Fatalf("swap down: %+v", o)
	}
	cache.Wait()
	up := provider(keys)
	if o := up.Check(context.Background(), aaT0, in, tok, cache); o.Err != nil || o.Code != "" || o.CacheHit || o.DeviceID == "" {
		t.Fatalf("store back: %+v", o)
	}
	cache.Wait()
	if o := up.Check(context.Background(), aaT0, in, tok, cache); o.Code != policy.AttestationFailed {
		t.Fatalf("replay: %+v", o)
	}
}
