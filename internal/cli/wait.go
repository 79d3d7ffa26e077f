package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/spf13/cobra"
)

func newWaitCommand(s streams) *cobra.Command {
	var (
		url             string
		timeout, period time.Duration
	)
	cmd := &cobra.Command{
		Use:   "wait",
		Short: "Wait until the sidecar is ready (the classic layout's postStart hook, holdApplicationUntilProxyStarts)",
		Long: `wait polls the sidecar's readiness URL until it answers 200, so that a pod's app containers start
only once the sidecar has its configuration and certificate (Istio's "pilot-agent wait").`,
		Example: `  # The postStart hook the injector writes for holdApplicationUntilProxyStarts
  bowline wait --url http://localhost:15020/healthz/ready`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if period <= 0 || timeout <= 0 {
				return &exitError{code: 2, err: fmt.Errorf("--timeout and --period must be positive")}
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			client := &http.Client{Timeout: period}
			t := time.NewTicker(period)
			defer t.Stop()
			last := "no answer yet"
			for {
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				if err != nil {
					return &exitError{code: 2, err: fmt.Errorf("--url: %w", err)}
				}
				resp, err := client.Do(req)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						fmt.Fprintln(s.out, "sidecar ready")
						return nil
					}
					last = "status " + resp.Status
				} else if ctx.Err() == nil { // keep the last real answer, not our own deadline
					last = err.Error()
				}
				select {
				case <-ctx.Done():
					return fmt.Errorf("sidecar not ready after %s (%s): %s", timeout, url, last)
				case <-t.C:
				}
			}
		},
	}
	f := cmd.Flags()
	f.StringVar(&url, "url", "http://localhost:15020/healthz/ready", "readiness URL to poll")
	f.DurationVar(&timeout, "timeout", 60*time.Second, "give up after this long")
	f.DurationVar(&period, "period", 500*time.Millisecond, "time between polls")
	return cmd
}
