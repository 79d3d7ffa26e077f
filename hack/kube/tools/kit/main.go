// Command kit is the test cluster kit's helper (hack/kube/*.sh calls it):
//
//	kit image -o out.tar -tag REF -file SRC:DEST [-file ...] [-env K=V ...] -- ENTRYPOINT...
//	    packs static files into a one-layer image (docker-archive tarball) that
//	    `ctr images import` and `docker load` accept; no registry, no docker.
//	kit pki -dir DIR -node-ip IP -node-name NAME -service-ip IP
//	    writes the cluster's CA, serving and client certificates, the
//	    service-account key and one kubeconfig per component (kept when present).
//	kit httpget URL
//	    succeeds when GET URL answers 200 within a second (readiness polls).
package main

import (
	"fmt"
	"net/http"
	"os"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: kit image|pki [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "image":
		err = imageMain(os.Args[2:])
	case "pki":
		err = pkiMain(os.Args[2:])
	case "httpget":
		err = httpGet(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q (want image, pki or httpget)", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "kit:", err)
		os.Exit(1)
	}
}

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return fmt.Sprint(*m) }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func httpGet(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: kit httpget URL")
	}
	c := &http.Client{Timeout: time.Second}
	resp, err := c.Get(args[0])
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", args[0], resp.Status)
	}
	return nil
}
