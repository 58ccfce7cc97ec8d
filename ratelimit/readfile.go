package ratelimit

import (
	"fmt"
	"io"
	"os"
)

// MaxDomainFileBytes bounds one rate-limit service file (envoyproxy/ratelimit format).
const MaxDomainFileBytes = 1 << 20

// readDomainFile reads a rate-limit service file, refusing one larger than
// MaxDomainFileBytes without reading more of it.
func readDomainFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxDomainFileBytes+1))
	if err == nil && len(b) > MaxDomainFileBytes {
		err = fmt.Errorf("larger than the limit of %d bytes", MaxDomainFileBytes)
	}
	return b, err
}
