//go:build !loggeronly

package cli

// The store backends every verb can open, by the database URL's scheme.
import (
	_ "github.com/powermeter/powermeter/internal/store/postgres" // postgres://, postgresql://
	_ "github.com/powermeter/powermeter/internal/store/sqlite"   // sqlite://
)
