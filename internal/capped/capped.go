// Package capped reads files whose size nothing else bounds: configuration files and the
// files they name (key sets, secrets, schemas, rate-limit files, lists), which a mistake or
// a hostile ConfigMap could make large enough to exhaust memory.
package capped

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// ErrTooLarge is the error of ReadFile for a file over its limit.
var ErrTooLarge = errors.New("file is larger than the limit")

// ErrNotRegular is the error of ReadFile for a directory, a named pipe, a device or a
// socket: reading a pipe would wait for a writer, a device might never end.
var ErrNotRegular = errors.New("not a regular file")

// ReadFile reads a file, refusing one larger than limit bytes (ErrTooLarge) without
// reading more than limit+1 bytes of it: a regular file is refused by its size alone. Only
// regular files are read (ErrNotRegular); the open does not block on a named pipe.
func ReadFile(path string, limit int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, ErrNotRegular
	}
	tooLarge := fmt.Errorf("%w of %d bytes", ErrTooLarge, limit)
	if st.Size() > limit {
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
