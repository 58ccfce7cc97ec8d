package config

import (
	"fmt"
	"slices"
	"strings"

	"github.com/gatehouse/gatehouse/policy/login"
	"github.com/gatehouse/gatehouse/ratelimit"
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
