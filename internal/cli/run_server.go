//go:build !loggeronly

package cli

import (
	"context"
	"fmt"
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
