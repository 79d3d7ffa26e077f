// Command coredns is CoreDNS v1.15.0 with a fixed, short plugin list: the
// kubernetes plugin answers the cluster domain, bind keeps it on the kit's
// host address, errors and log report, health and ready let the kit poll it. No forward or proxy plugin is compiled in, so
// a name outside the cluster domain gets SERVFAIL/REFUSED and never leaves the
// machine.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

// directives is the plugin order of CoreDNS's plugin.cfg, restricted to the
// plugins imported above.
var directives = []string{"bind", "ready", "health", "errors", "log", "kubernetes"}

func init() {
	dnsserver.Directives = directives
}

func main() {
	coremain.Run()
}
