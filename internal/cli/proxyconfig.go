package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/bowline-mesh/bowline/internal/proxy"
)

func newProxyConfigCommand(s streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "proxy-config",
		Short: "Show the configuration a running proxy uses, from its admin endpoint",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newProxyConfigSecretCommand(s))
	return cmd
}

func newProxyConfigSecretCommand(s streams) *cobra.Command {
	var admin, at string
	cmd := &cobra.Command{
		Use:   "secret",
		Short: "Show the certificates a proxy serves now: SPIFFE ID, serial, validity and time remaining",
		Long: `secret reads a proxy's admin /certs endpoint and lists the SDS secrets in use:
"default" is the workload certificate (its SPIFFE ID, serial number, validity and the
time left before it expires; the proxy rotates it at about half its lifetime) and
"ROOTCA" the roots of the trust bundle. The serial changes at every rotation.`,
		Example: `  # The sidecar of a replica started by bowline up (admin addresses are in .bowline/up.json)
  bowline proxy-config secret --admin 127.0.0.1:15000`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			now := time.Now()
			if at != "" {
				t, err := time.Parse(time.RFC3339, at)
				if err != nil {
					return &exitError{code: 2, err: fmt.Errorf("--at: %w", err)}
				}
				now = t
			}
			certs, err := fetchCerts(cmd.Context(), admin)
			if err != nil {
				return err
			}
			return writeSecrets(s.out, certs, now)
		},
	}
	cmd.Flags().StringVar(&admin, "admin", "127.0.0.1:15000", "the proxy's admin address HOST:PORT")
	cmd.Flags().StringVar(&at, "at", "", "compute the remaining time at this RFC 3339 time instead of now")
	_ = cmd.Flags().MarkHidden("at")
	return cmd
}

func fetchCerts(ctx context.Context, admin string) (*proxy.Certs, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/certs", nil)
	if err != nil {
		return nil, &exitError{code: 2, err: fmt.Errorf("--admin %q: %w", admin, err)}
	}
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("proxy admin %s: %w", admin, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("proxy admin %s/certs: status %d", admin, resp.StatusCode)
	}
	var out proxy.Certs
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("proxy admin %s/certs: %w", admin, err)
	}
	return &out, nil
}

func writeSecrets(w io.Writer, c *proxy.Certs, now time.Time) error {
	if len(c.Certificates) == 0 {
		return &exitError{code: 1, err: errors.New("the proxy has no workload certificate (started without --ca-address, or the first one has not arrived)")}
	}
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "RESOURCE NAME\tIDENTITY\tSERIAL NUMBER\tNOT BEFORE\tNOT AFTER\tREMAINING\tSTATUS")
	for _, ci := range c.Certificates {
		remaining := ci.NotAfter.Sub(now)
		status := "VALID"
		switch {
		case now.Before(ci.NotBefore):
			status = "NOT YET VALID"
		case remaining <= 0:
			status, remaining = "EXPIRED", 0
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", ci.Name, ci.Identity, ci.Serial,
			ci.NotBefore.UTC().Format(time.RFC3339), ci.NotAfter.UTC().Format(time.RFC3339), roundRemaining(remaining), status)
	}
	return tw.Flush()
}

// roundRemaining shows whole seconds, or whole minutes above an hour.
func roundRemaining(d time.Duration) string {
	if d >= time.Hour {
		return d.Truncate(time.Minute).String()
	}
	return d.Truncate(time.Second).String()
}
