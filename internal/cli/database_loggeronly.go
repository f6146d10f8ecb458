//go:build loggeronly

package cli

import (
	"context"

	"github.com/powermeter/powermeter/internal/config"
)

func checkDatabase(ctx context.Context, env *Env, cfg *config.Config, full bool) error {
	return &config.Error{File: cfg.Path, Key: "server", Msg: "this powermeter was built with -tags loggeronly and has no database"}
}
