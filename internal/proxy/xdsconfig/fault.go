package xdsconfig

import (
	"fmt"

	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
)

func unmarshalFault(f *faultv3.HTTPFault, path string) (*Fault, error) {
	if err := checkFields(f, path, "delay", "abort"); err != nil {
		return nil, err
	}
	out := &Fault{}
	if d := f.GetDelay(); d != nil {
		if err := checkFields(d, path+".delay", "fixed_delay", "percentage"); err != nil {
			return nil, err
		}
		if d.GetFixedDelay() == nil {
			return nil, fmt.Errorf("field %s.delay.fixed_delay: missing", path)
		}
		out.Delay = d.GetFixedDelay().AsDuration()
		out.DelayPerMillion = fractionPerMillion(d.GetPercentage())
	}
	if a := f.GetAbort(); a != nil {
		if err := checkFields(a, path+".abort", "http_status", "grpc_status", "percentage"); err != nil {
			return nil, err
		}
		switch e := a.GetErrorType().(type) {
		case *faultv3.FaultAbort_HttpStatus:
			if e.HttpStatus < 200 || e.HttpStatus > 599 {
				return nil, fmt.Errorf("field %s.abort.http_status: %d out of range", path, e.HttpStatus)
			}
			out.AbortStatus = int(e.HttpStatus)
		case *faultv3.FaultAbort_GrpcStatus:
			out.AbortStatus, out.AbortGRPCStatus, out.HasGRPCAbort = 200, e.GrpcStatus, true
		default:
			return nil, fmt.Errorf("field %s.abort.error_type: missing", path)
		}
		out.AbortPerMillion = fractionPerMillion(a.GetPercentage())
	}
	return out, nil
}
