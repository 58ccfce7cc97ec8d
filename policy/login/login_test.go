package login_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/login"
	"github.com/gatehouse/gatehouse/ratelimit"
	"github.com/gatehouse/gatehouse/ratelimit/memstore"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 30, 0, time.UTC)

func jsonSettings(path ...string) *login.Settings {
	return &login.Settings{Field: path, FailStatuses: []int{401, 403}, MaxBody: 1024}
}

// TestAccountFromBody: the identifier is read from exactly one place; every way to make
// Gatehouse count another account than the upstream logs in is refused.
func TestAccountFromBody(t *testing.T) {
	deep := strings.Repeat(`{"a":`, 40) + `1` + strings.Repeat(`}`, 40)
	cases := []struct {
		name string
		path []string
		body string
		want string
		err  error
	}{
		{"top-level field", []string{"email"}, `{"email":"alice@example.com","password":"x"}`, "alice@example.com", nil},
		{"nested field", []string{"user", "email"}, `{"user":{"name":"A","email":"alice@example.com"}}`, "alice@example.com", nil},
		{"other keys hold objects and arrays", []string{"email"}, `{"a":[1,{"b":[]}],"email":"alice@example.com","c":{"d":null}}`, "alice@example.com", nil},
		{"escaped key spelling", []string{"email"}, `{"\u0065mail":"alice@example.com"}`, "alice@example.com", nil},
		{"key in another case", []string{"email"}, `{"Email":"alice@example.com"}`, "alice@example.com", nil},
		{"duplicate key", []string{"email"}, `{"email":"victim@example.com","email":"x@example.com"}`, "", login.ErrAmbiguous},
		{"duplicate key in another case", []string{"email"}, `{"email":"victim@example.com","EMAIL":"x@example.com"}`, "", login.ErrAmbiguous},
		{"duplicate parent", []string{"user", "email"}, `{"user":{"email":"a@x"},"user":{"email":"b@x"}}`, "", login.ErrAmbiguous},
		{"missing field", []string{"email"}, `{"username":"alice"}`, "", login.ErrMissing},
		{"missing parent", []string{"user", "email"}, `{"email":"alice"}`, "", login.ErrMissing},
		{"parent not an object", []string{"user", "email"}, `{"user":"alice"}`, "", login.ErrMissing},
		{"number", []string{"email"}, `{"email":12}`, "", login.ErrNotString},
		{"object", []string{"email"}, `{"email":{"a":"b"}}`, "", login.ErrNotString},
		{"null", []string{"email"}, `{"email":null}`, "", login.ErrNotString},
		{"not JSON", []string{"email"}, `email=alice`, "", login.ErrNotJSON},
		{"trailing data", []string{"email"}, `{"email":"a@x"}{"email":"b@x"}`, "", login.ErrNotJSON},
		{"truncated", []string{"email"}, `{"email":"a@x"`, "", login.ErrNotJSON},
		{"empty body", []string{"email"}, ``, "", login.ErrNotJSON},
		{"array at top", []string{"email"}, `[{"email":"a@x"}]`, "", login.ErrMissing},
		{"deep nesting elsewhere", []string{"email"}, `{"x":` + deep + `,"email":"a@x"}`, "", login.ErrTooDeep},
		{"blank after trimming", []string{"email"}, `{"email":"  \u200b "}`, "", login.ErrMissing},
		{"huge identifier", []string{"email"}, `{"email":"` + strings.Repeat("a", 513) + `"}`, "", login.ErrTooLarge},
		{"identifier at the bound", []string{"email"}, `{"email":"` + strings.Repeat("a", 512) + `"}`, strings.Repeat("a", 512), nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := jsonSettings(tc.path...).Account(nil, []byte(tc.body))
			if !errors.Is(err, tc.err) || got != tc.want {
				t.Fatalf("Account = %q, %v; want %q, %v", got, err, tc.want, tc.err)
			}
		})
	}
}

