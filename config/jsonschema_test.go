package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/gatehouse/gatehouse/internal/strictyaml"
)

const testRefs = "#/definitions/"

// schemaKeys walks a YAML node against the schema as a JSON Schema validator would for
// the keywords JSONSchema emits (allOf, $ref, type, properties, additionalProperties,
// items, pattern) and reports every key or scalar the schema would refuse, with its path.
func schemaKeys(t *testing.T, root, s map[string]any, n *yaml.Node, path string, problems *[]string) {
	t.Helper()
	for {
		if all, ok := s["allOf"].([]any); ok {
			s = all[0].(map[string]any)
			continue
		}
		ref, ok := s["$ref"].(string)
		if !ok {
			break
		}
		def, ok := root["definitions"].(map[string]any)[strings.TrimPrefix(ref, testRefs)].(map[string]any)
		if !ok {
			*problems = append(*problems, path+": dangling $ref "+ref)
			return
		}
		s = def
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Tag == "!!null" {
		if !typeAllows(s, "null") {
			*problems = append(*problems, path+": null refused")
		}
		return
	}
	switch n.Kind {
	case yaml.MappingNode:
		if !typeAllows(s, "object") {
			*problems = append(*problems, path+": a mapping is refused")
			return
		}
		props, _ := s["properties"].(map[string]any)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i].Value, n.Content[i+1]
			sub, ok := props[k].(map[string]any)
			if !ok {
				if extra, isSchema := s["additionalProperties"].(map[string]any); isSchema {
					sub = extra
				} else if s["additionalProperties"] == false {
					*problems = append(*problems, strictyaml.Join(path, k)+": unknown key")
					continue
				} else {
					continue
				}
			}
			schemaKeys(t, root, sub, v, strictyaml.Join(path, k), problems)
		}
	case yaml.SequenceNode:
		items, ok := s["items"].(map[string]any)
		if !typeAllows(s, "array") || !ok {
			*problems = append(*problems, path+": a sequence is refused")
			return
		}
		for i, c := range n.Content {
			schemaKeys(t, root, items, c, fmt.Sprintf("%s[%d]", path, i), problems)
		}
	case yaml.ScalarNode:
		want := map[string]string{"!!str": "string", "!!int": "integer", "!!bool": "boolean", "!!float": "number", "!!timestamp": "string"}[n.Tag]
		if len(s) > 0 && !typeAllows(s, want) && !(want == "integer" && typeAllows(s, "number")) {
			*problems = append(*problems, path+": "+n.Tag+" refused")
		} else if p, ok := s["pattern"].(string); ok && !regexp.MustCompile(p).MatchString(n.Value) {
			*problems = append(*problems, path+": "+n.Value+" does not match "+p)
		}
	}
}

func typeAllows(s map[string]any, want string) bool {
	switch ty := s["type"].(type) {
	case string:
		return ty == want
	case []any:
		for _, x := range ty {
			if x == want {
				return true
			}
		}
		return false
	}
	return true // no type: anything
}

func refusals(t *testing.T, schema map[string]any, data []byte) []string {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	var problems []string
	schemaKeys(t, schema, schema, doc.Content[0], "", &problems)
	return problems
}

// TestJSONSchemaAcceptsGoodConfigs: every configuration the loader accepts (the demo, the
// good fixtures) passes the schema: it never refuses a key or a value Parse takes.
func TestJSONSchemaAcceptsGoodConfigs(t *testing.T) {
	schema := JSONSchema(testRefs)
	files, _ := filepath.Glob("testdata/good/*.yaml")
	files = append(files, "demo.yaml")
	if len(files) < 3 {
		t.Fatalf("fixtures missing: %v", files)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(data); err != nil {
			t.Fatalf("%s: the loader refuses it: %v", f, err)
		}
		if p := refusals(t, schema, data); len(p) > 0 {
			t.Errorf("%s: the schema refuses what the loader accepts:\n  %s", f, strings.Join(p, "\n  "))
		}
	}
}

