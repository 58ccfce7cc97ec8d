package config

import "github.com/gatehouse/gatehouse/policy"

// Extensions are the top-level sections of the rate-limit and device steps.
type Extensions struct{}

// AppExtensions are an app's rate-limit and device settings.
type AppExtensions struct {
	DeviceSettings `yaml:",inline"`
}

// EndpointExtensions are an endpoint's rate-limit settings.
type EndpointExtensions struct{}

// Parts are the compiled rate-limit and device parts of a Snapshot.
type Parts struct{}

// Runtime holds the long-lived rate-limit and device dependencies a compile wires in.
type Runtime struct{}

// extensions compiles the rate-limit and device sections.
func (c *compiler) extensions(f *File, s *Snapshot, opt *policy.Options, apps map[string]*policy.App, eps map[string]*policy.Endpoint) {
}
