// Package extproctest holds ext_proc servers for tests, benchmarks and load runs.
package extproctest

import (
	"errors"
	"io"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

// Noop is the baseline ext_proc server: it answers CONTINUE to every message and keeps
// nothing, so that a comparison with Gatehouse's server measures Gatehouse's own work.
type Noop struct {
	extprocv3.UnimplementedExternalProcessorServer
}

// Process answers CONTINUE to every message of the stream until Envoy closes it.
func (Noop) Process(stream extprocv3.ExternalProcessor_ProcessServer) error {
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := stream.Send(continueFor(req)); err != nil {
			return err
		}
	}
}

var common = &extprocv3.CommonResponse{}

func continueFor(req *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
	out := &extprocv3.ProcessingResponse{}
	switch req.GetRequest().(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		out.Response = &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{Response: common}}
	case *extprocv3.ProcessingRequest_RequestBody:
		out.Response = &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{Response: common}}
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		out.Response = &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{Response: common}}
	case *extprocv3.ProcessingRequest_ResponseBody:
		out.Response = &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{Response: common}}
	case *extprocv3.ProcessingRequest_RequestTrailers:
		out.Response = &extprocv3.ProcessingResponse_RequestTrailers{RequestTrailers: &extprocv3.TrailersResponse{}}
	default:
		out.Response = &extprocv3.ProcessingResponse_ResponseTrailers{ResponseTrailers: &extprocv3.TrailersResponse{}}
	}
	return out
}
