package ratelimit

import (
	"testing"
	"time"
)

// TestTells: which of two limits a client is told about, at every tie-break. Expected
// answers are typed by hand from the rules in tells' comment.
func TestTells(t *testing.T) {
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	st := func(remaining int64, retry time.Duration, resets bool) Status {
		s := Status{Limit: 10, Remaining: remaining, RetryAfter: retry}
		if resets {
			s.Reset = at.Add(time.Minute)
		}
		return s
	}
	for _, tc := range []struct {
		name           string
		a              Status
		aDenied        bool
		b              Status
		bDenied        bool
		want           bool
		wantSwappedArg bool // tells(b, a): the same pair offered the other way round
	}{
		{"a denial beats an admission", st(5, time.Second, true), true, st(0, 0, true), false, true, false},
		{"admissions: fewer remaining", st(2, 0, true), false, st(3, 0, true), false, true, false},
		{"admissions: remaining one apart", st(3, 0, true), false, st(4, 0, true), false, true, false},
		{"admissions: a tie keeps the first", st(3, 0, true), false, st(3, 0, true), false, false, false},
		{"denials: longer wait", st(0, 61*time.Second, true), true, st(0, 60*time.Second, true), true, true, false},
		{"denials: one ns longer", st(0, time.Minute+1, true), true, st(0, time.Minute, true), true, true, false},
		{"denials: a tie keeps the first", st(0, time.Minute, true), true, st(0, time.Minute, true), true, false, false},
		{"denials: credits (no reset) before any wait", st(0, time.Minute, false), true, st(0, time.Hour, true), true, true, false},
		{"denials: remaining does not matter", st(9, time.Second, true), true, st(0, 2*time.Second, true), true, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tells(tc.a, tc.aDenied, tc.b, tc.bDenied); got != tc.want {
				t.Errorf("tells(a, b) = %v, want %v", got, tc.want)
			}
			if got := tells(tc.b, tc.bDenied, tc.a, tc.aDenied); got != tc.wantSwappedArg {
				t.Errorf("tells(b, a) = %v, want %v", got, tc.wantSwappedArg)
			}
		})
	}
}
