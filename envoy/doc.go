// Package envoy holds ready-to-copy proxy configurations for Gatehouse: an Envoy bootstrap for a
// pod (sidecar/, TCP and Unix-socket variants), Istio resources (istio/) and Envoy Gateway
// resources (envoy-gateway/). See README.md for which file fits which setup.
//
// The package has no code of its own. Its tests load every Envoy configuration — whole
// bootstraps and the Envoy fragments inside Istio EnvoyFilter and Envoy Gateway
// EnvoyPatchPolicy patches — into go-control-plane's protos, rejecting unknown fields and
// unresolvable typed_config, and run the protos' ValidateAll; Istio and Envoy Gateway resources
// are decoded strictly into minimal mirrors of their CRD types (mesh_test.go lists the fields).
package envoy
