package device

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/policy"
)

// TestIPSet: membership of IPv4, IPv6 and mapped addresses, with the set's entries and
// the addresses typed by hand.
func TestIPSet(t *testing.T) {
	s, errs := ParseIPSet([]string{" 10.0.0.0/8 ", "192.0.2.7", "2001:db8::/32", "::ffff:198.51.100.0/120", "::ffff:0.0.0.0/96", "2001:db8:ffff::1"})
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	if s.Len() != 6 {
		t.Errorf("Len %d, want 6", s.Len())
	}
	for a, want := range map[string]bool{
		"10.255.255.255": true, "11.0.0.0": true, // ::ffff:0.0.0.0/96 is every IPv4 address
		"2001:db8::1": true, "2001:db9::1": false, "2001:db8:ffff::1": true,
		"::ffff:10.1.2.3": true, "fe80::1%eth0": false,
	} {
		if got := s.Contains(netip.MustParseAddr(a)); got != want {
			t.Errorf("Contains(%s) = %v, want %v", a, got, want)
		}
	}
	v4, _ := ParseIPSet([]string{"10.0.0.0/8", "192.0.2.7", "::ffff:198.51.100.0/120"})
	for a, want := range map[string]bool{
		"10.0.0.1": true, "11.0.0.1": false, "192.0.2.7": true, "192.0.2.8": false,
		"198.51.100.255": true, "198.51.101.0": false, "::ffff:192.0.2.7": true,
		"a00::1": false, // IPv6 with the bits of 10/8: the families are kept apart
	} {
		if got := v4.Contains(netip.MustParseAddr(a)); got != want {
			t.Errorf("v4 set Contains(%s) = %v, want %v", a, got, want)
		}
	}
	v6, _ := ParseIPSet([]string{"a00::/8"})
	if v6.Contains(netip.MustParseAddr("10.0.0.1")) {
		t.Error("an IPv6 /8 matched an IPv4 address")
	}
	all6, _ := ParseIPSet([]string{"::/0"})
	if !all6.Contains(netip.MustParseAddr("2001:db8::1")) || all6.Contains(netip.MustParseAddr("10.0.0.1")) {
		t.Error("::/0 must hold every IPv6 address and no IPv4 one")
	}
	if v4.Contains(netip.Addr{}) {
		t.Error("the invalid address is in the set")
	}
	var none *IPSet
	if none.Len() != 0 || none.Contains(netip.MustParseAddr("10.0.0.1")) {
		t.Error("nil set not empty")
	}
}

// TestParseListErrors: every bad entry is reported with its position.
func TestParseListErrors(t *testing.T) {
	_, errs := ParseIPSet([]string{"10.0.0.1", "300.0.0.1", "10.0.0.0/33", "fe80::1%eth0", "fe80::%eth0/64", "host"})
	var idx []int
	for _, err := range errs {
		var ee *EntryError
		if !errors.As(err, &ee) || errors.Unwrap(err) == nil || !strings.HasPrefix(err.Error(), "entry ") {
			t.Fatalf("not an EntryError: %v", err)
		}
		idx = append(idx, ee.Index)
	}
	if !slices.Equal(idx, []int{1, 2, 3, 4, 5}) {
		t.Errorf("bad entries at %v, want [1 2 3 4 5]", idx)
	}
	ids, errs := ParseIDSet([]string{" dev-1 ", "has space", "", strings.Repeat("x", 129), strings.Repeat("y", 128), "a,b"})
	if len(errs) != 4 {
		t.Errorf("%d id errors, want 4: %v", len(errs), errs)
	}
	if !ids.Contains("dev-1") || !ids.Contains(strings.Repeat("y", 128)) || ids.Contains("") || len(ids) != 2 {
		t.Errorf("ids %v", ids)
	}
}

// TestReadList: comments and blank lines are skipped, line numbers kept.
func TestReadList(t *testing.T) {
	entries, lines, err := ReadList(strings.NewReader("# header\n10.0.0.1\n\n  192.0.2.0/24 # office\n#x\ndev-9\n"))
	if err != nil || !slices.Equal(entries, []string{"10.0.0.1", "192.0.2.0/24", "dev-9"}) || !slices.Equal(lines, []int{2, 4, 6}) {
		t.Fatalf("entries %q lines %v err %v", entries, lines, err)
	}
}

// TestParseState: the license states' spellings.
func TestParseState(t *testing.T) {
	for in, want := range map[string]State{"": Active, "active": Active, "revoked": Revoked, "expired": Expired} {
		if got, err := ParseState(in); err != nil || got != want {
			t.Errorf("ParseState(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseState("Revoked"); err == nil {
		t.Error("Revoked accepted")
	}
}

// TestMemoryBindingsLimit: at most max devices per license, an already bound device always
// passes, and a reset frees every slot.
func TestMemoryBindingsLimit(t *testing.T) {
	b := NewMemoryBindings()
	ctx := context.Background()
	for _, tc := range []struct {
		device string
		bound  bool
		count  int
	}{{"d1", true, 1}, {"d2", true, 2}, {"d3", false, 2}, {"d1", true, 2}} {
		bound, count, err := b.Bind(ctx, "L", tc.device, 2)
		if err != nil || bound != tc.bound || count != tc.count {
			t.Fatalf("Bind(%s) = %v %d %v, want %v %d", tc.device, bound, count, err, tc.bound, tc.count)
		}
	}
	if bound, _, _ := b.Bind(ctx, "other", "d1", 0); bound {
		t.Error("bound with a maximum of 0")
	}
	if err := b.ResetBindings(ctx, BindingKey(policy.HashCredential("key"))); err != nil {
		t.Fatal(err)
	}
	if err := b.ResetBindings(ctx, "L"); err != nil {
		t.Fatal(err)
	}
	if bound, count, _ := b.Bind(ctx, "L", "d3", 2); !bound || count != 1 {
		t.Errorf("after reset: %v %d", bound, count)
	}
	h := policy.HashCredential("key")
	if got := BindingKey(h); got != "license:2c70e12b7a0646f92279f427c7b38e7334d8e5389cff167a1dc30e73f826b683" {
		t.Errorf("BindingKey %q", got)
	}
}
