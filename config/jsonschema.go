package config

import (
	"reflect"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/strictyaml"
)

// Patterns of the scalars the YAML decoder reads from strings.
const (
	// durationPattern is what time.ParseDuration accepts ("250ms", "1h30m", "0").
	durationPattern = `^[-+]?(0|(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$`
	// timestampPattern is the start of a YAML timestamp ("2026-01-31", "2026-01-31T10:00:00Z").
	timestampPattern = `^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}`
)

var durationType = reflect.TypeFor[time.Duration]()

// JSONSchema describes the configuration file as a JSON Schema (draft-07), derived by
// reflection from File and the yaml tags of its fields with the rules Parse applies: a key
// without a field is refused (additionalProperties false), inline structs add their keys to
// the parent's, durations are time.ParseDuration strings. Every named struct is one entry
// of "definitions", referred to as refPrefix+name (refPrefix locates those definitions in
// the document that embeds the schema, e.g. "#/properties/config/definitions/"), which also
// lets recursive types (RLS descriptors) refer to themselves.
//
// It is stricter than the decoder in one way: a string field wants a string, where YAML
// would take an unquoted number or boolean as its text. Tools that carry the configuration
// as JSON (Helm values) would turn such a number into a float's text, so the schema asks
// for quotes. Sections may be null (an empty YAML key), as Parse allows.
func JSONSchema(refPrefix string) map[string]any {
	g := &schemaGen{prefix: refPrefix, defs: map[string]any{}}
	root := g.of(reflect.TypeFor[File]())
	return map[string]any{
		"description": "Gatehouse configuration file (generated from the config package's types; do not edit).",
		"allOf":       []any{root},
		"definitions": g.defs,
	}
}

type schemaGen struct {
	prefix string
	defs   map[string]any
}

// of returns the schema of values of type t.
func (g *schemaGen) of(t reflect.Type) map[string]any {
	nullable := false
	for t.Kind() == reflect.Pointer {
		t, nullable = t.Elem(), true
	}
	var s map[string]any
	switch {
	case t == durationType:
		s = map[string]any{"type": "string", "pattern": durationPattern}
	case t == reflect.TypeFor[time.Time]():
		s = map[string]any{"type": "string", "pattern": timestampPattern}
	case t.Kind() == reflect.Struct:
		return g.ref(t)
	default:
		s = g.scalarOrCollection(t)
	}
	if nullable {
		s["type"] = []any{s["type"], "null"}
	}
	return s
}

func (g *schemaGen) scalarOrCollection(t reflect.Type) map[string]any {
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		return map[string]any{"type": []any{"array", "null"}, "items": g.of(t.Elem())}
	case reflect.Map:
		if t.Elem().Kind() == reflect.Interface {
			return map[string]any{"type": []any{"object", "null"}}
		}
		return map[string]any{"type": []any{"object", "null"}, "additionalProperties": g.of(t.Elem())}
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		bits := t.Bits()
		return map[string]any{"type": "integer", "minimum": -(int64(1) << (bits - 1)), "maximum": int64(1)<<(bits-1) - 1}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		s := map[string]any{"type": "integer", "minimum": 0}
		if t.Bits() < 64 {
			s["maximum"] = uint64(1)<<t.Bits() - 1
		}
		return s
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	}
	return map[string]any{} // an interface: any value
}

// ref records the definition of struct t (once) and returns a reference to it.
func (g *schemaGen) ref(t reflect.Type) map[string]any {
	name := strings.ReplaceAll(t.String(), "*", "")
	r := map[string]any{"$ref": g.prefix + name}
	if _, done := g.defs[name]; done {
		return r
	}
	props := map[string]any{}
	def := map[string]any{"type": []any{"object", "null"}, "additionalProperties": false, "properties": props}
	g.defs[name] = def // before the fields: a field of type t refers to it
	for _, f := range strictyaml.Fields(t) {
		props[f.Name] = g.of(f.Type)
	}
	return r
}
