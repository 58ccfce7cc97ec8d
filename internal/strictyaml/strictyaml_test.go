package strictyaml

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

type limit struct {
	Requests uint32        `yaml:"requests"`
	Per      time.Duration `yaml:"per"`
}

type endpoint struct {
	Name    string            `yaml:"name"`
	Methods []string          `yaml:"methods"`
	Limits  []limit           `yaml:"limits"`
	Hops    int8              `yaml:"hops"`
	Prefix  bool              `yaml:"prefix"`
	Until   time.Time         `yaml:"until"`
	Labels  map[string]string `yaml:"labels"`
	Extra   any               `yaml:"extra"`
}

type doc struct {
	Endpoints []endpoint `yaml:"endpoints"`
}

// TestMessages: each wrongly typed value is named by its key path and line, in the
// words of the file (hand-typed expectations).
func TestMessages(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"string for a list", "endpoints:\n  - name: a\n  - name: b\n  - name: c\n    methods: GET\n",
			"endpoints[2].methods: expected a list of strings, got a string (line 5)"},
		{"mapping for a list", "endpoints: {name: a}\n", "endpoints: expected a list of mappings, got a mapping (line 1)"},
		{"list for a string", "endpoints: [{name: [a]}]\n", "endpoints[0].name: expected a string, got a list (line 1)"},
		{"string for an integer", "endpoints: [{limits: [{requests: lots}]}]\n",
			"endpoints[0].limits[0].requests: expected a non-negative integer, got a string (line 1)"},
		{"negative for unsigned", "endpoints: [{limits: [{requests: -1}]}]\n",
			"endpoints[0].limits[0].requests: expected an integer from 0 to 4294967295 (line 1)"},
		{"just above uint32", "endpoints: [{limits: [{requests: 4294967296}]}]\n",
			"endpoints[0].limits[0].requests: expected an integer from 0 to 4294967295 (line 1)"},
		{"just above int8", "endpoints: [{hops: 128}]\n", "endpoints[0].hops: expected an integer from -128 to 127 (line 1)"},
		{"just below int8", "endpoints: [{hops: -129}]\n", "endpoints[0].hops: expected an integer from -128 to 127 (line 1)"},
		{"number for a duration", "endpoints: [{limits: [{per: 1.5}]}]\n",
			"endpoints[0].limits[0].per: expected a duration such as 30s, got a number (line 1)"},
		{"integer for a duration", "endpoints: [{limits: [{per: 100}]}]\n",
			"endpoints[0].limits[0].per: expected a duration such as 30s, got an integer (line 1)"},
		{"word for a boolean", "endpoints:\n  - prefix: maybe\n", "endpoints[0].prefix: expected a boolean (true or false), got a string (line 2)"},
		{"bad time", "endpoints: [{until: tomorrow}]\n", "endpoints[0].until: expected a time such as 2030-01-01T00:00:00Z, got a string (line 1)"},
		{"list for a map", "endpoints: [{labels: [a]}]\n", "endpoints[0].labels: expected a mapping, got a list (line 1)"},
		{"map value", "endpoints: [{labels: {team: [a]}}]\n", "endpoints[0].labels.team: expected a string, got a list (line 1)"},
		{"unknown key", "endpoints: [{nme: a}]\n", "endpoints[0].nme: unknown key (line 1; known keys: extra, hops, labels, limits, methods, name, prefix, until)"},
		{"scalar document", "hello\n", "configuration: expected a mapping, got a string (line 1)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var d doc
			errs := Decode([]byte(tc.yaml), &d)
			if len(errs) != 1 || errs[0].Error() != tc.want {
				t.Fatalf("errors %v\nwant [%s]", errs, tc.want)
			}
		})
	}
}

// TestAccepts: values of the right type pass, at the edges of their range, and nulls and
// anything for an interface.
func TestAccepts(t *testing.T) {
	src := "endpoints:\n  - {name: 42, methods: [GET], hops: -128, limits: [{requests: 4294967295, per: 1m}], prefix: true,\n" +
		"     until: 2030-01-01T00:00:00Z, labels: {a: b}, extra: [1, {x: y}]}\n  - {hops: 127, methods: ~, limits: }\n"
	var d doc
	if errs := Decode([]byte(src), &d); errs != nil {
		t.Fatal(errs)
	}
	if d.Endpoints[0].Name != "42" || d.Endpoints[0].Limits[0].Requests != 4294967295 || d.Endpoints[1].Hops != 127 {
		t.Fatalf("decoded %+v", d)
	}
}

