package compose

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// composeFile mirrors the parts of the compose specification this file uses. Decoding is
// strict, so a key outside them (a typo such as `depends-on`) fails the test.
type composeFile struct {
	Name     string             `yaml:"name"`
	Services map[string]service `yaml:"services"`
}

type service struct {
	Image       string                `yaml:"image"`
	Build       string                `yaml:"build"`
	Command     []string              `yaml:"command"`
	Volumes     []string              `yaml:"volumes"`
	Ports       []string              `yaml:"ports"`
	Environment map[string]string     `yaml:"environment"`
	DependsOn   map[string]dependency `yaml:"depends_on"`
	Healthcheck *struct {
		Test        []string `yaml:"test"`
		Interval    string   `yaml:"interval"`
		Timeout     string   `yaml:"timeout"`
		Retries     int      `yaml:"retries"`
		StartPeriod string   `yaml:"start_period"`
	} `yaml:"healthcheck"`
}

type dependency struct {
	Condition string `yaml:"condition"`
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	raw, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	var f composeFile
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	return f
}

// TestComposeServices: the four services of the walk-through, nothing else.
func TestComposeServices(t *testing.T) {
	f := loadCompose(t)
	var names []string
	for n := range f.Services {
		names = append(names, n)
	}
	slices.Sort(names)
	if want := []string{"echo", "envoy", "gatehouse", "redis"}; !slices.Equal(names, want) {
		t.Fatalf("services %v, want %v", names, want)
	}
}

// pinned is image:tag with a tag that names a patch release (no latest, no bare major or
// minor, which move). wholeReleases are the images whose releases are whole numbers.
var (
	pinned        = regexp.MustCompile(`^[a-z0-9./-]+:v?[0-9]+\.[0-9]+\.[0-9]+(-[a-z0-9.]+)?$`)
	wholeReleases = regexp.MustCompile(`^mendhak/http-https-echo:[0-9]+$`)
)

// TestComposeImagesPinned: every pulled image names a version; Gatehouse is built here.
func TestComposeImagesPinned(t *testing.T) {
	f := loadCompose(t)
	for name, s := range f.Services {
		if name == "gatehouse" {
			if s.Build != "../.." || s.Image == "" {
				t.Errorf("gatehouse: build %q, image %q; want built from the repository root with an image name", s.Build, s.Image)
			}
			if _, err := os.Stat(filepath.Join(s.Build, "Dockerfile")); err != nil {
				t.Errorf("gatehouse: no Dockerfile in the build context: %v", err)
			}
			continue
		}
		if !pinned.MatchString(s.Image) && !wholeReleases.MatchString(s.Image) {
			t.Errorf("%s: image %q is not pinned to a release", name, s.Image)
		}
	}
}

// TestComposeMounts: every file or folder mounted from the host exists in the repository,
// read-only, and Gatehouse runs the mounted configuration (never the demo's).
func TestComposeMounts(t *testing.T) {
	f := loadCompose(t)
	for name, s := range f.Services {
		for _, v := range s.Volumes {
			parts := strings.Split(v, ":")
			if len(parts) != 3 || parts[2] != "ro" || !strings.HasPrefix(parts[0], "./") {
				t.Errorf("%s: volume %q: want ./host:container:ro", name, v)
				continue
			}
			if _, err := os.Stat(parts[0]); err != nil {
				t.Errorf("%s: mounts %s, which does not exist: %v", name, parts[0], err)
			}
		}
	}
	gh := f.Services["gatehouse"]
	if !slices.Equal(gh.Volumes, []string{"./gatehouse:/etc/gatehouse:ro"}) {
		t.Errorf("gatehouse volumes %v: want the folder ./gatehouse at /etc/gatehouse", gh.Volumes)
	}
	if _, err := os.Stat("gatehouse/config.yaml"); err != nil {
		t.Error(err)
	}
	want := []string{"serve", "--config", "/etc/gatehouse/config.yaml", "--grpc-addr", ":9191", "--admin-addr", ":9192"}
	if !slices.Equal(gh.Command, want) {
		t.Errorf("gatehouse command %q, want %q", gh.Command, want)
	}
	if !slices.Equal(f.Services["envoy"].Volumes, []string{"./envoy.yaml:/etc/envoy/envoy.yaml:ro"}) ||
		!slices.Contains(f.Services["envoy"].Command, "/etc/envoy/envoy.yaml") {
		t.Errorf("envoy must run the mounted envoy.yaml: volumes %v, command %v", f.Services["envoy"].Volumes, f.Services["envoy"].Command)
	}
}

