package config

import (
	"fmt"
	"slices"
	"strings"

	"github.com/gatehouse/gatehouse/extproc"
	"github.com/gatehouse/gatehouse/policy/idempotency"
	"github.com/gatehouse/gatehouse/policy/login"
	"github.com/gatehouse/gatehouse/ratelimit"
	"github.com/gatehouse/gatehouse/ratelimit/state"
)

// LoginSettings make an endpoint a login endpoint: the upstream's answers with a failure
// status count against the account the request names and the client address, under
// the lockout's rules (lockout: max_failures, window, lock_for); a locked account is
// refused before the upstream with ACCOUNT_LOCKED. Set exactly one of AccountField and
// AccountHeader.
type LoginSettings struct {
	// AccountField is the dotted path of the account identifier in the JSON request
	// body (e.g. email, or user.email).
	AccountField string `yaml:"account_field"`
	// AccountHeader is the request header holding the account identifier.
	AccountHeader string `yaml:"account_header"`
	// FailStatuses are the upstream statuses that count as a failed login (default 401).
	FailStatuses []int `yaml:"fail_statuses"`
	// MaxBodyBytes is the largest request body read for the identifier (default 65536,
	// at most 1048576); a larger one is refused with PAYLOAD_TOO_LARGE.
	MaxBodyBytes int `yaml:"max_body_bytes"`
}

const (
	defaultLoginBody = 64 << 10
	maxLoginBody     = 1 << 20
)

// login compiles an endpoint's login settings; nil stays nil. lo is the lockout whose
// rules and store they share: it must be on and count accounts.
func (c *compiler) login(path string, s *LoginSettings, lo *ratelimit.LockoutConfig) *login.Settings {
	if s == nil {
		return nil
	}
	out := &login.Settings{FailStatuses: []int{401}, MaxBody: s.MaxBodyBytes}
	switch {
	case (s.AccountField == "") == (s.AccountHeader == ""):
		c.add(path, "set exactly one of account_field and account_header")
	case s.AccountHeader != "":
		out.Header = c.header(path+".account_header", s.AccountHeader, "")
	default:
		out.Field = strings.Split(s.AccountField, ".")
		if slices.Contains(out.Field, "") {
			c.add(path+".account_field", "%q is not a dotted path of JSON object keys", s.AccountField)
		}
	}
	if s.FailStatuses != nil {
		out.FailStatuses = s.FailStatuses
	}
	for j, st := range out.FailStatuses {
		if st < 300 || st > 599 {
			c.add(fmt.Sprintf("%s.fail_statuses[%d]", path, j), "must be an HTTP status from 300 to 599")
		}
	}
	if out.MaxBody == 0 {
		out.MaxBody = defaultLoginBody
	}
	if out.MaxBody < 0 || out.MaxBody > maxLoginBody {
		c.add(path+".max_body_bytes", "must be between 1 and %d", maxLoginBody)
	}
	if lo == nil || lo.MaxFailures <= 0 {
		c.add(path, "needs the lockout: set lockout.max_failures, window and lock_for")
	} else if len(lo.Key) > 0 && !slices.Contains(lo.Key, "account") {
		c.add(path, "the lockout does not count accounts: add account to lockout.key")
	}
	return out
}

// endpointPhase is an endpoint's compiled idempotency and login settings, with the
// store parts they run on.
type endpointPhase struct {
	idem    *idempotency.Rule
	records state.Records
	login   *login.Settings
	lockout login.Lockout
}

// endpointPhase compiles the idempotency and login settings of an endpoint's response
// block.
func (c *compiler) endpointPhase(path string, s *ResponseSettings, f *File, snap *Snapshot) endpointPhase {
	var p endpointPhase
	if s == nil {
		return p
	}
	if s.Idempotency != nil {
		p.idem = c.idempotency(path+".idempotency", s.Idempotency)
		p.records = c.records(path + ".idempotency")
	}
	if s.Login != nil {
		p.login = c.login(path+".login", s.Login, &f.Lockout)
		if snap.Limits != nil {
			p.lockout = snap.Limits
		}
	}
	return p
}

// apply sets p on a route.
func (p endpointPhase) apply(r *extproc.Route) {
	r.Idempotency, r.Records = p.idem, p.records
	r.Login, r.Lockout = p.login, p.lockout
}

// appPhase refuses idempotency and login on an app: both name one endpoint's requests.
func (c *compiler) appPhase(path string, s *ResponseSettings) {
	if s == nil {
		return
	}
	if s.Idempotency != nil {
		c.add(path+".idempotency", "is set per endpoint, not per app")
	}
	if s.Login != nil {
		c.add(path+".login", "is set per endpoint, not per app")
	}
}
