// Package kubetest runs a real kube-apiserver backed by a real etcd on
// loopback for tests, from the binaries the cluster kit builds, found by
// kubecluster.Assets ($KUBEBUILDER_ASSETS, which make test exports, else the
// kit's cache ~/.cache/bowline/kube/v1.37.2/bin). No controller manager,
// scheduler or kubelet runs: tests create the objects those would
// (EndpointSlices, pod status) themselves.
//
// When the binaries are absent kubecluster.Assets decides: a developer
// machine without root and CI skips with a message saying how to build them;
// CI and root fail, so the tests always run there.
//
// It is for tests only; nothing in the product imports it.
package kubetest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/bowline-mesh/bowline/test/kubecluster"
)

// Cluster is a running kube-apiserver with its etcd.
type Cluster struct {
	// Config reaches the API server as a member of system:masters.
	Config *rest.Config
	// Kubeconfig is the path of a kubeconfig file for Config.
	Kubeconfig string
	// Issuer is the service account token issuer.
	Issuer string

	dir   string
	bin   string // the directory of kube-apiserver and etcd
	procs []*exec.Cmd
	logs  []*lockedWriter
}

var (
	sharedOnce sync.Once
	shared     *Cluster
	sharedErr  error
)

// Shared returns the package's cluster, starting it on first use; Stop it
// from TestMain after m.Run (see Main). Without the binaries it skips or
// fails t as kubecluster.Assets does.
func Shared(t testing.TB) *Cluster {
	t.Helper()
	bin := kubecluster.Assets(t)
	sharedOnce.Do(func() { shared, sharedErr = Start(bin) })
	if sharedErr != nil {
		t.Fatalf("kubetest: %v", sharedErr)
	}
	return shared
}

// Main runs the tests of a package that uses Shared, then stops the cluster.
func Main(m *testing.M) int {
	code := m.Run()
	if shared != nil {
		shared.Stop()
	}
	return code
}

// Start runs etcd and kube-apiserver of directory bin on free loopback
// ports and waits until the API server is ready.
func Start(bin string) (c *Cluster, err error) {
	dir, err := os.MkdirTemp("", "kubetest-")
	if err != nil {
		return nil, err
	}
	c = &Cluster{dir: dir, bin: bin, Issuer: "https://kubernetes.default.svc.cluster.local"}
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w\n%s", err, c.output())
			c.Stop()
		}
	}()
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	etcdClient, etcdPeer, apiPort := ports[0], ports[1], ports[2]
	if err := c.start("etcd",
		"--name=kubetest", "--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls=http://127.0.0.1:"+etcdClient, "--advertise-client-urls=http://127.0.0.1:"+etcdClient,
		"--listen-peer-urls=http://127.0.0.1:"+etcdPeer, "--initial-advertise-peer-urls=http://127.0.0.1:"+etcdPeer,
		"--initial-cluster=kubetest=http://127.0.0.1:"+etcdPeer, "--unsafe-no-fsync", "--log-level=warn"); err != nil {
		return nil, err
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(saKey)
	if err != nil {
		return nil, err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return nil, err
	}
	token := randomToken()
	files := map[string][]byte{
		"sa.key":     pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
		"sa.pub":     pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}),
		"tokens.csv": []byte(token + ",kubetest-admin,kubetest-admin,system:masters\n"),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return nil, err
		}
	}
	if err := c.start("kube-apiserver",
		"--etcd-servers=http://127.0.0.1:"+etcdClient,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port="+apiPort,
		"--cert-dir="+filepath.Join(dir, "certs"),
		"--service-account-issuer="+c.Issuer,
		"--service-account-key-file="+filepath.Join(dir, "sa.pub"),
		"--service-account-signing-key-file="+filepath.Join(dir, "sa.key"),
		"--token-auth-file="+filepath.Join(dir, "tokens.csv"),
		"--authorization-mode=RBAC",
		"--service-cluster-ip-range=10.96.0.0/16",
		"--endpoint-reconciler-type=none",
		"--disable-admission-plugins=ServiceAccount",
		"--enable-priority-and-fairness=false",
		"--v=0"); err != nil {
		return nil, err
	}
	c.Config = &rest.Config{Host: "https://127.0.0.1:" + apiPort, BearerToken: token,
		TLSClientConfig: rest.TLSClientConfig{Insecure: true}, QPS: 1000, Burst: 1000}
	if err := c.waitReady(2 * time.Minute); err != nil {
		return nil, err
	}
	c.Kubeconfig = filepath.Join(dir, "kubeconfig")
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: kubetest, cluster: {server: %q, insecure-skip-tls-verify: true}}]
users: [{name: admin, user: {token: %q}}]
contexts: [{name: kubetest, context: {cluster: kubetest, user: admin}}]
current-context: kubetest
`, c.Config.Host, token)
	if err := os.WriteFile(c.Kubeconfig, []byte(kc), 0o600); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Cluster) start(name string, args ...string) error {
	cmd := exec.Command(filepath.Join(c.bin, name), args...)
	out := &lockedWriter{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	c.procs = append(c.procs, cmd)
	c.logs = append(c.logs, out)
	return nil
}

// waitReady polls /readyz until it answers ok or the time is up.
func (c *Cluster) waitReady(limit time.Duration) error {
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	var last error
	for {
		body, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err == nil && string(body) == "ok" {
			return nil
		}
		last = err
		for _, p := range c.procs {
			if p.ProcessState != nil {
				return fmt.Errorf("%s exited", p.Path)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kube-apiserver not ready after %s: %v", limit, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Stop ends the processes and removes the state.
func (c *Cluster) Stop() {
	for i := len(c.procs) - 1; i >= 0; i-- {
		p := c.procs[i]
		_ = p.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = p.Process.Kill()
			<-done
		}
	}
	c.procs = nil
	_ = os.RemoveAll(c.dir)
}

func (c *Cluster) output() string {
	var b bytes.Buffer
	for i, l := range c.logs {
		fmt.Fprintf(&b, "--- %s ---\n", filepath.Base(c.procs[i].Path))
		out := l.bytes()
		if len(out) > 4000 {
			out = out[len(out)-4000:]
		}
		b.Write(out)
	}
	return b.String()
}

// Clientset returns a client of the cluster.
func (c *Cluster) Clientset(t testing.TB) kubernetes.Interface {
	t.Helper()
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func freePorts(n int) ([]string, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var out []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		out = append(out, strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
	}
	return out, nil
}

func randomToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%x", b)
}

// lockedWriter keeps a process's output (the first MiB) for failure messages.
type lockedWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() < 1<<20 {
		l.b.Write(p)
	}
	return len(p), nil
}

func (l *lockedWriter) bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.b.Bytes())
}
