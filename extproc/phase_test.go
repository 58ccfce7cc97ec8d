package extproc

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/gatehouse/gatehouse/ratelimit/memstore"
	"github.com/gatehouse/gatehouse/ratelimit/state"
	"google.golang.org/protobuf/types/known/structpb"
)

// phaseEnv is a Server on loopback with one route (app "a", endpoint "e"), a memory
// store, a settable clock, and an observer that tells when a stream has ended (its done
// hooks have run).
type phaseEnv struct {
	t     *testing.T
	c     extprocv3.ExternalProcessorClient
	store *memstore.Store
	mu    sync.Mutex
	now   time.Time
	ended chan *Outcome
}

func newPhaseEnv(t *testing.T, r Route) *phaseEnv {
	t.Helper()
	st, err := memstore.Open(state.MemoryConfig{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &phaseEnv{t: t, store: st, now: t0, ended: make(chan *Outcome, 16)}
	r.App, r.Endpoint = "a", "e"
	if r.Idempotency != nil {
		r.Records = st
	}
	rs := NewRoutes(r.Dialect)
	rs.Add(&r)
	e.c = serve(t, NewServer(func() *Routes { return rs }, Options{Now: e.clock, Observer: e}))
	return e
}

func (e *phaseEnv) clock() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.now
}

func (e *phaseEnv) advance(d time.Duration) {
	e.mu.Lock()
	e.now = e.now.Add(d)
	e.mu.Unlock()
}

func (e *phaseEnv) ObserveExchange(_ context.Context, o *Outcome, _ time.Time) {
	c := *o
	e.ended <- &c
}

// call is one HTTP exchange as Envoy sends it: the request (headers, then the body when
// there is one) and, if Gatehouse lets it through, the upstream's response (headers,
// then its body in one part).
type call struct {
	caller, client string
	method, path   string
	headers        []string // request headers, name then value
	body           string
	status         int // the upstream's
	respHeaders    []string
	respBody       string
}

// run drives c over one stream and returns Gatehouse's immediate response, or nil when
// the upstream's response went through. It returns once the stream has ended.
func (e *phaseEnv) run(c call) *extprocv3.ImmediateResponse {
	t := e.t
	t.Helper()
	s, err := e.c.Process(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		s.CloseSend()
		<-e.ended
	}()
	kv := append([]string{":method", c.method, ":path", c.path}, c.headers...)
	resp := exchangeOne(t, s, reqHeaders(identityMD(c.caller, c.client), c.body == "", kv...))
	if ir := resp.GetImmediateResponse(); ir != nil {
		return ir
	}
	if c.body != "" {
		if ir := exchangeOne(t, s, reqBody(c.body, true)).GetImmediateResponse(); ir != nil {
			return ir
		}
	}
	rh := append([]string{":status", strconv.Itoa(c.status)}, c.respHeaders...)
	mode := resp.GetModeOverride()
	last := mode.GetResponseBodyMode() == 0 || c.respBody == ""
	if ir := exchangeOne(t, s, respHeaders(last && c.respBody == "", rh...)).GetImmediateResponse(); ir != nil {
		return ir
	}
	if !last {
		if ir := exchangeOne(t, s, respBody(c.respBody, true)).GetImmediateResponse(); ir != nil {
			return ir
		}
	}
	return nil
}

// identityMD is Check's forwarded metadata for an allowed request to "a"/"e".
func identityMD(caller, client string) *corev3.Metadata {
	f := map[string]any{"app": "a", "endpoint": "e", "decision": "allow", "decision_id": "d1"}
	if caller != "" {
		f["caller"] = caller
	}
	if client != "" {
		f["client"] = client
	}
	s, _ := structpb.NewStruct(f)
	return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{MetadataNamespace: s}}
}

// header returns the value an immediate response sets for name.
func header(ir *extprocv3.ImmediateResponse, name string) (string, bool) {
	for _, h := range ir.GetHeaders().GetSetHeaders() {
		if h.GetHeader().GetKey() == name {
			return string(h.GetHeader().GetRawValue()), true
		}
	}
	return "", false
}

func cancelCtx(t *testing.T) (context.Context, context.CancelFunc) {
	return context.WithCancel(t.Context())
}
