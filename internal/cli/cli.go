// Package cli is the powermeter command line: a verb registry, flag parsing
// with clear messages and exit codes (2 for usage and config errors).
// Each verb lives in its own file and registers itself in init.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/powermeter/powermeter/internal/config"
)

// Env is what a verb gets besides its arguments.
type Env struct {
	Stdout, Stderr io.Writer
	Stdin          io.Reader
	Log            *slog.Logger
	// Getenv reads the environment (tests replace it).
	LookupEnv func(string) (string, bool)
}

// Command is one verb.
type Command struct {
	Name    string
	Summary string // one line for the verb list
	Usage   string // "powermeter serve [--config FILE]" and what it does
	// Flags declares the verb's flags on fs; Run then gets the parsed set.
	Flags func(fs *flag.FlagSet)
	Run   func(ctx context.Context, env *Env, fs *flag.FlagSet) error
	// LongRunning verbs (services) also get --log-level and --log-format.
	LongRunning bool
}

var commands = map[string]*Command{}

// Register adds a verb.
func Register(c *Command) {
	if _, dup := commands[c.Name]; dup {
		panic("cli: verb registered twice: " + c.Name)
	}
	commands[c.Name] = c
}

// UsageError is a wrong verb, flag or argument: exit code 2.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// Usagef builds a UsageError.
func Usagef(format string, args ...any) error {
	return &UsageError{Msg: fmt.Sprintf(format, args...)}
}

// Main runs the command line and returns the exit code.
func Main(args []string, env *Env) int {
	if env.LookupEnv == nil {
		env.LookupEnv = os.LookupEnv
	}
	ownLog := env.Log == nil
	if ownLog {
		env.Log = slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: logLevel(env)}))
	}
	if len(args) > 0 && (args[0] == "--version" || args[0] == "-version" || args[0] == "-V") {
		fmt.Fprintln(env.Stdout, versionLine())
		return 0
	}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		if len(args) > 1 {
			if c, ok := commands[args[1]]; ok {
				printUsage(env.Stdout, c)
				return 0
			}
		}
		printVerbs(env.Stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(env.Stderr, "powermeter: unknown verb %q\n", args[0])
		if s := suggest(args[0]); s != "" {
			fmt.Fprintf(env.Stderr, "did you mean %q?\n", s)
		}
		fmt.Fprintln(env.Stderr, "run 'powermeter help' for the list of verbs")
		return 2
	}
	fs := flag.NewFlagSet("powermeter "+c.Name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	declareFlags(fs, c)
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(env.Stdout, c)
			return 0
		}
		fmt.Fprintf(env.Stderr, "powermeter %s: %v\nrun 'powermeter %s --help' for its flags\n", c.Name, err, c.Name)
		return 2
	}
	if c.LongRunning {
		lg, err := newLogger(env, fs)
		if err != nil {
			fmt.Fprintf(env.Stderr, "powermeter %s: %v\nrun 'powermeter %s --help' for its flags\n", c.Name, err, c.Name)
			return 2
		}
		if lg != nil || ownLog {
			if lg == nil {
				lg = env.Log
			}
			env.Log = lg
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := c.Run(ctx, env, fs)
	if err == nil {
		return 0
	}
	var ue *UsageError
	switch {
	case errors.As(err, &ue):
		fmt.Fprintf(env.Stderr, "powermeter %s: %v\nrun 'powermeter %s --help' for its flags\n", c.Name, err, c.Name)
		return 2
	case config.IsConfigError(err):
		fmt.Fprintf(env.Stderr, "powermeter %s: configuration error:\n%v\n", c.Name, indent(err.Error()))
		return 2
	default:
		fmt.Fprintf(env.Stderr, "powermeter %s: %v\n", c.Name, err)
		return 1
	}
}

// DefaultConfigPaths are tried in order when --config is omitted.
var DefaultConfigPaths = []string{"powermeter.toml", "/etc/powermeter/powermeter.toml"}

// findConfig returns the first of DefaultConfigPaths that exists, or "".
func findConfig() string {
	for _, p := range DefaultConfigPaths {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	return ""
}

// LoadConfig loads the file named by --config; when path is empty, the
// first of DefaultConfigPaths that exists, else the defaults when
// allowDefault is set. Warnings (accepted but doubtful settings) are logged.
func LoadConfig(env *Env, path string, allowDefault bool) (*config.Config, error) {
	if path == "" {
		path = findConfig()
		if path != "" {
			env.Log.Info("using the config file", "file", path)
		}
	}
	if path == "" {
		if allowDefault {
			return config.Default(), nil
		}
		return nil, Usagef("--config FILE is required (none given, and neither %s exists)", strings.Join(DefaultConfigPaths, " nor "))
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &config.Error{File: path, Msg: fmt.Sprintf("cannot read the config file: %v", err)}
	}
	cfg, err := config.Parse(path, data, env.LookupEnv)
	if err != nil {
		return nil, err
	}
	for _, w := range cfg.Warnings {
		env.Log.Warn("config: " + w.Error())
	}
	return cfg, nil
}

func logLevel(env *Env) slog.Level {
	if v, _ := env.LookupEnv("POWERMETER_LOG"); strings.EqualFold(v, "debug") {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

// declareFlags declares c's flags, and the log flags of long-running verbs.
func declareFlags(fs *flag.FlagSet, c *Command) {
	if c.Flags != nil {
		c.Flags(fs)
	}
	if c.LongRunning {
		fs.String("log-level", "", "`level` of the log: debug, info, warn or error (default info; POWERMETER_LOG=debug also works)")
		fs.String("log-format", "text", "`format` of the log on stderr: text (key=value) or json (one object per line)")
	}
}

// newLogger builds the logger --log-level and --log-format ask for; nil
// when neither was given.
func newLogger(env *Env, fs *flag.FlagSet) (*slog.Logger, error) {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == "log-level" || f.Name == "log-format" })
	if !given {
		return nil, nil
	}
	level := logLevel(env)
	switch v := strings.ToLower(fs.Lookup("log-level").Value.String()); v {
	case "":
	case "debug":
		level = slog.LevelDebug
	case "info":
		level = slog.LevelInfo
	case "warn", "warning":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	default:
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", v)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch v := fs.Lookup("log-format").Value.String(); v {
	case "text":
		return slog.New(slog.NewTextHandler(env.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(env.Stderr, opts)), nil
	default:
		return nil, fmt.Errorf("--log-format %q: want text or json", v)
	}
}

func printVerbs(w io.Writer) {
	fmt.Fprintln(w, "powermeter — reads energy meters, forwards and stores their readings, shows them")
	fmt.Fprintln(w, "\nusage: powermeter VERB [flags]\n\nverbs:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-14s %s\n", n, commands[n].Summary)
	}
	fmt.Fprintln(w, "\nrun 'powermeter VERB --help' for a verb's flags")
}

func printUsage(w io.Writer, c *Command) {
	fmt.Fprintf(w, "usage: %s\n", c.Usage)
	fs := flag.NewFlagSet(c.Name, flag.ContinueOnError)
	declareFlags(fs, c)
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		fmt.Fprintln(w, "\nflags:")
		fs.SetOutput(w)
		fs.PrintDefaults()
	}
}

func suggest(verb string) string {
	for n := range commands {
		if strings.HasPrefix(n, verb) || strings.HasPrefix(verb, n) {
			return n
		}
	}
	return ""
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(s, "\n", "\n  ")
}
