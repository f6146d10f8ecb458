//go:build !loggeronly

package cli

import (
	"net/http"
	"time"

	"context"
	"fmt"
	"github.com/powermeter/powermeter/internal/logger"
	"github.com/powermeter/powermeter/internal/promexp/promreg"
	"log/slog"
	"net"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/server"
	"github.com/powermeter/powermeter/internal/store"
)

// openServer opens the [server] section's store and builds the server;
// serve runs it on a listener until ctx ends.
func openServer(ctx context.Context, cfg *config.Config, log *slog.Logger) (st store.Store, serve func(context.Context, net.Listener) error, err error) {
	st, err = store.Open(ctx, cfg.Server.Database)
	if err != nil {
		return nil, nil, fmt.Errorf("opening the database: %w", err)
	}
	srv, err := server.New(ctx, cfg, st, log)
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return st, srv.Serve, nil
}

// loggerMetrics are the logger's Prometheus metrics (client_golang, with
// the Go runtime's) for its status listener.
func loggerMetrics(lg *logger.Logger, source string) (func(time.Duration), http.Handler) {
	pm := promreg.NewLogger(lg, source)
	return pm.ObserveRound, pm.Handler()
}
