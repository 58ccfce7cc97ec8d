package attest

import (
	"context"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/attest/attesttest"
	"github.com/gatehouse/gatehouse/policy/jwks"
	otelcodes "go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// TestVerifySpan: an uncached verification makes one gatehouse.attestation.verify span
// carrying the provider type; a cache hit makes none; the status is Error only when the
// verdict could not be decided (keys unavailable), never for a refusal.
func TestVerifySpan(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	prev := tracer
	tracer = tp.Tracer("github.com/gatehouse/gatehouse/policy/attest")
	t.Cleanup(func() { tracer = prev })

	now := time.Unix(1_750_000_000, 0)
	key := attesttest.NewKey(t, "ES256", "k1")
	pub, err := jwks.Parse(attesttest.JWKS(key))
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Kind: SignedToken, App: "a", CacheID: "span-test", Issuer: "https://iss.test", Audiences: []string{"a"},
		Algorithms: []string{"ES256"}, Keys: jwks.NewStatic(pub["k1"]), Leeway: 30 * time.Second,
		Claims: ClaimNames{DeviceID: "device_id"}}
	p := New(cfg)
	cache, err := policy.NewCache(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cache.Close)
	claims := attesttest.Claims{"iss": "https://iss.test", "aud": "a", "exp": now.Add(time.Hour).Unix(), "device_id": "d1"}
	good := attesttest.Sign(t, key, claims, nil)
	forged := attesttest.Sign(t, attesttest.NewKey(t, "ES256", "k1"), claims, nil)
	in := &policy.Input{Headers: map[string]string{}}
	ctx := context.Background()

	spans := func() []sdktrace.ReadOnlySpan { return rec.Ended() }
	check := func(tok string, wantHit bool, wantCode policy.Code) {
		t.Helper()
		o := p.Check(ctx, now, in, tok, cache)
		if o.CacheHit != wantHit || o.Code != wantCode || o.Err != nil {
			t.Fatalf("outcome %+v, want hit %v code %q", o, wantHit, wantCode)
		}
		cache.Wait()
	}

	check(good, false, "")
	if n := len(spans()); n != 1 {
		t.Fatalf("%d spans after an uncached verification, want 1", n)
	}
	s := spans()[0]
	if s.Name() != "gatehouse.attestation.verify" {
		t.Errorf("span name %q", s.Name())
	}
	if s.InstrumentationScope().Name != "github.com/gatehouse/gatehouse/policy/attest" {
		t.Errorf("tracer %q", s.InstrumentationScope().Name)
	}
	found := false
	for _, a := range s.Attributes() {
		if a.Key == "gatehouse.attestation.provider" {
			found = a.Value.AsString() == "signed_token"
		}
		if v := a.Value.Emit(); v == good || v == "d1" {
			t.Errorf("span attribute %s carries the token or the device id", a.Key)
		}
	}
	if !found {
		t.Errorf("attributes %v lack gatehouse.attestation.provider=signed_token", s.Attributes())
	}
	if s.Status().Code != otelcodes.Unset {
		t.Errorf("status %v on a pass", s.Status())
	}

	check(good, true, "")
	if n := len(spans()); n != 1 {
		t.Fatalf("%d spans after a cache hit, want still 1", n)
	}

	check(forged, false, policy.AttestationFailed)
	if n := len(spans()); n != 2 {
		t.Fatalf("%d spans after a refused token, want 2", n)
	}
	if st := spans()[1].Status(); st.Code == otelcodes.Error {
		t.Errorf("a refusal is not an error: status %v", st)
	}

	down, err := jwks.New(jwks.Options{URL: "https://127.0.0.1:1/jwks", MinRefresh: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(down.Close)
	cfg.Keys, cfg.CacheID = down, "span-test-down"
	if o := New(cfg).Check(ctx, now, in, good, cache); o.Err == nil {
		t.Fatalf("keys unavailable decided: %+v", o)
	}
	if n := len(spans()); n != 3 {
		t.Fatalf("%d spans after an undecided verification, want 3", n)
	}
	if st := spans()[2].Status(); st.Code != otelcodes.Error {
		t.Errorf("undecided verification: status %v, want Error", st)
	}
	if got := spanAttr(spans()[2], "error.type"); got != "keys_unavailable" {
		t.Errorf("undecided verification: error.type %q, want keys_unavailable", got)
	}
	for i := range 2 {
		if got := spanAttr(spans()[i], "error.type"); got != "" {
			t.Errorf("span %d: error.type %q on a verdict", i, got)
		}
	}
}

func spanAttr(s sdktrace.ReadOnlySpan, k string) string {
	for _, a := range s.Attributes() {
		if string(a.Key) == k {
			return a.Value.Emit()
		}
	}
	return ""
}
