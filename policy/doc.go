// Package policy decides whether one request may pass.
//
// It owns the request model ([Input]), the verdict ([Decision]), the catalogue of every
// client-visible code with its HTTP status and its spelling in each error dialect, and the
// pipeline steps that turn an Input into a Decision. It never sees a protobuf or a gRPC type:
// the adapters (package extauthz, and the rate-limit service in package ratelimit) convert
// Envoy's messages into Inputs and Decisions into Envoy's messages.
package policy
