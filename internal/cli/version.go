package cli

import (
	"context"
	"flag"
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version and Commit are set by the release script:
//
//	-ldflags "-X github.com/powermeter/powermeter/internal/cli.Version=v1.2.3
//	          -X github.com/powermeter/powermeter/internal/cli.Commit=abc123…"
//
// Without them the version is "dev" and the commit comes from the build
// info Go records (vcs.revision, when built inside a git checkout with
// -buildvcs).
var (
	Version = "dev"
	Commit  = ""
)

func init() {
	Register(&Command{
		Name:    "version",
		Summary: "print the version, the commit it was built from and the Go version",
		Usage:   "powermeter version   (also: powermeter --version)",
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet) error {
			if fs.NArg() > 0 {
				return Usagef("version takes no arguments")
			}
			fmt.Fprintln(env.Stdout, versionLine())
			return nil
		},
	})
}

// buildCommit is Commit, or the VCS revision from the build info (with
// "+dirty" when the tree had changes), or "unknown".
func buildCommit() string {
	if Commit != "" {
		return Commit
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	rev, dirty := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "unknown"
	}
	if dirty {
		rev += "+dirty"
	}
	return rev
}

// versionLine is "powermeter v1.2.3 (commit abc…, go1.27.3, linux/arm64)".
func versionLine() string {
	return fmt.Sprintf("powermeter %s (commit %s, %s, %s/%s)", Version, buildCommit(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
