package config

import "github.com/gatehouse/gatehouse/policy"

// DeviceSettings are an app's device steps: network lists, attestation and licenses.
type DeviceSettings struct{}

// device compiles an app's device steps into app.Device (nil when none are configured).
func (c *compiler) device(path string, a *App, app *policy.App) {}
