package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// WorkloadSpec is the spec of Bowline's own kind, bowline.dev/v1alpha1
// Workload: a process that `bowline up` runs with a sidecar, the local-mode
// counterpart of a Kubernetes Deployment. Services select workloads by labels
// with a ServiceEntry workloadSelector, as Istio does for VMs.
type WorkloadSpec struct {
	// ServiceAccount is the workload's identity (spiffe://<td>/ns/<ns>/sa/<sa>); "default" when empty.
	ServiceAccount string `json:"serviceAccount,omitempty"`
	// Labels are the workload's labels (app and version drive routing and metrics).
	Labels map[string]string `json:"labels,omitempty"`
	// Command is the program and its arguments; a relative program path is
	// resolved against the directory of the file that declares the workload.
	Command []string `json:"command"`
	// Args are appended to Command.
	Args []string `json:"args,omitempty"`
	// Env is added to the process environment.
	Env map[string]string `json:"env,omitempty"`
	// WorkingDir is where the process runs; the declaring file's directory when empty.
	WorkingDir string `json:"workingDir,omitempty"`
	// Ports are the ports the app serves. The app is told where to listen
	// through $PORT (the first port); the sidecar receives mesh traffic for it.
	Ports []WorkloadPort `json:"ports,omitempty"`
	// Replicas is how many copies to run; 1 when zero.
	Replicas int `json:"replicas,omitempty"`
}

// WorkloadPort is one port of a Workload.
type WorkloadPort struct {
	// Name matches the ServiceEntry port name (http, grpc, tcp-..., Istio's naming).
	Name string `json:"name"`
	// ContainerPort is the port number the service port targets (as in a Pod spec).
	ContainerPort uint32 `json:"containerPort"`
	// Protocol is TCP (default) or UDP, as in Kubernetes; the application
	// protocol comes from the port name or the ServiceEntry.
	Protocol string `json:"protocol,omitempty"`
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// decodeWorkload decodes and checks a Workload spec from JSON.
func decodeWorkload(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var w WorkloadSpec
	if err := dec.Decode(&w); err != nil {
		return nil, FieldErrors{jsonFieldError(err)}
	}
	var errs FieldErrors
	add := func(path, format string, args ...any) {
		errs = append(errs, FieldError{Path: path, Reason: fmt.Sprintf(format, args...)})
	}
	if len(w.Command) == 0 || w.Command[0] == "" {
		add("spec.command", "required: the program to run")
	}
	if w.Replicas < 0 || w.Replicas > 100 {
		add("spec.replicas", "must be between 0 and 100")
	}
	if w.ServiceAccount != "" {
		for _, msg := range validation.IsDNS1123Subdomain(w.ServiceAccount) {
			add("spec.serviceAccount", "%s", msg)
		}
	}
	for _, k := range sortedKeys(w.Labels) {
		for _, msg := range validation.IsQualifiedName(k) {
			add("spec.labels["+k+"]", "invalid label key: %s", msg)
		}
		for _, msg := range validation.IsValidLabelValue(w.Labels[k]) {
			add("spec.labels["+k+"]", "invalid label value: %s", msg)
		}
	}
	for _, k := range sortedKeys(w.Env) {
		if !envName.MatchString(k) {
			add("spec.env["+k+"]", "invalid environment variable name")
		}
	}
	names, numbers := map[string]bool{}, map[uint32]bool{}
	for i, p := range w.Ports {
		path := fmt.Sprintf("spec.ports[%d]", i)
		if p.Name == "" {
			add(path+".name", "required")
		} else if names[p.Name] {
			add(path+".name", "duplicate port name %q", p.Name)
		}
		names[p.Name] = true
		if p.ContainerPort == 0 || p.ContainerPort > 65535 {
			add(path+".containerPort", "must be between 1 and 65535")
		} else if numbers[p.ContainerPort] {
			add(path+".containerPort", "duplicate port %d", p.ContainerPort)
		}
		numbers[p.ContainerPort] = true
		switch strings.ToUpper(p.Protocol) {
		case "", "TCP", "UDP":
		default:
			add(path+".protocol", "must be TCP or UDP")
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	if w.Replicas == 0 {
		w.Replicas = 1
	}
	if w.ServiceAccount == "" {
		w.ServiceAccount = "default"
	}
	return &w, nil
}

// jsonFieldError turns an encoding/json error into a field error.
func jsonFieldError(err error) FieldError {
	msg := err.Error()
	if i := strings.Index(msg, "unknown field "); i >= 0 {
		name := strings.Trim(msg[i+len("unknown field "):], `"`)
		return FieldError{Path: "spec." + name, Reason: fmt.Sprintf("unknown field %q in Workload", name)}
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return FieldError{Path: "spec." + te.Field, Reason: fmt.Sprintf("expected %s, got %s", te.Type, te.Value)}
	}
	return FieldError{Path: "spec", Reason: strings.TrimPrefix(msg, "json: ")}
}
