package rls_test

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	common "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/gatehouse/gatehouse/ratelimit"
	"github.com/gatehouse/gatehouse/ratelimit/internal/redistest"
)

// The conformance suite: the domain files in testdata/conformance, written for
// envoyproxy/ratelimit, and cases.json, a sequence of calls whose expected answers were
// recorded from the reference server (see TestConformanceReference and `make
// conformance`). Every call's answer is compared: the gRPC error code, the overall code,
// and each descriptor's code, limit remaining and current limit. Times (reset
// durations) are not compared: the reference runs on the wall clock.
const conformanceDir = "testdata/conformance"

var updateConformance = flag.Bool("update-conformance", false,
	"TestConformanceReference: record the reference's answers into "+conformanceDir+"/cases.json")

type confFile struct {
	// Reference names the server the expectations were recorded from.
	Reference string     `json:"reference"`
	Cases     []confCase `json:"cases"`
}

type confCase struct {
	Name  string     `json:"name"`
	Calls []confCall `json:"calls"`
}

type confCall struct {
	Domain      string     `json:"domain"`
	HitsAddend  uint32     `json:"hits_addend,omitempty"`
	Descriptors []confDesc `json:"descriptors"`
	Want        *confWant  `json:"want,omitempty"`
}

type confDesc struct {
	Entries    [][2]string `json:"entries"`
	HitsAddend *uint64     `json:"hits_addend,omitempty"`
}

type confWant struct {
	Error    string       `json:"error,omitempty"` // a gRPC code, when the call failed
	Message  string       `json:"message,omitempty"`
	Overall  string       `json:"overall,omitempty"`
	Statuses []confStatus `json:"statuses,omitempty"`
}

type confStatus struct {
	Code      string     `json:"code"`
	Remaining uint32     `json:"remaining"`
	Limit     *confLimit `json:"limit,omitempty"`
}

type confLimit struct {
	RequestsPerUnit uint32 `json:"requests_per_unit"`
	Unit            string `json:"unit"`
	Name            string `json:"name,omitempty"`
}

func loadConformance(t *testing.T) (confFile, []string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(conformanceDir, "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f confFile
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(conformanceDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatal("no conformance configs", err)
	}
	return f, files
}

func (c confCall) request() *rlsv3.RateLimitRequest {
	req := &rlsv3.RateLimitRequest{Domain: c.Domain, HitsAddend: c.HitsAddend}
	for _, d := range c.Descriptors {
		pd := &common.RateLimitDescriptor{}
		for _, e := range d.Entries {
			pd.Entries = append(pd.Entries, &common.RateLimitDescriptor_Entry{Key: e[0], Value: e[1]})
		}
		if d.HitsAddend != nil {
			pd.HitsAddend = wrapperspb.UInt64(*d.HitsAddend)
		}
		req.Descriptors = append(req.Descriptors, pd)
	}
	return req
}

// answer sends one call and reduces the answer to what the suite compares.
func answer(t *testing.T, c rlsv3.RateLimitServiceClient, call confCall) confWant {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := c.ShouldRateLimit(ctx, call.request())
	if err != nil {
		s, _ := status.FromError(err)
		return confWant{Error: s.Code().String(), Message: s.Message()}
	}
	w := confWant{Overall: res.GetOverallCode().String()}
	for _, st := range res.GetStatuses() {
		cs := confStatus{Code: st.GetCode().String(), Remaining: st.GetLimitRemaining()}
		if l := st.GetCurrentLimit(); l != nil {
			cs.Limit = &confLimit{RequestsPerUnit: l.GetRequestsPerUnit(), Unit: l.GetUnit().String(), Name: l.GetName()}
		}
		w.Statuses = append(w.Statuses, cs)
	}
	return w
}

// replayConformance sends every call of f to c in order and returns how many cases
// answered as recorded; with record, it stores the answers as the expectations instead.
func replayConformance(t *testing.T, who string, c rlsv3.RateLimitServiceClient, f *confFile, record bool) int {
	t.Helper()
	passed := 0
	for i := range f.Cases {
		cs := &f.Cases[i]
		ok := true
		for j := range cs.Calls {
			got := answer(t, c, cs.Calls[j])
			if record {
				cs.Calls[j].Want = &got
				continue
			}
			if want := cs.Calls[j].Want; want == nil || !sameJSON(got, *want) {
				ok = false
				t.Errorf("%s: case %q, call %d:\n got  %s\n want %s", who, cs.Name, j+1, jsonOf(got), jsonOf(want))
			}
		}
		if ok {
			passed++
		}
	}
	if record {
		t.Logf("%s: recorded the answers of %d conformance cases", who, len(f.Cases))
		return len(f.Cases)
	}
	t.Logf("%s: %d/%d conformance cases answer as recorded from the reference", who, passed, len(f.Cases))
	return passed
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func sameJSON(a, b any) bool { return jsonOf(a) == jsonOf(b) }

// TestConformance replays the suite against Gatehouse's rate-limit service over real
// gRPC, with the memory store and with a real redis-server.
func TestConformance(t *testing.T) {
	f, files := loadConformance(t)
	if f.Reference == "" {
		t.Fatal("cases.json holds no recorded expectations")
	}
	stores := map[string]func(*testing.T) ratelimit.Store{
		"memory": func(*testing.T) ratelimit.Store { return nil },
		"redis": func(t *testing.T) ratelimit.Store {
			addr := redistest.Start(t).Addr()
			s, err := ratelimit.OpenStore(context.Background(), ratelimit.StoreConfig{Type: "redis",
				Redis: ratelimit.RedisConfig{Addrs: []string{addr}, Timeout: 2 * time.Second}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
	}
	for _, name := range []string{"memory", "redis"} {
		t.Run(name, func(t *testing.T) {
			c, _, _ := serve(t, ratelimit.RLSConfig{Files: files}, stores[name](t))
			fc := f
			if n := replayConformance(t, "gatehouse ("+name+" store)", c, &fc, false); n != len(f.Cases) {
				t.Errorf("%d/%d cases pass", n, len(f.Cases))
			}
		})
	}
}

// TestConformanceReference replays the suite against a running envoyproxy/ratelimit
// (GATEHOUSE_RLS_REFERENCE: its gRPC address, started on a fresh Redis with
// testdata/conformance as its configuration; scripts/conformance.sh does that) and
// compares its answers with the recorded ones, or records them with -update-conformance.
func TestConformanceReference(t *testing.T) {
	addr := os.Getenv("GATEHOUSE_RLS_REFERENCE")
	if addr == "" {
		t.Skip("GATEHOUSE_RLS_REFERENCE (the reference's gRPC address) is not set")
	}
	f, _ := loadConformance(t)
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := rlsv3.NewRateLimitServiceClient(conn)
	if !*updateConformance {
		replayConformance(t, "envoyproxy/ratelimit", c, &f, false)
		return
	}
	replayConformance(t, "envoyproxy/ratelimit", c, &f, true)
	f.Reference = os.Getenv("GATEHOUSE_RLS_REFERENCE_VERSION")
	data, err := json.MarshalIndent(f, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(conformanceDir, "cases.json"), append(data, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}