// TestAccountBodyBound: a body of MaxBody bytes is read, one byte more is refused.
func TestAccountBodyBound(t *testing.T) {
	s := jsonSettings("email")
	s.MaxBody = 40
	body := `{"email":"a@x","pad":"` // 22 bytes, then padding and `"}`
	for _, tc := range []struct {
		size int
		err  error
	}{{39, nil}, {40, nil}, {41, login.ErrTooLarge}} {
		b := body + strings.Repeat("p", tc.size-len(body)-2) + `"}`
		if _, err := s.Account(nil, []byte(b)); !errors.Is(err, tc.err) {
			t.Errorf("body of %d bytes: %v, want %v", len(b), err, tc.err)
		}
	}
}

func TestAccountFromHeader(t *testing.T) {
	s := &login.Settings{Header: "x-login"}
	for _, tc := range []struct {
		name string
		vals []string
		want string
		err  error
	}{
		{"one", []string{" Alice "}, "alice", nil},
		{"none", nil, "", login.ErrMissing},
		{"two", []string{"alice", "bob"}, "", login.ErrAmbiguous},
		{"empty", []string{"   "}, "", login.ErrMissing},
	} {
		got, err := s.Account(tc.vals, nil)
		if !errors.Is(err, tc.err) || got != tc.want {
			t.Errorf("%s: Account = %q, %v; want %q, %v", tc.name, got, err, tc.want, tc.err)
		}
	}
}

