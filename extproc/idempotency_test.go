package extproc

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/idempotency"
	"github.com/gatehouse/gatehouse/ratelimit/state"
)

func idemRoute() Route {
	return Route{Dialect: policy.Generic, Idempotency: &idempotency.Rule{
		Settings: idempotency.Settings{TTL: time.Hour, InFlightTTL: time.Minute, MaxBody: 32, Headers: []string{"content-type", "location"}},
		Header:   "idempotency-key", Methods: []string{"POST", "PUT", "PATCH"},
	}}
}

func order(key, body string) call {
	return call{caller: "c1", method: "POST", path: "/v1/orders", headers: []string{"idempotency-key", key}, body: body,
		status: 201, respHeaders: []string{"content-type", "application/json", "location", "/v1/orders/7", "set-cookie", "s=1"}, respBody: `{"id":7}`}
}

// wantGeneric checks that ir is the generic dialect's refusal with status and code.
func wantGeneric(t *testing.T, ir *extprocv3.ImmediateResponse, status int, code string) {
	t.Helper()
	if ir == nil {
		t.Fatalf("went through, want %d %s", status, code)
	}
	var b struct{ Code, Title, Message string }
	if err := json.Unmarshal(ir.GetBody(), &b); err != nil {
		t.Fatalf("body %q: %v", ir.GetBody(), err)
	}
	if int(ir.GetStatus().GetCode()) != status || b.Code != code {
		t.Fatalf("answer %d %s (%s), want %d %s", ir.GetStatus().GetCode(), b.Code, ir.GetBody(), status, code)
	}
}

// TestIdempotencyReplay: the first request proceeds and its response is kept; a repeat
// gets it replayed (status, the configured headers, body, marked) without reaching the
// upstream; another caller's same key is its own.
func TestIdempotencyReplay(t *testing.T) {
	e := newPhaseEnv(t, idemRoute())
	if ir := e.run(order("k-1", `{"sku":"a"}`)); ir != nil {
		t.Fatalf("first request answered %d %s", ir.GetStatus().GetCode(), ir.GetBody())
	}
	e.advance(time.Second)
	ir := e.run(order("k-1", `{"sku":"a"}`))
	if ir == nil {
		t.Fatal("repeat went to the upstream")
	}
	if ir.GetStatus().GetCode() != 201 || string(ir.GetBody()) != `{"id":7}` {
		t.Fatalf("replayed %d %s, want 201 {\"id\":7}", ir.GetStatus().GetCode(), ir.GetBody())
	}
	for name, want := range map[string]string{"content-type": "application/json", "location": "/v1/orders/7", "idempotent-replayed": "true"} {
		if v, _ := header(ir, name); v != want {
			t.Errorf("replayed %s %q, want %q", name, v, want)
		}
	}
	if _, ok := header(ir, "set-cookie"); ok {
		t.Error("replayed a header not configured for replay")
	}
	other := order("k-1", `{"sku":"a"}`)
	other.caller = "c2"
	if ir := e.run(other); ir != nil {
		t.Fatalf("another caller's same key answered %d %s", ir.GetStatus().GetCode(), ir.GetBody())
	}
}

// TestIdempotencyConflicts: a duplicate while the first is in flight, and the same key
// with another method, path or body, are CONFLICT-409.
func TestIdempotencyConflicts(t *testing.T) {
	e := newPhaseEnv(t, idemRoute())
	// The first request is in flight: its stream is past the request, no response yet.
	s, err := e.c.Process(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	exchangeOne(t, s, reqHeaders(identityMD("c1", ""), false, ":method", "POST", ":path", "/v1/orders", "idempotency-key", "k-1"))
	if r := exchangeOne(t, s, reqBody(`{"sku":"a"}`, true)); r.GetImmediateResponse() != nil {
		t.Fatalf("first request answered %v", r)
	}
	wantGeneric(t, e.run(order("k-1", `{"sku":"a"}`)), 409, "CONFLICT-409")
	wantGeneric(t, e.run(order("k-1", `{"sku":"b"}`)), 409, "CONFLICT-409")
	// The first completes; then other fingerprints still conflict.
	exchangeOne(t, s, respHeaders(false, ":status", "200"))
	exchangeOne(t, s, respBody("ok", true))
	s.CloseSend()
	<-e.ended
	for _, c := range []call{order("k-1", `{"sku":"b"}`), order("k-1", ""), func() call { c := order("k-1", `{"sku":"a"}`); c.path = "/v1/orders?x=1"; return c }(),
		func() call { c := order("k-1", `{"sku":"a"}`); c.method = "PUT"; return c }()} {
		wantGeneric(t, e.run(c), 409, "CONFLICT-409")
	}
}

// TestIdempotencyKeys: the key's bounds, the caller it needs, and methods it ignores.
func TestIdempotencyKeys(t *testing.T) {
	e := newPhaseEnv(t, idemRoute())
	for _, tc := range []struct {
		name   string
		c      call
		status int
		code   string // "" went through
	}{
		{"255 characters", order(strings.Repeat("k", 255), "{}"), 0, ""},
		{"256 characters", order(strings.Repeat("k", 256), "{}"), 400, "BADREQUEST-400"},
		{"empty", order("", "{}"), 400, "BADREQUEST-400"},
		{"space inside", order("a b", "{}"), 400, "BADREQUEST-400"},
		{"header sent twice", func() call {
			c := order("k-2", "{}")
			c.headers = append(c.headers, "idempotency-key", "k-3")
			return c
		}(), 400, "BADREQUEST-400"},
		{"quoted", order(`"k-4"`, "{}"), 0, ""},
		{"no caller", func() call { c := order("k-5", "{}"); c.caller = ""; return c }(), 401, "AUTH-401"},
		{"no key, not required", func() call { c := order("", "{}"); c.headers = nil; return c }(), 0, ""},
		{"GET is not idempotent-keyed", func() call { c := order("k-6", ""); c.method = "GET"; c.caller = ""; return c }(), 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ir := e.run(tc.c)
			if tc.code == "" {
				if ir != nil {
					t.Fatalf("answered %d %s, want through", ir.GetStatus().GetCode(), ir.GetBody())
				}
				return
			}
			wantGeneric(t, ir, tc.status, tc.code)
		})
	}
	// Quoted and unquoted are one key: the repeat is replayed.
	if ir := e.run(order("k-4", "{}")); ir == nil || ir.GetStatus().GetCode() != 201 {
		t.Fatalf("k-4 unquoted after \"k-4\": %v, want the replay", ir)
	}
	// Required: a request without a key is refused.
	r := idemRoute()
	r.Idempotency.Required = true
	e2 := newPhaseEnv(t, r)
	c := order("", "{}")
	c.headers = nil
	wantGeneric(t, e2.run(c), 400, "BADREQUEST-400")
}

