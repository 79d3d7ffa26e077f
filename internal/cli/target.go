package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/bowline-mesh/bowline/internal/local"
)

// upLocator finds the `bowline up` run a debugging command talks to:
// --state-dir or --dir when given, else the run in the working directory
// (./.bowline, locked by a live run), else the only run registered on this
// machine in local.RuntimeDir(). Several runs and no choice is an error
// listing them.
type upLocator struct {
	dir, stateDir string
	// runtimeDir and cwd are injected by tests; empty means the real ones.
	runtimeDir, cwd string
}

func (l *upLocator) flags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&l.dir, "dir", "", "the directory a `bowline up` runs (default: the one running here, or the only one on this machine)")
	cmd.Flags().StringVar(&l.stateDir, "state-dir", "", "the state directory of that `bowline up` (default DIR/.bowline)")
}

// errNoUp says no running `bowline up` was found.
var errNoUp = errors.New("no running bowline up found (looked in ./.bowline and " + local.RuntimeDir() + ")")

// find returns the state of the chosen run.
func (l *upLocator) find() (*local.State, error) {
	stateDir := l.stateDir
	if stateDir == "" && l.dir != "" {
		stateDir = filepath.Join(l.dir, ".bowline")
	}
	if stateDir != "" {
		if !local.Running(stateDir) {
			return nil, &exitError{code: 1, err: fmt.Errorf("no bowline up is running with state directory %s", stateDir)}
		}
		return local.ReadState(stateDir)
	}
	cwd, runtimeDir := l.cwd, l.runtimeDir
	if cwd == "" {
		cwd, _ = os.Getwd()
	}
	if runtimeDir == "" {
		runtimeDir = local.RuntimeDir()
	}
	runs := local.FindRunning(cwd, runtimeDir)
	here := filepath.Join(cwd, ".bowline")
	switch {
	case len(runs) == 0:
		return nil, errNoUp
	case runs[0] == here || len(runs) == 1:
		return local.ReadState(runs[0])
	}
	list := make([]string, len(runs))
	for i, r := range runs {
		list[i] = r
		if st, err := local.ReadState(r); err == nil {
			list[i] = fmt.Sprintf("%s (pid %d)", st.ConfigDir, st.PID)
		}
	}
	return nil, &exitError{code: 1, err: fmt.Errorf("%d bowline up runs on this machine: %s; choose one with --dir", len(runs), strings.Join(list, ", "))}
}

// proxyTarget is one proxy of a run: a replica's sidecar or the ingress gateway.
type proxyTarget struct {
	name, namespace, workload string
	admin                     string
}

func (p proxyTarget) String() string { return p.name + "." + p.namespace }

// targets lists the proxies of a run.
func targets(st *local.State) []proxyTarget {
	var out []proxyTarget
	for _, w := range st.Workloads {
		out = append(out, proxyTarget{name: w.Name, namespace: w.Namespace, workload: w.Workload, admin: w.Admin})
	}
	if st.IngressAdmin != "" {
		out = append(out, proxyTarget{name: "istio-ingressgateway", namespace: "istio-system", workload: "istio-ingressgateway", admin: st.IngressAdmin})
	}
	return out
}

// resolveProxy finds the proxy named as istioctl names pods:
// [pod/|deployment/]NAME[.NAMESPACE], where NAME is a replica
// (reviews-v1-0), or a Workload with one replica (reviews-v1), or
// istio-ingressgateway. Without a namespace any namespace matches.
func resolveProxy(st *local.State, arg string) (proxyTarget, error) {
	kind, name, ok := strings.Cut(arg, "/")
	if !ok {
		kind, name = "", arg
	}
	if kind != "" && kind != "pod" && kind != "deployment" {
		return proxyTarget{}, &exitError{code: 2, err: fmt.Errorf("%q: want [pod/|deployment/]NAME[.NAMESPACE]", arg)}
	}
	name, ns, _ := strings.Cut(name, ".")
	all := targets(st)
	var byName, byWorkload []proxyTarget
	for _, p := range all {
		if ns != "" && p.namespace != ns {
			continue
		}
		if p.name == name && kind != "deployment" {
			byName = append(byName, p)
		}
		if p.workload == name {
			byWorkload = append(byWorkload, p)
		}
	}
	match := byName
	if len(match) == 0 {
		match = byWorkload
	}
	switch len(match) {
	case 1:
		return match[0], nil
	case 0:
		names := make([]string, len(all))
		for i, p := range all {
			names[i] = p.String()
		}
		return proxyTarget{}, &exitError{code: 1, err: fmt.Errorf("no proxy %q in the bowline up of %s; proxies: %s", arg, st.ConfigDir, strings.Join(names, ", "))}
	}
	names := make([]string, len(match))
	for i, p := range match {
		names[i] = p.String()
	}
	return proxyTarget{}, &exitError{code: 1, err: fmt.Errorf("%q matches %d proxies: %s; name one", arg, len(match), strings.Join(names, ", "))}
}
