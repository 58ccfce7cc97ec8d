package main

import "runtime/debug"

// defaultGCPercent is the collector's target when GOGC is not set: the heap may grow to
// three times what is live before a collection, not twice. With many devices cached,
// marking is the largest part of the server's own CPU after the gRPC codec; a collection
// half as often cuts about a tenth of the CPU per Check under load, for more memory.
// GOMEMLIMIT (the chart sets it from the memory limit) still bounds the heap: near it,
// the collector runs as often as it must.
const defaultGCPercent = 200

// setDefaultGCPercent sets defaultGCPercent unless the operator chose with GOGC (which
// the runtime has read already). lookup is os.LookupEnv.
func setDefaultGCPercent(lookup func(string) (string, bool)) {
	if v, ok := lookup("GOGC"); ok && v != "" {
		return
	}
	debug.SetGCPercent(defaultGCPercent)
}