// TestIdempotencyUnfinished: a stream cancelled before any response releases the mark
// (the retry proceeds); a 5xx is not an outcome (released); a stream cancelled after
// the upstream answered, or a response over the stored size, is kept as not stored: the
// retry is refused, never run twice.
func TestIdempotencyUnfinished(t *testing.T) {
	e := newPhaseEnv(t, idemRoute())
	// Cancelled midway: after the request, before the response.
	ctx, cancel := cancelCtx(t)
	s, _ := e.c.Process(ctx)
	exchangeOne(t, s, reqHeaders(identityMD("c1", ""), false, ":method", "POST", ":path", "/v1/orders", "idempotency-key", "k-1"))
	exchangeOne(t, s, reqBody("{}", true))
	cancel()
	if o := <-e.ended; !o.Cancelled {
		t.Fatalf("outcome %+v, want cancelled", o)
	}
	if ir := e.run(order("k-1", "{}")); ir != nil {
		t.Fatalf("retry after a cancelled stream answered %d %s", ir.GetStatus().GetCode(), ir.GetBody())
	}
	// A 503 from the upstream: released.
	c := order("k-2", "{}")
	c.status = 503
	e.run(c)
	if ir := e.run(order("k-2", "{}")); ir != nil {
		t.Fatalf("retry after a 503 answered %d %s", ir.GetStatus().GetCode(), ir.GetBody())
	}
	// Cancelled after the upstream's headers, before its body ended.
	ctx, cancel = cancelCtx(t)
	s, _ = e.c.Process(ctx)
	exchangeOne(t, s, reqHeaders(identityMD("c1", ""), false, ":method", "POST", ":path", "/v1/orders", "idempotency-key", "k-3"))
	exchangeOne(t, s, reqBody("{}", true))
	exchangeOne(t, s, respHeaders(false, ":status", "201"))
	cancel()
	<-e.ended
	wantGeneric(t, e.run(order("k-3", "{}")), 409, "CONFLICT-409")
	// Bodies at the stored bound (32 bytes) are replayed, one byte more is not stored.
	for _, tc := range []struct {
		key  string
		size int
		want int32
	}{{"k-31", 31, 201}, {"k-32", 32, 201}, {"k-33", 33, 409}} {
		c := order(tc.key, "{}")
		c.respBody = strings.Repeat("x", tc.size)
		e.run(c)
		ir := e.run(order(tc.key, "{}"))
		if ir == nil || int32(ir.GetStatus().GetCode()) != tc.want {
			t.Errorf("response of %d bytes: repeat %v, want %d", tc.size, ir, tc.want)
		}
	}
}

// TestIdempotencyTTL: an entry is replayed until its ttl; then the key is new.
func TestIdempotencyTTL(t *testing.T) {
	e := newPhaseEnv(t, idemRoute())
	e.run(order("k-1", "{}"))
	e.advance(time.Hour - time.Millisecond)
	if ir := e.run(order("k-1", "{}")); ir == nil || ir.GetStatus().GetCode() != 201 {
		t.Fatalf("just before the ttl: %v, want the replay", ir)
	}
	e.advance(time.Millisecond)
	if ir := e.run(order("k-1", "{}")); ir != nil {
		t.Fatalf("at the ttl: answered %d, want through", ir.GetStatus().GetCode())
	}
}

// downRecords is a store that cannot be reached (a real store cannot be made to fail on
// cue here).
type downRecords struct{}

func (downRecords) Create(context.Context, time.Time, string, []byte, time.Duration) ([]byte, bool, error) {
	return nil, false, state.ErrUnavailable
}
func (downRecords) Get(context.Context, time.Time, string) ([]byte, bool, error) {
	return nil, false, state.ErrUnavailable
}
func (downRecords) Swap(context.Context, time.Time, string, []byte, []byte, time.Duration) (bool, error) {
	return false, state.ErrUnavailable
}
func (downRecords) Take(context.Context, time.Time, string) ([]byte, bool, error) {
	return nil, false, state.ErrUnavailable
}

// TestIdempotencyStoreDown: without its store, a request with a key fails closed
// (SERVICE_UNAVAILABLE 503): running it could run it twice.
func TestIdempotencyStoreDown(t *testing.T) {
	e := newPhaseEnv(t, Route{})
	r := idemRoute()
	r.Records = downRecords{}
	r.App, r.Endpoint = "a", "e"
	rs := NewRoutes(policy.Generic)
	rs.Add(&r)
	e.c = serve(t, NewServer(func() *Routes { return rs }, Options{Now: e.clock, Observer: e}))
	wantGeneric(t, e.run(order("k-1", "{}")), 503, "SERVER-500")
}
