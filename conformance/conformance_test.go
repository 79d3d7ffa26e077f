package conformance

import (
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/gateway-api/conformance"
	confv1 "sigs.k8s.io/gateway-api/conformance/apis/v1"
	"sigs.k8s.io/gateway-api/conformance/tests"
	"sigs.k8s.io/gateway-api/conformance/utils/suite"
	"sigs.k8s.io/gateway-api/pkg/features"
)

// Flags of `make conformance` (the suite's own flags, -gateway-class and
// so on, are not used: this file sets every option).
var (
	reportPath = flag.String("bowline-report", "", "write the ConformanceReport YAML here")
	runTest    = flag.String("bowline-run-test", "", "run only this conformance test (its ShortName), for debugging")
	runTests   = flag.String("bowline-run-tests", "", "run only these conformance tests (comma-separated ShortNames): every other test is skipped")
	version    = flag.String("bowline-version", "", "Bowline version for the report (default: bin/bowline version)")
	keep       = flag.Bool("bowline-keep", false, "leave Bowline installed after the run (debugging)")
)

// profiles are the conformance profiles Bowline reports.
var profiles = []suite.ConformanceProfileName{
	suite.GatewayHTTPConformanceProfileName,
	suite.GatewayGRPCConformanceProfileName,
	suite.GatewayTLSConformanceProfileName,
}

// supported are the features Bowline claims: each profile's core
// features, and the extended ones docs/gateways.md lists as served.
var supported = []features.FeatureName{
	features.SupportGateway,
	features.SupportReferenceGrant,
	features.SupportHTTPRoute,
	features.SupportGRPCRoute,
	features.SupportTLSRoute,
	features.SupportGatewayPort8080,
	features.SupportHTTPRouteQueryParamMatching,
	features.SupportHTTPRouteMethodMatching,
	features.SupportHTTPRouteResponseHeaderModification,
	features.SupportHTTPRouteBackendRequestHeaderModification,
	features.SupportHTTPRoutePortRedirect,
	features.SupportHTTPRouteSchemeRedirect,
	features.SupportHTTPRoutePathRedirect,
	features.SupportHTTPRouteHostRewrite,
	features.SupportHTTPRoutePathRewrite,
	features.SupportHTTPRouteRequestMirror,
	features.SupportHTTPRouteRequestMultipleMirrors,
	features.SupportHTTPRouteRequestPercentageMirror,
	features.SupportHTTPRouteRequestTimeout,
	features.SupportHTTPRouteBackendTimeout,
	features.SupportHTTPRouteParentRefPort,
	features.SupportHTTPRouteCORS,
	features.SupportHTTPRoute303RedirectStatusCode,
	features.SupportHTTPRoute307RedirectStatusCode,
	features.SupportHTTPRoute308RedirectStatusCode,
	features.SupportHTTPRouteRetry,
}

// repo is the repository root (this file is conformance/conformance_test.go).
func repo() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

