//go:build !mips && !mipsle && !mips64 && !ppc64

package sqlite

import _ "modernc.org/sqlite" // registers driver "sqlite"

// driverAvailable tells whether modernc.org/sqlite runs on this platform.
const driverAvailable = true
