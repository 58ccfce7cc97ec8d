package main

import (
	"runtime/debug"
	"testing"
)

// TestDefaultGCPercent: serve raises the collector's target to 200 unless the operator
// set GOGC, whose value (numbers, "off") stays as the runtime read it.
func TestDefaultGCPercent(t *testing.T) {
	orig := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(orig) })
	for _, tc := range []struct {
		name string
		env  map[string]string
		want int // hand-typed: the GC percent after setup, from 100 before it
	}{
		{"unset", nil, 200},
		{"empty", map[string]string{"GOGC": ""}, 200},
		{"set 100", map[string]string{"GOGC": "100"}, 100},
		{"set 50", map[string]string{"GOGC": "50"}, 100}, // the runtime read it at start: left alone
		{"off", map[string]string{"GOGC": "off"}, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			debug.SetGCPercent(100)
			setDefaultGCPercent(func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok })
			if got := debug.SetGCPercent(100); got != tc.want {
				t.Errorf("GC percent %d, want %d", got, tc.want)
			}
		})
	}
}
