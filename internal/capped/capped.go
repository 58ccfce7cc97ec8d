// Package capped reads files whose size nothing else bounds: configuration files and the
// files they name (key sets, secrets, schemas, rate-limit files, lists), which a mistake or
// a hostile ConfigMap could make large enough to exhaust memory.
package capped

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// ErrTooLarge is the error of ReadFile for a file over its limit.
var ErrTooLarge = errors.New("file is larger than the limit")

// ReadFile reads a file, refusing one larger than limit bytes (ErrTooLarge) without
// reading more than limit+1 bytes of it: a regular file is refused by its size alone.
func ReadFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tooLarge := fmt.Errorf("%w of %d bytes", ErrTooLarge, limit)
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() && st.Size() > limit {
		return nil, tooLarge
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, tooLarge
	}
	return data, nil
}
