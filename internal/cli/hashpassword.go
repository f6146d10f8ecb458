package cli

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/term"
)

func init() {
	Register(&Command{
		Name:    "hash-password",
		Summary: "make a [server.dashboard] users entry (name:bcrypt-hash)",
		Usage: `powermeter hash-password NAME
  Reads a password (from the terminal without echo, or the first line of
  standard input) and prints "NAME:$2a$…" for users = [ … ] in
  [server.dashboard].`,
		Flags: func(fs *flag.FlagSet) {
			fs.Int("cost", bcrypt.DefaultCost, "bcrypt cost (10–14 is sensible)")
		},
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet) error {
			if fs.NArg() != 1 || strings.Contains(fs.Arg(0), ":") || fs.Arg(0) == "" {
				return Usagef("want exactly one user NAME (without ':')")
			}
			cost := fs.Lookup("cost").Value.(flag.Getter).Get().(int)
			if cost < bcrypt.MinCost || cost > bcrypt.MaxCost {
				return Usagef("--cost %d: want %d..%d", cost, bcrypt.MinCost, bcrypt.MaxCost)
			}
			var pw []byte
			if f, ok := env.Stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
				fmt.Fprint(env.Stderr, "password: ")
				b, err := term.ReadPassword(int(f.Fd()))
				fmt.Fprintln(env.Stderr)
				if err != nil {
					return fmt.Errorf("reading the password: %w", err)
				}
				pw = b
			} else {
				line, err := bufio.NewReader(env.Stdin).ReadString('\n')
				if err != nil && line == "" {
					return fmt.Errorf("reading the password from standard input: %w", err)
				}
				pw = []byte(strings.TrimRight(line, "\r\n"))
			}
			if len(pw) == 0 {
				return Usagef("empty password")
			}
			hash, err := bcrypt.GenerateFromPassword(pw, cost)
			if err != nil {
				return fmt.Errorf("hashing the password: %w", err)
			}
			fmt.Fprintf(env.Stdout, "%s:%s\n", fs.Arg(0), hash)
			return nil
		},
	})
}