// TestComposePorts: Envoy on the host's 8080; Gatehouse's ports on the host's loopback
// only; Redis and the echo API not published at all.
func TestComposePorts(t *testing.T) {
	f := loadCompose(t)
	want := map[string][]string{
		"envoy":     {"8080:8080"},
		"gatehouse": {"127.0.0.1:9191:9191", "127.0.0.1:9192:9192"},
		"echo":      nil,
		"redis":     nil,
	}
	for name, ports := range want {
		if got := f.Services[name].Ports; !slices.Equal(got, ports) {
			t.Errorf("%s: ports %v, want %v", name, got, ports)
		}
	}
	if got := f.Services["echo"].Environment["HTTP_PORT"]; got != "8080" {
		t.Errorf("echo listens on %q, want 8080 (envoy.yaml's echo cluster)", got)
	}
}

// TestComposeStartOrder: Redis is healthy before Gatehouse starts, Envoy starts after
// Gatehouse and the echo API, and every service_healthy condition names a service that
// has a healthcheck.
func TestComposeStartOrder(t *testing.T) {
	f := loadCompose(t)
	want := map[string]map[string]string{
		"envoy":     {"gatehouse": "service_started", "echo": "service_started"},
		"gatehouse": {"redis": "service_healthy"},
	}
	for name, s := range f.Services {
		got := map[string]string{}
		for dep, d := range s.DependsOn {
			got[dep] = d.Condition
			if _, ok := f.Services[dep]; !ok {
				t.Errorf("%s depends on %s, which is not a service", name, dep)
			}
			if d.Condition == "service_healthy" && f.Services[dep].Healthcheck == nil {
				t.Errorf("%s waits for %s to be healthy, which has no healthcheck", name, dep)
			}
		}
		if len(got) != len(want[name]) {
			t.Errorf("%s depends on %v, want %v", name, got, want[name])
		}
		for dep, cond := range want[name] {
			if got[dep] != cond {
				t.Errorf("%s depends on %s with %q, want %q", name, dep, got[dep], cond)
			}
		}
	}
	for _, name := range []string{"envoy", "redis"} {
		hc := f.Services[name].Healthcheck
		if hc == nil || len(hc.Test) < 2 || hc.Test[0] != "CMD" || hc.Retries == 0 {
			t.Errorf("%s: want a CMD healthcheck with retries, got %+v", name, hc)
		}
	}
	// Envoy's healthcheck reads the health of the cluster that envoy.yaml calls gatehouse.
	if hc := strings.Join(f.Services["envoy"].Healthcheck.Test, " "); !strings.Contains(hc, "^gatehouse::") {
		t.Errorf("envoy healthcheck %q does not read the gatehouse cluster's health", hc)
	}
}

// TestComposeNamesAgree: the addresses in envoy.yaml and the Gatehouse configuration are
// services of the compose file, on the ports those services listen on.
func TestComposeNamesAgree(t *testing.T) {
	f := loadCompose(t)
	var envoy struct {
		StaticResources struct {
			Clusters []struct {
				Name           string `yaml:"name"`
				LoadAssignment struct {
					Endpoints []struct {
						LbEndpoints []struct {
							Endpoint struct {
								Address struct {
									SocketAddress struct {
										Address   string `yaml:"address"`
										PortValue int    `yaml:"port_value"`
									} `yaml:"socket_address"`
								} `yaml:"address"`
							} `yaml:"endpoint"`
						} `yaml:"lb_endpoints"`
					} `yaml:"endpoints"`
				} `yaml:"load_assignment"`
			} `yaml:"clusters"`
		} `yaml:"static_resources"`
	}
	readYAML(t, "envoy.yaml", &envoy)
	ports := map[string]int{"gatehouse": 9191, "echo": 8080}
	for _, c := range envoy.StaticResources.Clusters {
		for _, e := range c.LoadAssignment.Endpoints {
			for _, lb := range e.LbEndpoints {
				sa := lb.Endpoint.Address.SocketAddress
				if _, ok := f.Services[sa.Address]; !ok || ports[sa.Address] != sa.PortValue {
					t.Errorf("envoy.yaml cluster %s: %s:%d is not a compose service's port", c.Name, sa.Address, sa.PortValue)
				}
			}
		}
	}
	var gh struct {
		Store struct {
			Type  string `yaml:"type"`
			Redis struct {
				Addrs []string `yaml:"addrs"`
			} `yaml:"redis"`
		} `yaml:"store"`
	}
	readYAML(t, "gatehouse/config.yaml", &gh)
	if gh.Store.Type != "redis" || !slices.Equal(gh.Store.Redis.Addrs, []string{"redis:6379"}) {
		t.Errorf("gatehouse store %+v, want redis at the compose service redis:6379", gh.Store)
	}
}

func readYAML(t *testing.T, path string, out any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, out); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
