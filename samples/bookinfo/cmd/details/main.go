// Command details is Bookinfo's details service: it answers GET
// /details/<id> with the book's bibliographic data as JSON.
//
// Environment: BIND_ADDR and PORT (listen address, default 127.0.0.1:9080);
// ENABLE_EXTERNAL_BOOK_SERVICE=true fetches the data from the Google Books API
// instead (DO_NOT_ENCRYPT=true uses plain HTTP on port 80 for that call, so
// that the mesh can originate TLS); HTTP_PROXY/NO_PROXY route outbound calls
// through the sidecar.
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
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With(slog.String("service", "details"))
	if err := run(ctx, os.Getenv, log); err != nil {
		fmt.Fprintln(os.Stderr, "details:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, getenv func(string) string, log *slog.Logger) error {
	cfg := config{
		external:      getenv("ENABLE_EXTERNAL_BOOK_SERVICE") == "true",
		booksEndpoint: googleBooksURL(getenv("DO_NOT_ENCRYPT") == "true"),
		client:        upstream.NewClient(nil),
	}
	srv, err := serve.FromEnv(getenv, newHandler(cfg), log)
	if err != nil {
		return err
	}
	return srv.Run(ctx)
}
