// Command bowline is the single Bowline binary: control plane, proxy, CLI and dashboard.
package main

import (
	"os"

	"github.com/bowline-mesh/bowline/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
