package local

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/bowline-mesh/bowline/internal/gatewayapi"
)

// StateFile is the name of the state file in the state directory.
const StateFile = "up.json"

// State is what `bowline up` writes to <state-dir>/up.json for people and
// scripts: where everything listens. It is rewritten whenever it changes.
type State struct {
	// PID is the process id of `bowline up`.
	PID int `json:"pid"`
	// Started is when `bowline up` started.
	Started time.Time `json:"started"`
	// ConfigDir is the directory being watched.
	ConfigDir string `json:"configDir"`
	// ControlPlane lists the control plane's addresses.
	ControlPlane ControlPlaneState `json:"controlPlane"`
	// Ingress is the ingress gateway's base URL ("" when no Gateway binds it).
	Ingress string `json:"ingress"`
	// IngressBound is the address the ingress listens on when it is not the
	// URL's (it binds every address: --ingress-address 0.0.0.0).
	IngressBound string `json:"ingressBound,omitempty"`
	// IngressAdmin is the ingress gateway's admin address.
	IngressAdmin string `json:"ingressAdmin,omitempty"`
	// Workloads lists every replica.
	Workloads []ReplicaState `json:"workloads"`
	// GatewayAPI is the status of the Gateway API objects of class istio
	// (GatewayClass, Gateway, HTTPRoute, GRPCRoute): the conditions the
	// controller would write to them on Kubernetes.
	GatewayAPI []gatewayapi.Status `json:"gatewayAPI,omitempty"`
}

// ControlPlaneState lists the control plane's addresses.
type ControlPlaneState struct {
	XDS   string `json:"xds"`
	Debug string `json:"debug"`
}

// ReplicaState describes one running replica of a Workload.
type ReplicaState struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	Workload  string `json:"workload"`
	Replica   int    `json:"replica"`
	// AppPort is where the app listens ($PORT).
	AppPort uint32 `json:"appPort"`
	// AppPorts maps each declared port name to the app's actual port.
	AppPorts map[string]uint32 `json:"appPorts,omitempty"`
	// InboundPort is where the sidecar receives mesh traffic for AppPort.
	InboundPort uint32 `json:"inboundPort"`
	// InboundPorts maps each declared port name to the sidecar's inbound port.
	InboundPorts map[string]uint32 `json:"inboundPorts,omitempty"`
	// OutboundProxy is the sidecar's explicit HTTP proxy (the app's HTTP_PROXY).
	OutboundProxy string `json:"outboundProxy"`
	// Netns and PodIP are the replica's network namespace and address
	// (`bowline up --netns` only).
	Netns string `json:"netns,omitempty"`
	PodIP string `json:"podIP,omitempty"`
	// Admin is the sidecar's admin address.
	Admin string `json:"admin"`
	// Log is the path of the app's log file; SidecarLog the sidecar's.
	Log        string `json:"log"`
	SidecarLog string `json:"sidecarLog"`
}

// WriteState writes s to dir/up.json atomically (write + rename).
func WriteState(dir string, s *State) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".up-*.json")
	if err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("write state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write state: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, StateFile)); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write state: %w", err)
	}
	return nil
}

// ReadState reads dir/up.json.
func ReadState(dir string) (*State, error) {
	data, err := os.ReadFile(filepath.Join(dir, StateFile))
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	var s State
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("read state %s: %w", filepath.Join(dir, StateFile), err)
	}
	return &s, nil
}
