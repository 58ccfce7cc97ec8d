// Package strictyaml checks a YAML document against the Go type it will be decoded into
// before it is decoded, and reports every unknown key and every value of the wrong
// type with its key path and line (`endpoints[2].methods: expected a list of strings,
// got a string (line 12)`), in the words of the file rather than of the Go types.
package strictyaml

import (
	"encoding"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

var (
	timeType        = reflect.TypeFor[time.Time]()
	durationType    = reflect.TypeFor[time.Duration]()
	unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
	textType        = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// Check walks n against t and returns every problem, each prefixed with its key path
// (path is the path of n itself; "" for the document).
func Check(n *yaml.Node, t reflect.Type, path string) []error {
	c := &checker{seen: map[visit]bool{}}
	c.check(n, t, path)
	return c.errs
}

// CheckTypes is Check without the unknown-key check, for formats whose keys are checked
// by their own rules (envoyproxy/ratelimit's files ignore a known key out of place).
func CheckTypes(n *yaml.Node, t reflect.Type, path string) []error {
	c := &checker{seen: map[visit]bool{}, anyKeys: true}
	c.check(n, t, path)
	return c.errs
}

// checker walks a document once. An anchored node is checked once per type, however
// many aliases name it, so that an alias bomb costs no more than its text and an
// alias that contains itself ends.
type checker struct {
	errs []error
	seen map[visit]bool
	// anyKeys skips the unknown-key check (CheckTypes).
	anyKeys bool
}

type visit struct {
	n *yaml.Node
	t reflect.Type
}

// Decode decodes a single YAML document strictly into out (a pointer): every unknown
// key and wrongly typed value is reported, with its path, before anything is decoded.
func Decode(data []byte, out any) []error {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return []error{fmt.Errorf("not valid YAML: %w", err)}
	}
	doc := &root
	if doc.Kind == yaml.DocumentNode {
		if len(doc.Content) == 0 {
			return nil
		}
		doc = doc.Content[0]
	}
	if errs := Check(doc, reflect.TypeOf(out).Elem(), ""); len(errs) > 0 {
		return errs
	}
	if err := doc.Decode(out); err != nil {
		return []error{err}
	}
	return nil
}

func (c *checker) check(n *yaml.Node, t reflect.Type, path string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n == nil {
		return
	}
	if n.Anchor != "" {
		if c.seen[visit{n, t}] {
			return
		}
		c.seen[visit{n, t}] = true
	}
	if n.Kind == yaml.ScalarNode {
		// An explicit tag the text does not fit (!!int abc): yaml's own message would
		// quote the value, and come without a path.
		var v any
		if err := n.Decode(&v); err != nil {
			c.errs = append(c.errs, fmt.Errorf("%s: the value does not fit its tag %s (line %d)", at(path), n.ShortTag(), n.Line))
			return
		}
		if n.ShortTag() == "!!null" {
			return // a null leaves the zero value
		}
	}
	switch {
	case t.Kind() == reflect.Interface:
		return
	case custom(t):
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			c.errs = append(c.errs, mismatch(path, t, n, err))
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		c.checkStruct(n, t, path)
	case reflect.Slice, reflect.Array:
		if n.Kind != yaml.SequenceNode {
			c.errs = append(c.errs, mismatch(path, t, n, nil))
			return
		}
		for i, e := range n.Content {
			c.check(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			c.errs = append(c.errs, mismatch(path, t, n, nil))
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			c.check(n.Content[i+1], t.Elem(), Join(path, n.Content[i].Value))
		}
	default:
		c.checkScalar(n, t, path)
	}
}

// custom reports whether t decodes itself (time, or an Unmarshaler).
func custom(t reflect.Type) bool {
	if t == timeType || t == durationType {
		return true
	}
	p := reflect.PointerTo(t)
	return p.Implements(unmarshalerType) || p.Implements(textType)
}

func (c *checker) checkStruct(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind != yaml.MappingNode {
		c.errs = append(c.errs, mismatch(path, t, n, nil))
		return
	}
	fields := map[string]reflect.Type{}
	collectFields(t, fields)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Value == "<<" && k.ShortTag() == "!!merge" {
			// A merge key: its mapping's keys (or its list of mappings') are this one's.
			if v.Kind == yaml.SequenceNode {
				for _, m := range v.Content {
					c.check(m, t, path)
				}
			} else {
				c.check(v, t, path)
			}
			continue
		}
		ft, ok := fields[k.Value]
		p := Join(path, k.Value)
		if !ok && c.anyKeys {
			continue
		}
		if !ok {
			c.errs = append(c.errs, fmt.Errorf("%s: unknown key (line %d; known keys: %s)", p, k.Line, known(fields)))
			continue
		}
		c.check(v, ft, p)
	}
}

func (c *checker) checkScalar(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind != yaml.ScalarNode {
		c.errs = append(c.errs, mismatch(path, t, n, nil))
		return
	}
	if t.Kind() == reflect.String {
		return // any scalar is a string
	}
	if err := n.Decode(reflect.New(t).Interface()); err != nil {
		c.errs = append(c.errs, mismatch(path, t, n, err))
	}
}

// mismatch reports a value of the wrong type. A decoder's own message is kept only when
// it is not yaml's type error, whose wording names Go types.
func mismatch(path string, t reflect.Type, n *yaml.Node, err error) error {
	var te *yaml.TypeError
	if err != nil && !errors.As(err, &te) && t != timeType && t != durationType {
		return fmt.Errorf("%s: %v (line %d)", at(path), err, n.Line)
	}
	if n.ShortTag() == "!!int" && t != durationType { // a duration is an int64, written 30s
		if r := intRange(t); r != "" {
			return fmt.Errorf("%s: expected an integer from %s (line %d)", at(path), r, n.Line)
		}
	}
	return fmt.Errorf("%s: expected %s, got %s (line %d)", at(path), want(t, false), got(n), n.Line)
}

// intRange is the range of an integer type, or "" for another type.
func intRange(t reflect.Type) string {
	switch k := t.Kind(); {
	case k >= reflect.Int && k <= reflect.Int64:
		return fmt.Sprintf("%d to %d", int64(-1)<<(t.Bits()-1), uint64(1)<<(t.Bits()-1)-1)
	case k >= reflect.Uint && k <= reflect.Uintptr:
		return fmt.Sprintf("0 to %d", uint64(1<<(t.Bits()-1))*2-1)
	}
	return ""
}

func at(path string) string {
	if path == "" {
		return "configuration"
	}
	return path
}

// want describes a Go type in the words of a YAML file.
func want(t reflect.Type, plural bool) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	one, many := "a value", "values"
	switch {
	case t == timeType:
		one, many = "a time such as 2030-01-01T00:00:00Z", "times"
	case t == durationType:
		one, many = "a duration such as 30s", "durations"
	case t.Kind() == reflect.Struct || t.Kind() == reflect.Map:
		one, many = "a mapping", "mappings"
	case t.Kind() == reflect.Slice || t.Kind() == reflect.Array:
		one, many = "a list of "+want(t.Elem(), true), "lists of "+want(t.Elem(), true)
	case t.Kind() == reflect.String:
		one, many = "a string", "strings"
	case t.Kind() == reflect.Bool:
		one, many = "a boolean (true or false)", "booleans"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64:
		one, many = "an integer", "integers"
	case t.Kind() >= reflect.Uint && t.Kind() <= reflect.Uintptr:
		one, many = "a non-negative integer", "non-negative integers"
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		one, many = "a number", "numbers"
	}
	if plural {
		return many
	}
	return one
}

// got describes a node's kind, never its value (which may be anything a client sent
// to a file, or a secret pasted by mistake).
func got(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	switch n.ShortTag() {
	case "!!int":
		return "an integer"
	case "!!float":
		return "a number"
	case "!!bool":
		return "a boolean"
	case "!!timestamp":
		return "a time"
	case "!!binary":
		return "binary data"
	}
	return "a string"
}

// Field is one key of a YAML mapping decoded into a struct.
type Field struct {
	Name string
	Type reflect.Type
}

// Fields lists the keys of struct t as the decoder sees them: the yaml tag's name, or the
// lowercased field name; inline structs contribute their own keys; "-" and unexported
// fields are skipped. The checker and the configuration's JSON Schema both use it, so
// they know the same keys.
func Fields(t reflect.Type) []Field {
	var out []Field
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") {
			out = append(out, Fields(f.Type)...)
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out = append(out, Field{name, f.Type})
	}
	return out
}

func collectFields(t reflect.Type, into map[string]reflect.Type) {
	for _, f := range Fields(t) {
		into[f.Name] = f.Type
	}
}

func known(fields map[string]reflect.Type) string {
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// Join appends a key to a path.
func Join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
