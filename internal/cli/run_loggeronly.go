//go:build loggeronly

package cli

import (
	"net/http"
	"time"

	"context"
	"github.com/powermeter/powermeter/internal/logger"
	"github.com/powermeter/powermeter/internal/promexp"
	"log/slog"
	"net"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/store"
)

// openServer refuses: a build with -tags loggeronly (small devices: no
// server, no database, no dashboard) runs the logger only.
func openServer(ctx context.Context, cfg *config.Config, log *slog.Logger) (store.Store, func(context.Context, net.Listener) error, error) {
	return nil, nil, &config.Error{File: cfg.Path, Key: "server", Msg: "this powermeter was built with -tags loggeronly and cannot serve: remove [server] or use the full build"}
}

// loggerMetrics are the logger's Prometheus metrics for its status
// listener, written without client_golang (small build).
func loggerMetrics(lg *logger.Logger, source string) (func(time.Duration), http.Handler) {
	pm := promexp.NewLean(lg, source)
	return pm.ObserveRound, pm.Handler()
}