// TestConformance installs Bowline on the cluster of $KUBECONFIG (the one
// `make kube-up` runs) with bin/bowline, applies the Gateway API v1.6.3
// standard CRDs, starts the loopback load balancer and runs the Gateway
// API conformance suite for the GATEWAY-HTTP, GATEWAY-GRPC and GATEWAY-TLS
// profiles, writing the ConformanceReport. `make conformance` runs it.
func TestConformance(t *testing.T) {
	kubeconfig := os.Getenv("KUBECONFIG")
	if kubeconfig == "" {
		t.Fatal("KUBECONFIG is not set: make conformance brings the cluster up (as root) and sets it")
	}
	bowline := filepath.Join(repo(), "bin", "bowline")
	if _, err := os.Stat(bowline); err != nil {
		t.Fatalf("no %s: make build (make conformance runs it)", bowline)
	}
	run := func(timeout time.Duration, name string, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Dir = filepath.Join(repo(), "conformance") // go list reads this module; no ./.bowline here
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, _ := run(time.Minute, "kubectl", "get", "namespace", "istio-system", "--ignore-not-found", "-o", "name"); strings.TrimSpace(out) != "" {
		t.Log("istio-system exists (an earlier run was interrupted): uninstalling first")
		out, _ := run(3*time.Minute, bowline, "uninstall", "-y", "--purge", "--timeout", "2m")
		t.Log(out)
	}
	out, err := run(5*time.Minute, bowline, "install", "-y", "--timeout", "4m")
	if !*keep {
		t.Cleanup(func() {
			out, err := run(3*time.Minute, bowline, "uninstall", "-y", "--purge", "--timeout", "2m")
			if err != nil {
				t.Errorf("bowline uninstall: %v\n%s", err, out)
			}
		})
	}
	if err != nil {
		t.Fatalf("bowline install -y: %v\n%s", err, out)
	}
	gwapi, err := run(time.Minute, "go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/gateway-api")
	if err != nil {
		t.Fatalf("go list -m sigs.k8s.io/gateway-api: %v\n%s", err, gwapi)
	}
	crds := filepath.Join(strings.TrimSpace(gwapi), "config", "crd", "standard")
	if out, _ := run(time.Minute, "kubectl", "get", "crd", "gateways.gateway.networking.k8s.io", "--ignore-not-found", "-o", "name"); strings.TrimSpace(out) == "" && !*keep {
		t.Cleanup(func() { // runs before the uninstall (cleanups run last-registered first)
			if out, err := run(2*time.Minute, "kubectl", "delete", "-f", crds, "--ignore-not-found", "--wait=false"); err != nil {
				t.Errorf("delete the Gateway API CRDs: %v\n%s", err, out)
			}
		})
	}
	if out, err := run(2*time.Minute, "kubectl", "apply", "--server-side", "--force-conflicts", "-f", crds); err != nil {
		t.Fatalf("kubectl apply the Gateway API CRDs: %v\n%s", err, out)
	}
	if out, err := run(2*time.Minute, "kubectl", "wait", "--for=condition=Established", "crd", "--all", "--timeout=100s"); err != nil {
		t.Fatalf("the Gateway API CRDs are not established: %v\n%s", err, out)
	}
	// Discovery's leader creates the GatewayClass once it sees the CRDs
	// served (it looks every few seconds); the suite fails at once on a
	// class that does not exist yet, so wait for it here.
	deadline := time.Now().Add(3 * time.Minute)
	for {
		out, err := run(time.Minute, "kubectl", "get", "gatewayclass", "istio", "--ignore-not-found", "-o", "name")
		if err == nil && strings.TrimSpace(out) != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("discovery created no GatewayClass istio within 3 minutes of the CRDs being established: %v %s", err, out)
		}
		time.Sleep(time.Second)
	}
	if *version == "" {
		out, _ := run(time.Minute, bowline, "version", "--remote=false")
		*version = strings.TrimPrefix(strings.TrimSpace(strings.SplitN(out, "\n", 2)[0]), "bowline version ")
	}

	opts := conformance.DefaultOptions(t)
	lb := newLoopbackLB(t, opts.Clientset, opts.RestConfig)
	lbCtx, lbStop := context.WithCancel(context.Background())
	lbDone := make(chan struct{})
	go func() { defer close(lbDone); lb.run(lbCtx) }()
	t.Cleanup(func() { lbStop(); <-lbDone })

	opts.GatewayClassName = "istio"
	opts.ConformanceProfiles = profiles
	opts.SupportedFeatures = supported
	opts.ExemptFeatures = nil
	opts.EnableAllSupportedFeatures = false
	opts.CleanupBaseResources = true
	opts.CleanupTestResources = true
	opts.RunTest = *runTest
	if *runTests != "" {
		only := strings.Split(*runTests, ",")
		for _, ct := range tests.ConformanceTests {
			if !slices.Contains(only, ct.ShortName) {
				opts.SkipTests = append(opts.SkipTests, ct.ShortName)
			}
		}
	}
	opts.ReportOutputPath = *reportPath
	opts.Mode = "default"
	opts.Implementation = confv1.Implementation{
		Organization: "bowline-mesh",
		Project:      "bowline",
		URL:          "https://github.com/bowline-mesh/bowline",
		Version:      *version,
		Contact:      []string{"https://github.com/bowline-mesh/bowline/issues"},
	}
	// The test machine is small and shared: every wait is generous (the
	// suite polls, so a fast run is not slowed).
	tc := &opts.TimeoutConfig
	tc.MaxTimeToConsistency = 90 * time.Second
	tc.GatewayMustHaveCondition = 5 * time.Minute
	tc.GatewayMustHaveAddress = 5 * time.Minute
	tc.GatewayStatusMustHaveListeners = 3 * time.Minute
	tc.GatewayListenersMustHaveConditions = 3 * time.Minute
	tc.HTTPRouteMustHaveCondition = 3 * time.Minute
	tc.TLSRouteMustHaveCondition = 3 * time.Minute
	tc.RouteMustHaveParents = 3 * time.Minute
	tc.NamespacesMustBeReady = 10 * time.Minute
	tc.DefaultTestTimeout = 3 * time.Minute
	tc.RequestTimeout = 20 * time.Second
	tc.CreateTimeout = 2 * time.Minute
	tc.DeleteTimeout = time.Minute
	tc.GetTimeout = 30 * time.Second
	tc.LatestObservedGenerationSet = 3 * time.Minute
	conformance.RunConformanceWithOptions(t, opts)
}
