package device

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/gatehouse/gatehouse/policy/attest"
)

// IPSet is a set of addresses and CIDR ranges, IPv4 and IPv6. A lookup costs one map
// probe per distinct prefix length in the set, however many ranges it holds. Immutable
// once built; safe for concurrent use.
type IPSet struct {
	bits     []int // distinct prefix lengths, longest first
	prefixes map[netip.Prefix]struct{}
}

// EntryError is a bad list entry.
type EntryError struct {
	Index int // position in the entries
	Err   error
	// Reason is Err without the entry's text, for entries read from a file: a file named
	// by mistake (a secret's) must not have its content shown in errors and logs.
	Reason string
}

func (e *EntryError) Error() string { return fmt.Sprintf("entry %d: %v", e.Index, e.Err) }

// Unwrap returns the cause.
func (e *EntryError) Unwrap() error { return e.Err }

// ParseIPSet reads addresses ("192.0.2.1", "2001:db8::1") and ranges ("10.0.0.0/8").
// It reports every bad entry as an *EntryError. IPv4-mapped IPv6 entries are unmapped, as
// client addresses are.
func ParseIPSet(entries []string) (*IPSet, []error) {
	s := &IPSet{prefixes: map[netip.Prefix]struct{}{}}
	var errs []error
	seen := map[int]bool{}
	for i, e := range entries {
		p, reason := parsePrefix(e)
		if reason != "" {
			err := fmt.Errorf("%q: %s", strings.TrimSpace(e), reason)
			if reason == notAddress {
				err = fmt.Errorf("%q is %s", strings.TrimSpace(e), reason)
			}
			errs = append(errs, &EntryError{Index: i, Err: err, Reason: reason})
			continue
		}
		s.prefixes[p] = struct{}{}
		// Prefix lengths of IPv4 and IPv6 ranges are kept apart: /8 of one is not /8 of
		// the other.
		k := p.Bits()
		if p.Addr().Is6() {
			k += 1000
		}
		if !seen[k] {
			seen[k] = true
			s.bits = append(s.bits, k)
		}
	}
	return s, errs
}

const notAddress = "not an address or CIDR range"

// parsePrefix parses one entry; reason says why it is refused ("" when it is not).
func parsePrefix(e string) (netip.Prefix, string) {
	e = strings.TrimSpace(e)
	if strings.Contains(e, "/") {
		p, err := netip.ParsePrefix(e)
		if err != nil {
			return netip.Prefix{}, notAddress
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		if p.Addr().Zone() != "" {
			return netip.Prefix{}, "zones are not allowed"
		}
		return p.Masked(), ""
	}
	a, err := netip.ParseAddr(e)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, notAddress
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), ""
}

// Len returns the number of entries.
func (s *IPSet) Len() int {
	if s == nil {
		return 0
	}
	return len(s.prefixes)
}

// Contains reports whether a is in the set.
func (s *IPSet) Contains(a netip.Addr) bool {
	if s == nil || !a.IsValid() {
		return false
	}
	a = a.Unmap().WithZone("")
	for _, k := range s.bits {
		bits := k
		if k >= 1000 {
			if !a.Is6() {
				continue
			}
			bits -= 1000
		} else if !a.Is4() {
			continue
		}
		p, err := a.Prefix(bits)
		if err != nil {
			continue
		}
		if _, ok := s.prefixes[p]; ok {
			return true
		}
	}
	return false
}

// IDSet is a set of device ids. Immutable once built.
type IDSet map[string]struct{}

// ParseIDSet reads device ids, reporting every malformed one as an *EntryError.
func ParseIDSet(entries []string) (IDSet, []error) {
	s := IDSet{}
	var errs []error
	for i, e := range entries {
		e = strings.TrimSpace(e)
		if !attest.ValidDeviceID(e) {
			errs = append(errs, &EntryError{Index: i, Err: fmt.Errorf("%q is not a device id (1-%d printable characters, no spaces or commas)", e, attest.MaxDeviceIDBytes),
				Reason: fmt.Sprintf("not a device id (1-%d printable characters, no spaces or commas)", attest.MaxDeviceIDBytes)})
			continue
		}
		s[e] = struct{}{}
	}
	return s, errs
}

// Contains reports whether id is in the set.
func (s IDSet) Contains(id string) bool {
	_, ok := s[id]
	return ok && id != ""
}

// ReadList reads a list file: one entry per line; blank lines and everything after '#'
// are ignored. Entries keep their line numbers in errors through the returned lines.
func ReadList(r io.Reader) (entries []string, lines []int, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if line = strings.TrimSpace(line); line != "" {
			entries = append(entries, line)
			lines = append(lines, n)
		}
	}
	return entries, lines, sc.Err()
}
