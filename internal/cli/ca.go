package cli

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bowline-mesh/bowline/internal/ca"
)

func newCACommand(s streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ca",
		Short: "Create and inspect the mesh certificate authority's files (Istio's cacerts layout)",
		Long: `ca manages the files of Bowline's certificate authority, in Istio's cacerts layout:
  ca-cert.pem     the signing certificate (a root, or an intermediate plugged in)
  ca-key.pem      its private key (mode 0600)
  root-cert.pem   the trust bundle: the root, or old and new roots during a rotation
  cert-chain.pem  the chain from ca-cert.pem up to its root

A directory in this layout is what 'bowline up' and the control plane load as their CA,
and what Istio's plug-in CA ('kubectl create secret generic cacerts ...') takes.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newCAInitCommand(s), newCAIntermediateCommand(s), newCAInspectCommand(s), newCARotateRootCommand(s))
	return cmd
}

func newCARotateRootCommand(s streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rotate-root",
		Short: "Replace the mesh root without a failed request, in three steps on a cacerts directory",
		Long: `rotate-root edits a CA directory (Istio's cacerts layout) one step at a time. A running
control plane ('bowline discovery --ca-dir', 'bowline up' with <state-dir>/ca) reloads the
directory when it changes (or on SIGHUP); proxies re-read their root file (--ca-root-cert)
and fetch a certificate with the new bundle at once.

  1. trust   add the new root to root-cert.pem (old root first); wait until every proxy
             holds both roots ('bowline proxy-config secret' lists two ROOTCA entries)
  2. sign    sign with the new root (or an intermediate of it); wait one workload
             certificate rotation (half the TTL) so every certificate chains to the new root
  3. retire  drop the old root from root-cert.pem`,
		Example: `  # A new root and an intermediate of it, outside the live directory
  bowline ca init --dir ./newroot
  bowline ca intermediate --root-cert ./newroot/ca-cert.pem --root-key ./newroot/ca-key.pem --out ./newca

  bowline ca rotate-root trust --dir ./cacerts --root ./newroot/ca-cert.pem
  bowline ca rotate-root sign --dir ./cacerts --from ./newca
  bowline ca rotate-root retire --dir ./cacerts`,
		Args: cobra.NoArgs,
	}
	var dir string
	cmd.PersistentFlags().StringVar(&dir, "dir", "", "the live CA directory (required)")
	needDir := func() error {
		if dir == "" {
			return &exitError{code: 2, err: errors.New("--dir is required")}
		}
		return nil
	}

	var rootFile string
	trust := &cobra.Command{
		Use:     "trust --dir DIR --root FILE",
		Short:   "Step 1: add the new root(s) in FILE to DIR's trust bundle",
		Example: `  bowline ca rotate-root trust --dir ./cacerts --root ./newroot/ca-cert.pem`,
		Args:    cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			if err := needDir(); err != nil {
				return err
			}
			if rootFile == "" {
				return &exitError{code: 2, err: errors.New("--root is required")}
			}
			b, err := os.ReadFile(rootFile)
			if err != nil {
				return err
			}
			roots, err := ca.ParseCertificates(b)
			if err != nil {
				return fmt.Errorf("%s: %w", rootFile, err)
			}
			now := time.Now()
			bundle, err := ca.TrustRoots(ca.TrustParams{Dir: dir, Roots: roots, Now: now})
			if err != nil {
				return err
			}
			fmt.Fprintf(s.out, "%s now holds %d roots; wait until every proxy holds them all, then run 'rotate-root sign'\n", ca.RootCertFile, len(bundle))
			for i, r := range bundle {
				printCert(s.out, fmt.Sprintf("root %d", i+1), r, now)
			}
			return nil
		},
	}
	trust.Flags().StringVar(&rootFile, "root", "", "PEM file of the new root certificate(s) (required)")

	var from string
	sign := &cobra.Command{
		Use:     "sign --dir DIR --from NEWDIR",
		Short:   "Step 2: sign with the CA in NEWDIR (chained to a root DIR already trusts), keeping both roots",
		Example: `  bowline ca rotate-root sign --dir ./cacerts --from ./newca`,
		Args:    cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			if err := needDir(); err != nil {
				return err
			}
			if from == "" {
				return &exitError{code: 2, err: errors.New("--from is required")}
			}
			now := time.Now()
			m, err := ca.SwitchSigner(ca.SwitchParams{Dir: dir, From: from, Now: now})
			if err != nil {
				return err
			}
			fmt.Fprintf(s.out, "%s signs with the CA of %s; wait one workload certificate rotation, then run 'rotate-root retire'\n", dir, from)
			printCert(s.out, "signing CA", m.Cert, now)
			return nil
		},
	}
	sign.Flags().StringVar(&from, "from", "", "cacerts directory of the new signing CA (required)")

	retire := &cobra.Command{
		Use:     "retire --dir DIR",
		Short:   "Step 3: keep only the root the signing CA chains to",
		Example: `  bowline ca rotate-root retire --dir ./cacerts`,
		Args:    cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			if err := needDir(); err != nil {
				return err
			}
			now := time.Now()
			removed, err := ca.RetireRoots(ca.RetireParams{Dir: dir, Now: now})
			if err != nil {
				return err
			}
			if len(removed) == 0 {
				fmt.Fprintf(s.out, "%s holds one root already; nothing to retire\n", ca.RootCertFile)
				return nil
			}
			fmt.Fprintf(s.out, "retired %d root(s) from %s\n", len(removed), ca.RootCertFile)
			for i, r := range removed {
				printCert(s.out, fmt.Sprintf("retired %d", i+1), r, now)
			}
			return nil
		},
	}
	cmd.AddCommand(trust, sign, retire)
	return cmd
}

func newCAInitCommand(s streams) *cobra.Command {
	var (
		dir, trustDomain string
		ttl              time.Duration
		force            bool
	)
	cmd := &cobra.Command{
		Use:   "init --dir DIR",
		Short: "Create a self-signed root CA (ECDSA P-256, 10 years) in DIR",
		Example: `  # A new root for the trust domain cluster.local
  bowline ca init --dir ./cacerts

  # Replace an existing root (every workload certificate must then be re-issued)
  bowline ca init --dir ./cacerts --trust-domain example.org --force`,
		Args: cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			if dir == "" {
				return &exitError{code: 2, err: errors.New("--dir is required")}
			}
			now := time.Now()
			m, err := ca.NewRoot(ca.RootParams{TrustDomain: trustDomain, TTL: ttl, Now: now})
			if err != nil {
				return err
			}
			if err := m.Write(ca.WriteParams{Dir: dir, Force: force, Now: now}); err != nil {
				return err
			}
			fmt.Fprintf(s.out, "wrote a self-signed root CA to %s (%s, %s, %s, %s)\n", dir, ca.CACertFile, ca.CAKeyFile, ca.RootCertFile, ca.CertChainFile)
			printCert(s.out, "root", m.Cert, now)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "directory to write the CA files to (required)")
	f.StringVar(&trustDomain, "trust-domain", ca.DefaultTrustDomain, "SPIFFE trust domain, recorded as the root's organization")
	f.DurationVar(&ttl, "ttl", ca.DefaultRootTTL, "lifetime of the root")
	f.BoolVar(&force, "force", false, "overwrite CA files already in --dir")
	return cmd
}

func newCAIntermediateCommand(s streams) *cobra.Command {
	var (
		rootCert, rootKey, out, trustDomain string
		ttl                                 time.Duration
		force                               bool
	)
	cmd := &cobra.Command{
		Use:   "intermediate --root-cert FILE --root-key FILE --out DIR",
		Short: "Create an intermediate CA signed by a root, written as a cacerts directory",
		Long: `intermediate creates an ECDSA P-256 intermediate CA signed by the given root and writes it
to --out in Istio's cacerts layout, ready to plug into a control plane: one intermediate
per cluster under a shared root lets workloads of different clusters trust each other.`,
		Example: `  # A shared root, then one intermediate per cluster
  bowline ca init --dir ./root
  bowline ca intermediate --root-cert ./root/ca-cert.pem --root-key ./root/ca-key.pem --out ./cluster1
  bowline ca intermediate --root-cert ./root/ca-cert.pem --root-key ./root/ca-key.pem --out ./cluster2 --ttl 2160h`,
		Args: cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			if rootCert == "" || rootKey == "" || out == "" {
				return &exitError{code: 2, err: errors.New("--root-cert, --root-key and --out are required")}
			}
			parent, err := readParent(rootCert, rootKey)
			if err != nil {
				return err
			}
			now := time.Now()
			m, err := ca.NewIntermediate(ca.IntermediateParams{Parent: parent, TrustDomain: trustDomain, TTL: ttl, Now: now})
			if err != nil {
				return err
			}
			if err := m.Write(ca.WriteParams{Dir: out, Force: force, Now: now}); err != nil {
				return err
			}
			fmt.Fprintf(s.out, "wrote an intermediate CA to %s (%s, %s, %s, %s)\n", out, ca.CACertFile, ca.CAKeyFile, ca.RootCertFile, ca.CertChainFile)
			printCert(s.out, "intermediate", m.Cert, now)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&rootCert, "root-cert", "", "PEM file of the signing root certificate (required)")
	f.StringVar(&rootKey, "root-key", "", "PEM file of the signing root's private key (required)")
	f.StringVar(&out, "out", "", "directory to write the intermediate's cacerts files to (required)")
	f.StringVar(&trustDomain, "trust-domain", ca.DefaultTrustDomain, "SPIFFE trust domain, recorded as the intermediate's organization")
	f.DurationVar(&ttl, "ttl", ca.DefaultIntermediateTTL, "lifetime of the intermediate (at most the root's)")
	f.BoolVar(&force, "force", false, "overwrite CA files already in --out")
	return cmd
}

func readParent(certFile, keyFile string) (*ca.Material, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, err
	}
	certs, err := ca.ParseCertificates(certPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", certFile, err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, err
	}
	key, err := ca.ParsePrivateKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", keyFile, err)
	}
	return &ca.Material{Cert: certs[0], Key: key, Roots: certs[:1]}, nil
}

func newCAInspectCommand(s streams) *cobra.Command {
	var (
		root string
		at   string
	)
	cmd := &cobra.Command{
		Use:   "inspect FILE|DIR",
		Short: "Show a certificate chain or a cacerts directory and verify it",
		Long: `inspect prints every certificate of a PEM file (a chain, leaf first) or of a cacerts
directory: subject, issuer, SANs (SPIFFE IDs), validity and time remaining, key type and
whether it is a CA. It then verifies the chain: a directory as the CA would load it (key
matches ca-cert.pem, ca-cert.pem is a CA, cert-chain.pem leads to root-cert.pem), a file
from its first certificate to a self-signed certificate in it or in --root. It exits 1
with the reason when the chain is broken.`,
		Example: `  # The CA directory the control plane uses
  bowline ca inspect ./cacerts

  # A workload certificate chain, verified against the mesh root
  bowline ca inspect cert-chain.pem --root ./cacerts/root-cert.pem

  # Will the CA still be valid next year?
  bowline ca inspect ./cacerts --at 2027-01-01T00:00:00Z`,
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			now := time.Now()
			if at != "" {
				t, err := time.Parse(time.RFC3339, at)
				if err != nil {
					return &exitError{code: 2, err: fmt.Errorf("--at: %w", err)}
				}
				now = t
			}
			ins, err := ca.Inspect(ca.InspectParams{Path: args[0], RootFile: root, Now: now})
			if err != nil {
				return err
			}
			for _, c := range ins.Certs {
				printCert(s.out, c.Source, c.Cert, now)
			}
			if ins.Problem != "" {
				fmt.Fprintf(s.out, "chain: BROKEN\n")
				return &exitError{code: 1, err: fmt.Errorf("broken chain: %s", ins.Problem)}
			}
			fmt.Fprintf(s.out, "chain: OK, verified to %q at %s\n", ins.VerifiedTo.Subject.String(), now.UTC().Format(time.RFC3339))
			return nil
		},
	}
	cmd.Flags().StringVar(&root, "root", "", "PEM file of root certificates to verify a chain file against")
	cmd.Flags().StringVar(&at, "at", "", "judge validity at this time (RFC 3339) instead of now")
	return cmd
}

// printCert writes one certificate's description.
func printCert(w io.Writer, title string, c *x509.Certificate, now time.Time) {
	fmt.Fprintln(w, title)
	field := func(name, value string) { fmt.Fprintf(w, "  %-13s %s\n", name+":", value) }
	field("subject", orNone(c.Subject.String()))
	field("issuer", orNone(c.Issuer.String()))
	var spiffe, uris []string
	for _, u := range c.URIs {
		if u.Scheme == "spiffe" {
			spiffe = append(spiffe, u.String())
		} else {
			uris = append(uris, u.String())
		}
	}
	if len(spiffe) > 0 {
		field("spiffe ids", strings.Join(spiffe, ", "))
	}
	if len(c.DNSNames) > 0 {
		field("dns names", strings.Join(c.DNSNames, ", "))
	}
	if len(c.IPAddresses) > 0 {
		var ips []string
		for _, ip := range c.IPAddresses {
			ips = append(ips, ip.String())
		}
		field("ip addresses", strings.Join(ips, ", "))
	}
	if len(uris) > 0 {
		field("uris", strings.Join(uris, ", "))
	}
	field("not before", c.NotBefore.UTC().Format(time.RFC3339))
	field("not after", c.NotAfter.UTC().Format(time.RFC3339))
	field("remaining", remaining(c, now))
	field("key", ca.KeyDescription(c.PublicKey))
	isCA := "no"
	if c.IsCA {
		isCA = "yes"
		if c.MaxPathLen > 0 || c.MaxPathLenZero {
			isCA += fmt.Sprintf(", path length %d", c.MaxPathLen)
		}
	}
	field("is CA", isCA)
}

func orNone(s string) string {
	if s == "" {
		return "(empty)"
	}
	return s
}

// remaining renders the time left as days and hours, or why there is none.
func remaining(c *x509.Certificate, now time.Time) string {
	switch {
	case now.Before(c.NotBefore):
		return "not yet valid (starts in " + days(c.NotBefore.Sub(now)) + ")"
	case !now.Before(c.NotAfter):
		return "EXPIRED " + days(now.Sub(c.NotAfter)) + " ago"
	default:
		return days(c.NotAfter.Sub(now))
	}
}

func days(d time.Duration) string {
	d = d.Truncate(time.Second)
	day := d / (24 * time.Hour)
	d -= day * 24 * time.Hour
	switch {
	case day > 0:
		return fmt.Sprintf("%dd %dh", day, d/time.Hour)
	case d >= time.Hour:
		return fmt.Sprintf("%dh %dm", d/time.Hour, (d%time.Hour)/time.Minute)
	default:
		return d.String()
	}
}
