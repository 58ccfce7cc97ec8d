package extproc

import (
	"context"

	"github.com/gatehouse/gatehouse/policy"
)

// upstreamErrors rewrites an upstream 5xx into the dialect's TARGET_* family, keeping
// the status class: 504 is TARGET_TIMEOUT, 503 TARGET_UNAVAILABLE, any other 5xx
// TARGET_ERROR. The upstream's status and body size stay in the decision log; its body
// is dropped.
type upstreamErrors struct{}

func (upstreamErrors) request(context.Context, *exchange) *reply { return nil }

func (upstreamErrors) response(_ context.Context, x *exchange) *reply {
	if x.status < 500 || x.status > 599 {
		return nil
	}
	code := policy.TargetError
	switch x.status {
	case 503:
		code = policy.TargetUnavailable
	case 504:
		code = policy.TargetTimeout
	}
	return x.denial(code, "")
}

func (upstreamErrors) done(context.Context, *exchange) {}
