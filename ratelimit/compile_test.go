package ratelimit

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/gatehouse/gatehouse/ratelimit/memstore"
)

func TestCompileErrors(t *testing.T) {
	store := memstore.New(MemoryConfig{}, nil)
	tests := []struct {
		name string
		in   CompileInput
		want []string // every message must appear
	}{
		{"all problems of a limit", CompileInput{Apps: map[string]AppLimits{"demo": {FailMode: "maybe", Limits: []LimitConfig{
			{Name: "x", Key: []string{"device", "colour", "device"}, Algorithm: "gcra", Requests: 0, Per: 0, Burst: -1},
		}}}}, []string{
			`apps.demo.fail_mode: must be closed, open or local, not "maybe"`,
			`apps.demo.limits[0].key[1]: must be one of device, app, endpoint, ip, license, org, not "colour"`,
			`apps.demo.limits[0].key[2]: duplicate "device"`,
			`apps.demo.limits[0].requests: must be ≥ 1`,
			`apps.demo.limits[0].per: must be > 0`,
			`apps.demo.limits[0].burst: must be ≥ 1`,
		}},
		{"calendar", CompileInput{Endpoints: map[string][]LimitConfig{"e": {
			{Name: "m", Requests: 1, Period: "fortnight", TimeZone: "Mars/Olympus", Per: time.Hour, Burst: 3},
		}}}, []string{
			`endpoints.e[0].period: must be day, week, month or year, not "fortnight"`,
			`endpoints.e[0].time_zone: unknown time zone "Mars/Olympus"`,
			`endpoints.e[0].per: not used by calendar`,
			`endpoints.e[0].burst: only for algorithm gcra`,
		}},
		{"names and codes", CompileInput{Orgs: map[string][]LimitConfig{"o": {
			{Requests: 1, Per: time.Second},
			{Name: "a", Requests: 1, Per: time.Second, Code: "TEAPOT"},
			{Name: "a", Requests: 1, Per: time.Second, Algorithm: "leaky"},
			{Name: "c", Credits: true, Requests: -1, Per: time.Second},
		}}}, []string{
			`orgs.o[0].name: required`,
			`orgs.o[1].code: must be one of DEVICE_RATE_LIMITED`,
			`orgs.o[2].name: duplicate name "a"`,
			`orgs.o[2].algorithm: must be gcra, fixed_window or calendar, not "leaky"`,
			`orgs.o[3].requests: must be ≥ 0 (the initial credits)`,
			`orgs.o[3].per: not used by credits`,
		}},
		{"lockout and rls", CompileInput{
			Lockout: LockoutConfig{MaxFailures: 3, Key: []string{"email"}},
			RLS:     RLSConfig{FailMode: "panic", Files: []string{"testdata/does-not-exist.yaml"}, Domains: []DomainConfig{{Domain: "x"}, {Domain: "x"}}},
		}, []string{
			`lockout.window: must be > 0`,
			`lockout.lock_for: must be > 0`,
			`lockout.key[0]: must be ip, device, user or account, not "email"`,
			`rate_limit_service.fail_mode: must be error, allow or local, not "panic"`,
			`rate_limit_service.files[0] (testdata/does-not-exist.yaml): open testdata/does-not-exist.yaml`,
			`rate_limit_service.domains[1].domain: duplicate domain "x"`,
		}},
		{"rls domains that would share counter ids", CompileInput{RLS: RLSConfig{Domains: []DomainConfig{
			{Domain: "a#w1"}, {Domain: "x/override"}, {Domain: "x/override/y"},
		}}}, []string{
			`rate_limit_service.domains[0].domain: must not contain # nor end in /override`,
			`rate_limit_service.domains[1].domain: must not contain # nor end in /override`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile(tt.in, store)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("missing %q in:\n%v", w, err)
				}
			}
			if n := len(strings.Split(err.Error(), "\n")); n != len(tt.want) {
				t.Errorf("%d errors, want %d:\n%v", n, len(tt.want), err)
			}
		})
	}
}

