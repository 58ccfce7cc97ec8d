package rls_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	common "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/gatehouse/gatehouse/ratelimit"
	"github.com/gatehouse/gatehouse/ratelimit/rls"
)

// testdataDomains are the domains of ../testdata/*.yaml, as written in those files.
var testdataDomains = []string{"basic", "corner", "demo", "edge_proxy_per_ip", "example4", "example6", "example7",
	"example8", "rich", "internal", "messaging", "newer", "reference_keys"}

// fuzzDescriptors reads descriptors one per line, entries "key=value" joined by '&'; a
// line starting with '-' is a refund (is_negative_hits), one starting with '+' carries
// its own hits_addend of 2, one starting with '!' a limit override.
func fuzzDescriptors(s string, override uint32, unit uint8) []*common.RateLimitDescriptor {
	var out []*common.RateLimitDescriptor
	for _, line := range strings.Split(s, "\n") {
		d := &common.RateLimitDescriptor{}
		switch {
		case strings.HasPrefix(line, "-"):
			d.IsNegativeHits, line = true, line[1:]
		case strings.HasPrefix(line, "+"):
			d.HitsAddend, line = wrapperspb.UInt64(2), line[1:]
		case strings.HasPrefix(line, "!"):
			d.Limit, line = &common.RateLimitDescriptor_RateLimitOverride{RequestsPerUnit: override, Unit: typev3.RateLimitUnit(unit % 8)}, line[1:]
		}
		for _, e := range strings.Split(line, "&") {
			k, v, _ := strings.Cut(e, "=")
			d.Entries = append(d.Entries, &common.RateLimitDescriptor_Entry{Key: k, Value: v})
		}
		out = append(out, d)
	}
	return out
}

// FuzzShouldRateLimit feeds arbitrary descriptors to the service over every testdata
// domain. Whatever the input: a refusal is InvalidArgument and nothing else; an answer
// has one status per descriptor and an overall code of OK or OVER_LIMIT, OVER_LIMIT
// only when a descriptor is over and then with the documented JSON body; an unknown
// domain limits nothing; no status is over without a limit or has more left than it.
func FuzzShouldRateLimit(f *testing.F) {
	files, err := filepath.Glob("../testdata/*.yaml")
	if err != nil || len(files) == 0 {
		f.Fatal("no testdata", err)
	}
	store, err := ratelimit.OpenStore(context.Background(), ratelimit.StoreConfig{}, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { store.Close() })
	e, err := ratelimit.Compile(ratelimit.CompileInput{RLS: ratelimit.RLSConfig{Files: files, AddHeaders: true}}, store)
	if err != nil {
		f.Fatal(err)
	}
	c := &clock{t: start0}
	s := rls.New(func() *ratelimit.Engine { return e }, c.now)
	f.Add("demo", "device=d1", uint32(1), uint32(0), uint8(0))
	f.Add("demo", "device=d1\ndevice=d2\n-device=d1", uint32(3), uint32(0), uint8(0))
	f.Add("basic", "database=users\n+message_type=marketing&to_number=2061234567", uint32(0), uint32(0), uint8(0))
	f.Add("rich", "!device=x", uint32(1000), uint32(5), uint8(2))
	f.Add("example6", "remote_address=10.0.0.1&path=/foo", uint32(4294967295), uint32(0), uint8(0))
	f.Add("nope", "=\n&\n", uint32(0), uint32(0), uint8(0))
	f.Add("", "", uint32(0), uint32(0), uint8(0))
	f.Fuzz(func(t *testing.T, domain, descs string, hits, override uint32, unit uint8) {
		req := &rlsv3.RateLimitRequest{Domain: domain, Descriptors: fuzzDescriptors(descs, override, unit), HitsAddend: hits}
		res, err := s.ShouldRateLimit(context.Background(), req)
		if err != nil {
			empty := req.Domain == "" || len(req.Descriptors) == 0
			if c := status.Code(err); c != codes.InvalidArgument && !(empty && c == codes.Unknown) {
				t.Fatalf("error %v", err)
			}
			return
		}
		if req.Domain == "" || len(req.Descriptors) == 0 {
			t.Fatal("an empty request answered")
		}
		checkRLS(t, req, res)
	})
}

func checkRLS(t *testing.T, req *rlsv3.RateLimitRequest, res *rlsv3.RateLimitResponse) {
	t.Helper()
	if len(res.GetStatuses()) != len(req.GetDescriptors()) {
		t.Fatalf("%d statuses for %d descriptors", len(res.GetStatuses()), len(req.GetDescriptors()))
	}
	over := false
	for i, st := range res.GetStatuses() {
		l := st.GetCurrentLimit()
		if !slices.Contains(testdataDomains, req.GetDomain()) && (l != nil || st.GetCode() != rlsv3.RateLimitResponse_OK) {
			t.Fatalf("descriptor %d of unknown domain limited: %v", i, st)
		}
		if st.GetCode() == rlsv3.RateLimitResponse_OVER_LIMIT {
			over = true
			if l == nil {
				t.Fatalf("descriptor %d over without a limit", i)
			}
		}
		if l != nil && l.GetUnitMultiplier() == nil && st.GetLimitRemaining() > l.GetRequestsPerUnit() {
			t.Fatalf("descriptor %d: %d left of %d", i, st.GetLimitRemaining(), l.GetRequestsPerUnit())
		}
	}
	switch res.GetOverallCode() {
	case rlsv3.RateLimitResponse_OK:
		if len(res.GetRawBody()) != 0 {
			t.Fatalf("OK with a body %q", res.GetRawBody())
		}
	case rlsv3.RateLimitResponse_OVER_LIMIT:
		var b struct {
			Success bool                  `json:"success"`
			Error   struct{ Code string } `json:"error"`
		}
		if !over || json.Unmarshal(res.GetRawBody(), &b) != nil || b.Success || b.Error.Code != "RATE_LIMITED" {
			t.Fatalf("OVER_LIMIT (a descriptor over: %v) with body %q", over, res.GetRawBody())
		}
	default:
		t.Fatalf("overall code %v", res.GetOverallCode())
	}
}
