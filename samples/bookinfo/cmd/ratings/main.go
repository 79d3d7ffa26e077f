// Command ratings is Bookinfo's ratings service: GET /ratings/<id> answers
// the stars each reviewer gave the book; POST /ratings/<id> replaces them (in
// memory) for a demonstration.
//
// Environment: BIND_ADDR and PORT (listen address, default 127.0.0.1:9080).
// Istio's database-backed variants (SERVICE_VERSION=v2 with MongoDB or MySQL)
// are not reproduced.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/bowline-mesh/bowline/samples/bookinfo/internal/serve"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With(slog.String("service", "ratings"))
	srv, err := serve.FromEnv(os.Getenv, newHandler(newStore()), log)
	if err == nil {
		err = srv.Run(ctx)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ratings:", err)
		os.Exit(1)
	}
}
