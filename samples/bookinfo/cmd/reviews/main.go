// Command reviews is Bookinfo's reviews service: GET /reviews/<id> answers two
// reviews of the book. Its three versions differ only in environment:
//
//	v1: ENABLE_RATINGS=false                  no stars, never calls ratings
//	v2: ENABLE_RATINGS=true STAR_COLOR=black  black stars from the ratings service
//	v3: ENABLE_RATINGS=true STAR_COLOR=red    red stars from the ratings service
//
// Other environment: BIND_ADDR and PORT (listen address, default
// 127.0.0.1:9080); RATINGS_HOSTNAME, SERVICES_DOMAIN and RATINGS_SERVICE_PORT
// (where ratings is, default http://ratings:9080); BOWLINE_WORKLOAD, else
// HOSTNAME, names the instance in the answer's "podname"; CLUSTER_NAME fills
// "clustername"; HTTP_PROXY/NO_PROXY route the ratings call through the
// sidecar.
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
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With(slog.String("service", "reviews"))
	cfg := configFromEnv(os.Getenv, os.Hostname)
	cfg.client = upstream.NewClient(nil)
	log.Info("reviews configured",
		slog.Bool("ratings_enabled", cfg.ratingsEnabled),
		slog.String("star_color", cfg.starColor),
		slog.String("ratings", cfg.ratingsURL),
		slog.String("podname", cfg.podName))
	srv, err := serve.FromEnv(os.Getenv, newHandler(cfg), log)
	if err == nil {
		err = srv.Run(ctx)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "reviews:", err)
		os.Exit(1)
	}
}