// TestBadRLSFiles: one bad file per validation rule, with its message.
func TestBadRLSFiles(t *testing.T) {
	want := map[string]string{
		"empty-domain.yaml":         ".domain: required",
		"unknown-key.yaml":          "descriptors[0].rate_limt: unknown key (line 4)",
		"bad-unit.yaml":             `descriptors[0].rate_limit.unit: must be second, minute, hour, day, week, month or year, not "fortnight"`,
		"unlimited-with-unit.yaml":  "descriptors[0].rate_limit.unit: should not be set when unlimited",
		"duplicate-descriptor.yaml": `descriptors[1]: duplicate descriptor "d.a_b"`,
		"empty-key.yaml":            "descriptors[0].key: required",
		"replaces-self.yaml":        "descriptors[0].rate_limit.replaces[0].name: a limit cannot replace itself",
		"gcra-zero.yaml":            "descriptors[0].descriptors[0].rate_limit.requests_per_unit: must be ≥ 1",
		"share-no-wildcard.yaml":    `descriptors[0].share_threshold: only for a wildcard value (ending in *), not "files"`,
		// The rest of envoyproxy/ratelimit's rules (its config_impl.go).
		"missing-unit.yaml":       `descriptors[0].rate_limit.unit: must be second, minute, hour, day, week, month or year, not ""`,
		"unknown-unit-case.yaml":  `descriptors[0].rate_limit.unit: must be second, minute, hour, day, week, month or year, not "UNKNOWN"`,
		"replaces-empty.yaml":     "descriptors[0].rate_limit.replaces[0].name: required",
		"non-string-key.yaml":     "descriptors[0]: a key is not a string (line 4)",
		"list-of-scalars.yaml":    "descriptors[0].descriptors[0]: a list item must be a map",
		"negative-requests.yaml":  "descriptors[0].rate_limit.requests_per_unit: expected an integer from 0 to 4294967295 (line 4)",
		"not-yaml.yaml":           "yaml: line",
		"duplicate-key-only.yaml": `descriptors[0].descriptors[1]: duplicate descriptor "d.a.b"`,
		"duplicate-wildcard.yaml": `descriptors[1]: duplicate descriptor "d.path_/v1/*"`,
	}
	files, _ := filepath.Glob("testdata/bad/*.yaml")
	if len(files) != len(want) {
		t.Fatalf("%d bad files, %d expectations", len(files), len(want))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			_, err := Compile(CompileInput{RLS: RLSConfig{Files: []string{f}}}, memstore.New(MemoryConfig{}, nil))
			if err == nil || !strings.Contains(err.Error(), want[filepath.Base(f)]) || !strings.Contains(err.Error(), "("+f+")") {
				t.Fatalf("got %v, want %q", err, want[filepath.Base(f)])
			}
		})
	}
}

// TestGoodRLSFiles: every sample in testdata compiles, and the YAML shape of CompileInput
// decodes (durations as strings).
func TestGoodRLSFiles(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.yaml")
	if _, err := Compile(CompileInput{RLS: RLSConfig{Files: files}}, memstore.New(MemoryConfig{}, nil)); err != nil {
		t.Fatal(err)
	}
	doc := `
apps:
  demo:
    fail_mode: local
    limits:
      - {name: per_device, key: [device], algorithm: gcra, requests: 50, per: 1s, burst: 100}
      - {name: monthly, requests: 100000, period: month, time_zone: Europe/Berlin}
endpoints:
  GET /v1/limited:
    - {name: per_app, key: [app], requests: 3, per: 1m}
lockout: {max_failures: 5, window: 10m, lock_for: 15m, key: [ip, device]}
rls:
  files: [testdata/demo-rls.yaml]
  add_headers: true
`
	var in CompileInput
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&in); err != nil {
		t.Fatal(err)
	}
	if in.Endpoints["GET /v1/limited"][0].Per != time.Minute || in.Lockout.LockFor != 15*time.Minute {
		t.Fatalf("decoded %+v", in)
	}
	if _, err := Compile(in, memstore.New(MemoryConfig{}, nil)); err != nil {
		t.Fatal(err)
	}
}

func FuzzParseDomain(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yaml")
	for _, p := range files {
		b, _ := os.ReadFile(p)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := ParseDomain(data)
		if err != nil {
			return
		}
		_, _ = Compile(CompileInput{RLS: RLSConfig{Domains: []DomainConfig{d}}}, memstore.New(MemoryConfig{}, nil))
	})
}

// TestDuplicateDomainAcrossFiles: as envoyproxy/ratelimit (without its merge setting), a
// domain in two files is refused, naming the second file.
func TestDuplicateDomainAcrossFiles(t *testing.T) {
	_, err := Compile(CompileInput{RLS: RLSConfig{Files: []string{"testdata/basic.yaml", "testdata/corner.yaml", "testdata/basic.yaml"}}},
		memstore.New(MemoryConfig{}, nil))
	if want := `rate_limit_service.files[2] (testdata/basic.yaml).domain: duplicate domain "basic"`; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v, want %q", err, want)
	}
}
