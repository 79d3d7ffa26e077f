package analysis

import (
	"fmt"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/bowline-mesh/bowline/internal/config"
)

// serviceEntryAddressesAnalyzer reports ServiceEntry ports serving TCP (or
// an unset protocol) on an entry without addresses: without a virtual IP the
// proxy cannot tell such services apart (IST0134).
type serviceEntryAddressesAnalyzer struct{}

var _ Analyzer = serviceEntryAddressesAnalyzer{}

func (serviceEntryAddressesAnalyzer) Name() string { return "serviceentry.Analyzer" }
func (serviceEntryAddressesAnalyzer) Description() string {
	return "Checks the validity of ServiceEntry"
}

func (serviceEntryAddressesAnalyzer) Analyze(c *Context) {
	for _, o := range c.Objects(config.KindServiceEntry) {
		se, ok := o.Spec.(*networking.ServiceEntry)
		if !ok || len(se.GetAddresses()) > 0 {
			continue
		}
		for i, p := range se.GetPorts() {
			if proto := strings.ToUpper(p.GetProtocol()); proto == "" || proto == "TCP" {
				c.Report(ServiceEntryAddressesRequired, o, fmt.Sprintf("spec.ports[%d].name", i))
			}
		}
	}
}
