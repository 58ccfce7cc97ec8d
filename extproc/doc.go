// Package extproc is the response phase: Envoy's external processing API
// (envoy.service.ext_proc.v3.ExternalProcessor/Process), served beside Check and
// ShouldRateLimit. Envoy opens one stream per HTTP request, after ext_authz allowed it,
// and sends the phases it is configured to send: request headers, request body, response
// headers, response body.
//
// The exchange's identity (app, endpoint, decision, caller) comes from the ext_authz
// dynamic metadata Envoy forwards; a route Gatehouse never saw, or one whose app and
// endpoint configure no feature, is answered CONTINUE with a mode override that skips
// every later phase, so that it costs one message and nothing more.
//
// The features of a route run as hooks in a fixed order: request hooks on the complete
// request, response hooks on the complete upstream response, done hooks when the stream
// ends however it ends. Signing runs last, on whatever the client receives.
package extproc
