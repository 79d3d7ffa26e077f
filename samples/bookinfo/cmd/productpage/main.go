// Command productpage is Bookinfo's front end: GET /productpage renders the
// book with its details (from the details service) and reviews (from the
// reviews service, which may call ratings). POST /login with a username sets a
// session cookie; while it is set every outbound call carries
// "end-user: <username>", which is what Bookinfo's routing rules match on.
//
// Environment: BIND_ADDR and PORT (listen address, default 127.0.0.1:9080);
// DETAILS_HOSTNAME, REVIEWS_HOSTNAME, RATINGS_HOSTNAME and SERVICES_DOMAIN
// (where the other services are, default http://<name>:9080); HTTP_PROXY and
// NO_PROXY route outbound calls through the sidecar.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/bowline-mesh/bowline/samples/bookinfo/internal/serve"
	"github.com/bowline-mesh/bowline/samples/bookinfo/internal/upstream"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With(slog.String("service", "productpage"))
	cfg := configFromEnv(os.Getenv)
	cfg.client = upstream.NewClient(nil)
	srv, err := serve.FromEnv(os.Getenv, newHandler(cfg), log)
	if err == nil {
		err = srv.Run(ctx)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "productpage:", err)
		os.Exit(1)
	}
}