// TestNoValueEchoed: a message names the kind of a wrong value and where it is, never the
// value, including a value whose explicit tag (!!int, !!null...) it does not fit.
func TestNoValueEchoed(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"string for an integer", "endpoints: [{hops: s3cr3t-value}]\n", "endpoints[0].hops: expected an integer, got a string (line 1)"},
		{"tagged !!int, for an integer", "endpoints: [{hops: !!int s3cr3t-value}]\n", "endpoints[0].hops: the value does not fit its tag !!int (line 1)"},
		{"tagged !!int, for a string", "endpoints: [{name: !!int s3cr3t-value}]\n", "endpoints[0].name: the value does not fit its tag !!int (line 1)"},
		{"tagged !!float, in a list of strings", "endpoints: [{methods: [!!float s3cr3t-value]}]\n", "endpoints[0].methods[0]: the value does not fit its tag !!float (line 1)"},
		{"tagged !!bool, in a map", "endpoints: [{labels: {a: !!bool s3cr3t-value}}]\n", "endpoints[0].labels.a: the value does not fit its tag !!bool (line 1)"},
		{"tagged !!null", "endpoints: [{name: !!null s3cr3t-value}]\n", "endpoints[0].name: the value does not fit its tag !!null (line 1)"},
		{"tagged !!binary", "endpoints: [{name: !!binary s3cr3t-value}]\n", "endpoints[0].name: the value does not fit its tag !!binary (line 1)"},
		{"tagged !!timestamp", "endpoints: [{until: !!timestamp s3cr3t-value}]\n", "endpoints[0].until: the value does not fit its tag !!timestamp (line 1)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var d doc
			errs := Decode([]byte(tc.yaml), &d)
			if len(errs) != 1 || errs[0].Error() != tc.want || strings.Contains(errs[0].Error(), "s3cr3t") {
				t.Fatalf("errors %v, want [%s]", errs, tc.want)
			}
		})
	}
}

// TestAliases: an anchored value is checked where it is used, once per type, so that a
// bomb of nested aliases or an alias inside its own anchor neither hangs nor repeats.
func TestAliases(t *testing.T) {
	var bomb strings.Builder
	bomb.WriteString("a0: &a0 [{name: x, hops: many}]\n")
	for i := 1; i < 12; i++ {
		bomb.WriteString(fmt.Sprintf("a%d: &a%d [%s]\n", i, i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*a%d, ", i-1), 10), ", ")))
	}
	bomb.WriteString("endpoints: *a0\n")
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(bomb.String()), &n); err != nil {
		t.Fatal(err)
	}
	errs := Check(n.Content[0], reflect.TypeFor[doc](), "")
	// The aN keys are unknown (11 of them) and the one bad value is reported once.
	bad := 0
	for _, e := range errs {
		if strings.Contains(e.Error(), "hops: expected an integer") {
			bad++
		}
	}
	if bad != 1 {
		t.Fatalf("%d reports of the bad value, want 1: %v", bad, errs)
	}
	if err := yaml.Unmarshal([]byte("endpoints: &l\n  - {name: a, labels: *l}\n"), &n); err != nil {
		t.Fatal(err)
	}
	errs = Check(n.Content[0], reflect.TypeFor[doc](), "")
	if len(errs) != 1 || errs[0].Error() != "endpoints[0].labels: expected a mapping, got a list (line 1)" {
		t.Fatalf("errors %v", errs)
	}
}

// TestMergeKeys: the keys a merge brings in are checked like the mapping's own.
func TestMergeKeys(t *testing.T) {
	var d doc
	errs := Decode([]byte("base: &b {hops: 1}\nendpoints:\n  - <<: [*b, {bogus: 1}]\n    name: a\n"), &d)
	want := []string{"base: unknown key (line 1; known keys: endpoints)", "endpoints[0].bogus: unknown key (line 3; known keys: extra, hops, labels, limits, methods, name, prefix, until)"}
	if len(errs) != 2 || errs[0].Error() != want[0] || errs[1].Error() != want[1] {
		t.Fatalf("errors %v, want %q", errs, want)
	}
}