// TestJSONSchemaRefusesUnknownKeys: each fixture the loader refuses for an unknown key is
// refused by the schema at the same path, and so are typos at every level a chart user
// could make one (hand-typed cases, including keys of inline structs and recursion).
func TestJSONSchemaRefusesUnknownKeys(t *testing.T) {
	schema := JSONSchema(testRefs)
	cases := map[string]string{
		"top level":                   "serverr: {}\n",
		"server":                      "server: {fail_mod: open}\n",
		"server.tls":                  "server: {tls: {cert: x}}\n",
		"app inline device settings":  "apps: [{name: a, devicez: {}}]\n",
		"app limits":                  "apps: [{name: a, limits: [{name: l, requets: 5}]}]\n",
		"store.redis":                 "store: {redis: {adress: x}}\n",
		"nested RLS descriptor":       "rate_limit_service: {domains: [{domain: d, descriptors: [{key: a, descriptors: [{key: b, rate_limt: {}}]}]}]}\n",
		"attestation provider jwks":   "apps: [{name: a, attestation: {providers: [{type: x, jwks: {urll: y}}]}}]\n",
		"endpoint user":               "endpoints: [{name: e, user: {provider: p, role: [x]}}]\n",
		"jwt provider claims":         "jwt_providers: [{name: p, claims: {rolez: r}}]\n",
		"duration written as integer": "store: {redis: {timeout: 100}}\n",
		"duration without unit":       "store: {redis: {timeout: \"100\"}}\n",
		"boolean as string":           "server: {case_insensitive_paths: \"yes\"}\n",
		"integer as string":           "server: {trusted_hops: \"1\"}\n",
	}
	for _, f := range []string{"unknown-key.yaml", "unknown-key-nested.yaml", "server-tls-unknown-key.yaml"} {
		data, err := os.ReadFile(filepath.Join("testdata/bad", f))
		if err != nil {
			t.Fatal(err)
		}
		cases["fixture "+f] = string(data)
	}
	for name, doc := range cases {
		t.Run(name, func(t *testing.T) {
			if p := refusals(t, schema, []byte(doc)); len(p) == 0 {
				t.Errorf("the schema accepts %q", doc)
			}
		})
	}
}

// TestJSONSchemaDurations: the duration pattern accepts what time.ParseDuration accepts,
// on a hand-typed table.
func TestJSONSchemaDurations(t *testing.T) {
	re := regexp.MustCompile(durationPattern)
	for s, ok := range map[string]bool{
		"250ms": true, "1h30m": true, "0": true, "1.5s": true, ".5s": true, "-1s": true, "2us": true, "2µs": true, "100ns": true,
		"10": false, "ms": false, "1d": false, "": false, "1 s": false, "5s ": false, "1.s.": false,
	} {
		if re.MatchString(s) != ok {
			t.Errorf("%q: pattern says %v, want %v", s, !ok, ok)
		}
	}
}

// TestJSONSchemaKeysMatchTheLoader: for every struct reachable from File, the schema's keys
// are exactly the keys the strict decoder (checkKeys) accepts.
func TestJSONSchemaKeysMatchTheLoader(t *testing.T) {
	defs := JSONSchema(testRefs)["definitions"].(map[string]any)
	seen := map[reflect.Type]bool{}
	var walk func(reflect.Type)
	walk = func(ty reflect.Type) {
		for ty.Kind() == reflect.Pointer || ty.Kind() == reflect.Slice || ty.Kind() == reflect.Map {
			ty = ty.Elem()
		}
		if ty.Kind() != reflect.Struct || ty == reflect.TypeFor[time.Time]() || seen[ty] {
			return
		}
		seen[ty] = true
		loader := map[string]reflect.Type{}
		for _, f := range strictyaml.Fields(ty) {
			loader[f.Name] = f.Type
		}
		def, ok := defs[ty.String()].(map[string]any)
		if !ok {
			t.Errorf("no definition of %s", ty)
			return
		}
		if def["additionalProperties"] != false {
			t.Errorf("%s: unknown keys are not refused", ty)
		}
		if got, want := sortedKeys(def["properties"].(map[string]any)), sortedKeys(loader); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: schema keys %v, loader keys %v", ty, got, want)
		}
		for _, f := range loader {
			walk(f)
		}
	}
	walk(reflect.TypeFor[File]())
	if len(seen) < 20 || len(seen) != len(defs) {
		t.Errorf("walked %d structs, the schema defines %d", len(seen), len(defs))
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
