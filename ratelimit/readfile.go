package ratelimit

import "github.com/gatehouse/gatehouse/internal/capped"

// MaxDomainFileBytes bounds one rate-limit service file (envoyproxy/ratelimit format).
const MaxDomainFileBytes = 1 << 20

// readDomainFile reads a rate-limit service file, refusing one larger than
// MaxDomainFileBytes without reading more of it.
func readDomainFile(name string) ([]byte, error) { return capped.ReadFile(name, MaxDomainFileBytes) }
