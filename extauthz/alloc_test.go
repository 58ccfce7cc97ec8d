package extauthz

import (
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
)

// TestToResponseHeaderAllocs: a response's headers cost one allocation for all of them,
// whatever their number: an allowed request with two upstream headers, one response
// header and the three rate-limit headers allocates at most 4 more times than one with
// none (today 1, the slab: the lists come with the response's fixed parts while they fit,
// and the rate-limit numbers are spelled ahead or remembered).
func TestToResponseHeaderAllocs(t *testing.T) {
	reset := time.Unix(1609459200, 0)
	bare := policy.Decision{Outcome: policy.Allow, App: "a", Endpoint: "e", DeviceID: "d"}
	full := bare
	full.Upstream = []policy.Header{{Key: "x-gatehouse-app", Value: "a"}, {Key: "x-gatehouse-device", Value: "d"}}
	full.Response = []policy.Header{{Key: "x-extra", Value: "1"}}
	full.RateLimit = policy.LimitResult{Limit: 50, Remaining: 7, Reset: reset, Name: "device"}
	const id = "0123456789abcdef0123456789abcdef"
	base := testing.AllocsPerRun(200, func() { _ = ToResponse(&bare, id) })
	with := testing.AllocsPerRun(200, func() { _ = ToResponse(&full, id) })
	if with-base > 4 {
		t.Errorf("six headers cost %.0f allocations (%.0f vs %.0f), want at most 4", with-base, with, base)
	}
	resp := ToResponse(&full, id)
	ok := resp.GetOkResponse()
	if len(ok.GetHeaders()) != 2 || len(ok.GetResponseHeadersToAdd()) != 4 {
		t.Fatalf("headers %v, response headers %v", ok.GetHeaders(), ok.GetResponseHeadersToAdd())
	}
	for i, want := range [][2]string{{"x-extra", "1"}, {"x-ratelimit-limit", "50"}, {"x-ratelimit-remaining", "7"}, {"x-ratelimit-reset", "1609459200"}} {
		h := ok.GetResponseHeadersToAdd()[i]
		if h.GetHeader().GetKey() != want[0] || h.GetHeader().GetValue() != want[1] || h.GetAppend().GetValue() {
			t.Errorf("response header %d: %v, want %s: %s, append false", i, h, want[0], want[1])
		}
	}
	if h := ok.GetHeaders()[1]; h.GetHeader().GetKey() != "x-gatehouse-device" || h.GetHeader().GetValue() != "d" {
		t.Errorf("upstream header 1: %v", h)
	}
}

// TestAllowedDeviceResponseAllocs: the response to an attested device's allowed request
// (three upstream headers, three rate-limit headers, two headers removed, six metadata
// entries) costs exactly 4 allocations: the response's fixed parts, in one block; its
// header options, in one slab; and the metadata map (its header and its one group). The
// limit, remaining and reset are spelled already (a reset told before in its second).
func TestAllowedDeviceResponseAllocs(t *testing.T) {
	d := policy.Decision{Outcome: policy.Allow, Step: policy.StepDone, App: "demo", Endpoint: "secure", DeviceID: "device-7",
		Upstream: []policy.Header{{Key: "x-gatehouse-app", Value: "demo"}, {Key: "x-gatehouse-endpoint", Value: "secure"},
			{Key: "x-gatehouse-device", Value: "device-7"}},
		Remove:    []string{"x-attestation-token", "x-app-token"},
		RateLimit: policy.LimitResult{Limit: 50, Remaining: 99, Reset: time.Unix(1609459200, 5e8), Name: "per_device"},
	}
	const id = "0123456789abcdef0123456789abcdef"
	if n := testing.AllocsPerRun(200, func() { _ = ToResponse(&d, id) }); n != 4 {
		t.Errorf("%.0f allocations, want 4", n)
	}
}
