//go:build mips || mipsle || mips64 || ppc64

package sqlite

// modernc.org/sqlite has no port to these architectures (its libc lacks
// them): the package still builds, so a binary for a MIPS router can run
// the logger, but opening an SQLite store fails with a clear message.
const driverAvailable = false
