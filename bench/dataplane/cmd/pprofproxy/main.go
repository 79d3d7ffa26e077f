// Command pprofproxy is the bowline binary plus net/http/pprof, served on
// $BOWLINE_PPROF_ADDRESS. The data-plane benchmark (bench/dataplane/cmd/dpbench)
// runs it in place of `bowline proxy` only to take CPU and heap profiles under
// load, because the proxy's admin port does not expose /debug/pprof.
//
//	BOWLINE_PPROF_ADDRESS=127.0.0.1:6060 pprofproxy proxy --discovery ... --insecure-xds ...
//
// It must not be used for the latency, CPU or RSS numbers: those come from the
// real bowline binary.
package main

import (
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof on http.DefaultServeMux
	"os"

	"github.com/bowline-mesh/bowline/internal/cli"
)

func main() {
	if addr := os.Getenv("BOWLINE_PPROF_ADDRESS"); addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, "error: pprof listen:", err)
			os.Exit(2)
		}
		go func() { _ = http.Serve(ln, nil) }()
	}
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