// TestNormalize: spellings of one account an upstream may treat as one count as one.
// Expected forms are typed by hand.
func TestNormalize(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"alice@example.com", "alice@example.com"},
		{"Alice@Example.COM", "alice@example.com"},
		{"  alice@example.com\t\n", "alice@example.com"},
		{"ａｌｉｃｅ@example.com", "alice@example.com"},       // full-width letters
		{"al\u200bice@example.com", "alice@example.com"}, // zero-width space
		{"al\u00adice@example.com", "alice@example.com"}, // soft hyphen
		{"\u202ealice@example.com", "alice@example.com"}, // right-to-left override
		{"STRASSE@example.com", "strasse@example.com"},   // plain
		{"straße@example.com", "strasse@example.com"},    // ß folds to ss
		// Accents and other combining marks are dropped: accent-insensitive collations
		// (MySQL's default utf8mb4_0900_ai_ci, SQL Server's *_AI) find "victim" under
		// "vīctim", so a spray over accented spellings must count against one account.
		{"jose\u0301@example.com", "jose@example.com"},           // combining accent
		{"jos\u00e9@example.com", "jose@example.com"},            // precomposed é
		{"v\u012bctim@example.com", "victim@example.com"},        // ī
		{"V\u00cdCTIM@EXAMPLE.COM", "victim@example.com"},        // Í, upper case
		{"vi\u0327\u0308ctim@example.com", "victim@example.com"}, // stacked marks
		{"\u0130nfo@example.com", "info@example.com"},            // İ (dotted capital I)
		{"\u212bngstrom@example.com", "angstrom@example.com"},    // Ångström sign
	} {
		if got := login.Normalize(tc.in); got != tc.want {
			t.Errorf("Normalize(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestKey: the key names the app and the account, and holds neither in clear.
func TestKey(t *testing.T) {
	a := login.Key("shop", "alice@example.com")
	if !strings.HasPrefix(a, "account:") || len(a) != len("account:")+64 {
		t.Fatalf("key %q: want account: and 64 hex digits", a)
	}
	if strings.Contains(a, "alice") || strings.Contains(a, "shop") {
		t.Fatalf("key %q holds the account or app in clear", a)
	}
	if a == login.Key("blog", "alice@example.com") || login.Key("ab", "c") == login.Key("a", "bc") {
		t.Fatal("two scopes share a key")
	}
}

// lockout returns the rate limiter's lockout over a memory store: 3 failures in a minute
// lock for 10 minutes.
func lockout(t *testing.T) login.Lockout {
	t.Helper()
	st, err := memstore.Open(ratelimit.MemoryConfig{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e, err := ratelimit.Compile(ratelimit.CompileInput{Lockout: ratelimit.LockoutConfig{MaxFailures: 3, Window: time.Minute, LockFor: 10 * time.Minute}}, st)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestLockoutFromOutcomes: failure statuses count against the account; the 3rd locks
// it; a success resets it; other statuses change nothing. (No address here: its count is
// never reset, see TestSuccessKeepsAddressCount.)
func TestLockoutFromOutcomes(t *testing.T) {
	ctx := context.Background()
	s := jsonSettings("email")
	ip := ""
	cases := []struct {
		name     string
		statuses []int
		locked   bool
	}{
		{"two failures", []int{401, 403}, false},
		{"three failures", []int{401, 401, 403}, true},
		{"other statuses do not count", []int{401, 400, 404, 500, 302, 401}, false},
		{"a success resets", []int{401, 401, 200, 401, 401}, false},
		{"204 is a success", []int{401, 401, 204, 401, 401}, false},
		{"199 and 300 are not", []int{401, 199, 300, 401, 401}, true},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := lockout(t)
			k := login.NewKeys("shop", "user"+string(rune('a'+i)), ip)
			for _, st := range tc.statuses {
				if err := login.Outcome(ctx, l, s, t0, &k, st); err != nil {
					t.Fatal(err)
				}
			}
			wait, locked := login.Locked(ctx, l, t0, &k)
			if locked != tc.locked {
				t.Fatalf("locked %v, want %v", locked, tc.locked)
			}
			if locked && wait != 10*time.Minute {
				t.Fatalf("retry after %v, want 10m", wait)
			}
		})
	}
}

// TestSuccessKeepsAddressCount: a password spray from one address over many accounts,
// with a login to the attacker's own account between the guesses, still locks the
// address (and so every account tried from it), and the address key is the pipeline's.
func TestSuccessKeepsAddressCount(t *testing.T) {
	ctx := context.Background()
	l, s := lockout(t), jsonSettings("email")
	ip := policy.ClientKey(netip.MustParseAddr("2001:db8::1"))
	own := login.NewKeys("shop", "mallory", ip)
	for _, victim := range []string{"v1", "v2", "v3"} {
		k := login.NewKeys("shop", victim, ip)
		_ = login.Outcome(ctx, l, s, t0, &k, 401)
		_ = login.Outcome(ctx, l, s, t0, &own, 200)
	}
	fresh := login.NewKeys("shop", "v4", policy.ClientKey(netip.MustParseAddr("2001:db8::2"))) // same /64
	if _, locked := login.Locked(ctx, l, t0, &fresh); !locked {
		t.Fatal("the spraying address is not locked")
	}
	if _, locked, _ := l.Locked(ctx, t0, policy.IPLockKey(policy.ClientKey(netip.MustParseAddr("2001:db8::ffff")))); !locked {
		t.Fatal("the pipeline's key of the address is not locked")
	}
}

// TestAccountLockAcrossAddresses: the account is locked whichever address the next
// attempt comes from, and whatever the identifier's spelling.
func TestAccountLockAcrossAddresses(t *testing.T) {
	ctx := context.Background()
	l, s := lockout(t), jsonSettings("email")
	for i, sp := range []string{"Victim@Example.com", " victim@example.com", "ｖｉｃｔｉｍ@example.com"} {
		a, err := s.Account(nil, []byte(`{"email":"`+sp+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		k := login.NewKeys("shop", a, policy.ClientKey(netip.AddrFrom4([4]byte{198, 51, 100, byte(i + 1)})))
		_ = login.Outcome(ctx, l, s, t0, &k, 401)
	}
	k := login.NewKeys("shop", "victim@example.com", "203.0.113.9")
	if _, locked := login.Locked(ctx, l, t0, &k); !locked {
		t.Fatal("account not locked after 3 failures in 3 spellings from 3 addresses")
	}
	other := login.NewKeys("blog", "victim@example.com", "")
	if _, locked := login.Locked(ctx, l, t0, &other); locked {
		t.Fatal("the same identifier in another app is locked")
	}
}
