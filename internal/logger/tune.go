package logger

import (
	"os"
	"runtime"
	"runtime/debug"
)

// TuneForSmallDevice sets up the Go runtime for a logger running alone on a
// small device (a router, a Pi Zero): garbage is collected at half the
// usual heap growth unless GOGC says otherwise (the live heap stays well
// under 1 MB, so this costs little CPU), and no memory-profile samples are
// kept.
func TuneForSmallDevice() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(50)
	}
	runtime.MemProfileRate = 0
}
