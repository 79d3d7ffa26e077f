package capture

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// Runner runs a command with stdin and returns its combined output. Tests
// inject a fake; ExecRunner runs real programs.
type Runner interface {
	Run(ctx context.Context, stdin string, name string, args ...string) ([]byte, error)
}

// ExecRunner runs commands with os/exec.
type ExecRunner struct{}

var _ Runner = ExecRunner{}

// Run runs name with args and stdin, returning combined output.
func (ExecRunner) Run(ctx context.Context, stdin, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

// Applier installs and removes capture rules in one network namespace.
type Applier struct {
	// Runner runs the commands; ExecRunner when nil.
	Runner Runner
	// Netns is the name of the namespace (as `ip netns` knows it) the rules go
	// into; empty means the current one (a Kubernetes init container).
	Netns string
}

func (a Applier) run(ctx context.Context, stdin string, args ...string) ([]byte, error) {
	r := a.Runner
	if r == nil {
		r = ExecRunner{}
	}
	if a.Netns != "" {
		return r.Run(ctx, stdin, "ip", append([]string{"netns", "exec", a.Netns}, args...)...)
	}
	return r.Run(ctx, stdin, args[0], args[1:]...)
}

// Apply installs Rules(c), replacing what an earlier Apply left (it runs
// Cleanup first, so it is idempotent).
func (a Applier) Apply(ctx context.Context, c Config) error {
	if err := c.Validate(); err != nil {
		return err
	}
	a.Cleanup(ctx)
	if out, err := a.run(ctx, Script(c), "iptables-restore", "--noflush"); err != nil {
		return fmt.Errorf("iptables-restore in netns %q: %w: %s", a.Netns, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Cleanup removes every rule and chain Apply installs. Missing rules are not
// an error: it is safe to call at any time.
func (a Applier) Cleanup(ctx context.Context) {
	for _, args := range CleanupRules() {
		_, _ = a.run(ctx, "", append([]string{"iptables"}, args...)...)
	}
}

// List returns the nat table as `iptables -t nat -S` prints it.
func (a Applier) List(ctx context.Context) (string, error) {
	out, err := a.run(ctx, "", "iptables", "-t", "nat", "-S")
	if err != nil {
		return "", fmt.Errorf("iptables -t nat -S in netns %q: %w: %s", a.Netns, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}
