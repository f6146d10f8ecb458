//go:build unix

package phpdir

import (
	"fmt"
	"os"
	"syscall"
)

// openRegular opens path for reading without following a symbolic link
// and without blocking on a named pipe (the caller checks the type).
func openRegular(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	return f, nil
}
