package cli

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

func newRequestCommand(s streams) *cobra.Command {
	var (
		port    int
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "request METHOD PATH [BODY]",
		Short: "Send a request to the local proxy's admin or status port (the native sidecar's preStop hook)",
		Long: `request sends METHOD PATH to http://localhost:PORT and prints the answer, as Istio's
"pilot-agent request" does: with --debug-port 15000 (the default) it reaches the proxy's admin
endpoint, with --debug-port 15020 its status port. The injected native sidecar's preStop hook
runs "bowline request --debug-port=15020 POST drain", so the proxy drains gracefully as soon as the
pod's termination starts. A status outside 2xx exits 1.`,
		Example: `  # The preStop hook of the injected native sidecar
  bowline request --debug-port=15020 POST drain

  # The classic layout's way for a Job's app to end its sidecar
  bowline request --debug-port=15020 POST quitquitquit

  # The admin endpoint's config dump
  bowline request GET config_dump`,
		Args: cobra.RangeArgs(2, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			if port < 1 || port > 65535 {
				return &exitError{code: 2, err: fmt.Errorf("--debug-port %d: not a port number", port)}
			}
			method := strings.ToUpper(args[0])
			url := "http://localhost:" + strconv.Itoa(port) + "/" + strings.TrimPrefix(args[1], "/")
			var body io.Reader
			if len(args) == 3 {
				body = strings.NewReader(args[2])
			}
			req, err := http.NewRequestWithContext(cmd.Context(), method, url, body)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			resp, err := (&http.Client{Timeout: timeout}).Do(req)
			if err != nil {
				return fmt.Errorf("%s %s: %w", method, url, err)
			}
			defer resp.Body.Close()
			if _, err := io.Copy(s.out, resp.Body); err != nil {
				return fmt.Errorf("%s %s: read answer: %w", method, url, err)
			}
			if resp.StatusCode < 200 || resp.StatusCode > 299 {
				return fmt.Errorf("%s %s: %s", method, url, resp.Status)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&port, "debug-port", 15000, "local port to send to: the admin endpoint (15000) or the status port (15020)")
	f.DurationVar(&timeout, "timeout", 30*time.Second, "give up after this long")
	return cmd
}
