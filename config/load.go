package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/gatehouse/gatehouse/internal/capped"
	"github.com/gatehouse/gatehouse/internal/strictyaml"
)

// Errors is every problem found in a configuration, each prefixed with its path
// (for example `apps[2].endpoints[0]: unknown endpoint "hello"`).
type Errors []error

func (e Errors) Error() string {
	s := make([]string, len(e))
	for i, err := range e {
		s[i] = err.Error()
	}
	return strings.Join(s, "\n")
}

// Unwrap lets errors.Is and errors.As see every problem.
func (e Errors) Unwrap() []error { return e }

// errorf records one problem at a path.
func errorf(path, format string, args ...any) error {
	if path == "" {
		return fmt.Errorf(format, args...)
	}
	return fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...))
}

// Limits on what reading a configuration may cost. They sit far above any real
// configuration and far below what would stall or exhaust a server that reloads one.
const (
	// MaxConfigBytes bounds the configuration file (a Kubernetes ConfigMap holds at most
	// 1 MiB too).
	MaxConfigBytes = 1 << 20
	// MaxFileBytes bounds every other file a configuration names: key sets, secrets,
	// keys, CA bundles, JSON schemas and rate-limit service files.
	MaxFileBytes = 1 << 20
	// MaxListFileBytes bounds a device or IP allow/block list file.
	MaxListFileBytes = 16 << 20
	// MaxNodes bounds the YAML nodes of a configuration counted with every alias
	// expanded, so that an alias bomb (a small file whose aliases stand for billions of
	// nodes) is refused before anything expands it.
	MaxNodes = 1_000_000
	// MaxDepth bounds how deeply a configuration nests, aliases followed.
	MaxDepth = 64
)

// ErrTooLarge is the error of ReadFile for a file over its limit.
var ErrTooLarge = capped.ErrTooLarge

// ReadFile reads a file named by (or being) a configuration, refusing one larger than
// limit bytes (ErrTooLarge) without reading more than limit+1 bytes of it.
func ReadFile(path string, limit int64) ([]byte, error) { return capped.ReadFile(path, limit) }

// Parse decodes a configuration strictly: unknown keys, wrong types and trailing
// documents are errors, all reported with their paths. A configuration larger than
// MaxConfigBytes, or one that aliases expand beyond MaxNodes or MaxDepth, is refused
// before it is decoded.
func Parse(data []byte) (*File, error) {
	if len(data) > MaxConfigBytes {
		return nil, Errors{fmt.Errorf("configuration is larger than the limit of %d bytes", MaxConfigBytes)}
	}
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, Errors{errors.New("configuration is empty")}
		}
		return nil, Errors{fmt.Errorf("not valid YAML: %w", err)}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, Errors{errors.New("configuration must be a single YAML document")}
	}
	var errs Errors
	doc := &root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		doc = doc.Content[0]
	}
	if err := measure(doc, MaxNodes, MaxDepth); err != nil {
		return nil, Errors{err}
	}
	// Every unknown key and wrongly typed value, named by its key path and line.
	if errs = strictyaml.Check(doc, reflect.TypeFor[File](), ""); len(errs) > 0 {
		return nil, errs
	}
	var f File
	if err := doc.Decode(&f); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			for _, m := range te.Errors {
				errs = append(errs, errors.New(m))
			}
			return nil, errs
		}
		return nil, Errors{err}
	}
	return &f, nil
}
