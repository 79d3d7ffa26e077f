package analysis

import (
	"fmt"

	networking "istio.io/api/networking/v1alpha3"
)

// routeDestination is one destination of a VirtualService with the field
// path it was read from.
type routeDestination struct {
	dest *networking.Destination
	// path is "spec.http[0].route[1].destination" or "spec.http[0].mirror".
	path   string
	mirror bool
}

// routeDestinations lists the route destinations of vs (tcp, tls, http, in
// Istio's order) and, separately, the http mirror destinations.
func routeDestinations(vs *networking.VirtualService) (routes, mirrors []routeDestination) {
	for i, r := range vs.GetTcp() {
		for j, d := range r.GetRoute() {
			routes = append(routes, routeDestination{dest: d.GetDestination(), path: fmt.Sprintf("spec.tcp[%d].route[%d].destination", i, j)})
		}
	}
	for i, r := range vs.GetTls() {
		for j, d := range r.GetRoute() {
			routes = append(routes, routeDestination{dest: d.GetDestination(), path: fmt.Sprintf("spec.tls[%d].route[%d].destination", i, j)})
		}
	}
	for i, r := range vs.GetHttp() {
		for j, d := range r.GetRoute() {
			routes = append(routes, routeDestination{dest: d.GetDestination(), path: fmt.Sprintf("spec.http[%d].route[%d].destination", i, j)})
		}
	}
	for i, r := range vs.GetHttp() {
		if m := r.GetMirror(); m != nil {
			mirrors = append(mirrors, routeDestination{dest: m, path: fmt.Sprintf("spec.http[%d].mirror", i), mirror: true})
		}
		for j, m := range r.GetMirrors() {
			if m.GetDestination() != nil {
				mirrors = append(mirrors, routeDestination{dest: m.GetDestination(), path: fmt.Sprintf("spec.http[%d].mirrors[%d].destination", i, j), mirror: true})
			}
		}
	}
	return routes, mirrors
}
