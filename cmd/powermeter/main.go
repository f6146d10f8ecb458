// Command powermeter reads energy meters (FRITZ!DECT, Shelly, Tasmota,
// AhoyDTU, OpenDTU), forwards their readings, stores and shows them.
package main

import (
	"os"

	"github.com/powermeter/powermeter/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], &cli.Env{Stdout: os.Stdout, Stderr: os.Stderr, Stdin: os.Stdin}))
}
