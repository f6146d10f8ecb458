package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/emulate"
	"github.com/powermeter/powermeter/internal/logger"
	"github.com/powermeter/powermeter/internal/meter/fritzdect"
	"github.com/powermeter/powermeter/internal/outbox"
	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/server"
	"github.com/powermeter/powermeter/internal/store"
	"github.com/powermeter/powermeter/internal/uplink/uplinktest"
)

// rtEmulators starts a FRITZ!Box (fast PBKDF2 for tests) and, by kind,
// further emulators; it returns the [[meters]] TOML for them.
func rtEmulators(t *testing.T, kinds ...string) string {
	toml, _ := rtEmulatorsBox(t, kinds...)
	return toml
}

func rtEmulatorsBox(t *testing.T, kinds ...string) (string, *fritzdect.Emulator) {
	t.Helper()
	box := fritzdect.NewEmulator(fritzdect.EmulatorOptions{Username: "fritz1234", Password: "geheim", Iter1: 10, Iter2: 10})
	fb := httptest.NewServer(box)
	t.Cleanup(fb.Close)
	toml := fmt.Sprintf("\n[[meters]]\nname = \"balcony\"\ntype = \"fritzdect\"\nurl = %q\nusername = \"fritz1234\"\npassword = \"geheim\"\nain = %q\n", fb.URL, fritzdect.EmuAINSolar)
	for _, kind := range kinds {
		em, err := emulate.New(kind, emulate.Options{Profile: map[string]string{"shelly-gen1": "fridge", "shelly-pro3em": "house3"}[kind]})
		if err != nil {
			t.Fatalf("emulator %s: %v", kind, err)
		}
		srv := httptest.NewServer(em)
		t.Cleanup(srv.Close)
		name := strings.ReplaceAll(kind, "-", "")
		toml += fmt.Sprintf("\n[[meters]]\nname = %q\ntype = \"shelly\"\nurl = %q\n", name, srv.URL)
	}
	return toml, box
}

// switchable passes requests to h, or drops them while down.
type switchable struct {
	h    http.Handler
	down atomic.Bool
}

func (s *switchable) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.down.Load() {
		panic(http.ErrAbortHandler)
	}
	s.h.ServeHTTP(w, r)
}

type key struct {
	device string
	t      time.Time
}

func rtRange(t *testing.T, st store.Store, source string) map[key]reading.Reading {
	t.Helper()
	out := map[key]reading.Reading{}
	err := st.Range(context.Background(), source, time.Now().Add(-24*time.Hour), time.Now().Add(time.Hour), func(r reading.Reading) error {
		k := key{r.Device, r.Time}
		if _, dup := out[k]; dup {
			t.Errorf("source %s: %v stored twice", source, k)
		}
		out[k] = r
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRunEndToEndThroughAnOutage(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// Both uplinks reach our server through a proxy that can go down.
	target, _ := url.Parse("http://" + ln.Addr().String())
	proxy := &switchable{h: httputil.NewSingleHostReverseProxy(target)}
	px := httptest.NewServer(proxy)
	defer px.Close()
	php := &uplinktest.PHP{Key: "php-key-1"}
	phpSrv := httptest.NewServer(php)
	defer phpSrv.Close()

	toml := fmt.Sprintf(`timezone = "Europe/Berlin"
data_dir = %q
[server]
listen = %q
database = %q
[[server.sources]]
name = "home"
key = "home-key-1"
[[server.sources]]
name = "leg"
key = "legacy-key-1"
[[server.sources]]
name = "nat"
key = "native-key-1"
[logger]
interval = "1s"
source = "home"
[[uplinks]]
name = "ours-legacy"
url = %q
protocol = "legacy"
key = "legacy-key-1"
meters = ["balcony"]
[[uplinks]]
name = "ours-native"
url = %q
protocol = "native"
key = "native-key-1"
[[uplinks]]
name = "php"
url = %q
key = "php-key-1"
combine = "sum"
`, dir, ln.Addr().String(), "sqlite://"+filepath.Join(dir, "pm.db"), px.URL+"/", px.URL+"/", phpSrv.URL+"/")
	meters, box := rtEmulatorsBox(t, "shelly-gen1", "shelly-pro3em")
	toml += meters
	cfg, err := config.Parse("e2e.toml", []byte(toml), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	go func() {
		done <- runConfig(ctx, log, cfg, runParts{serverListener: ln, loggerOpts: rtFastRetry()})
	}()
	waitLines := func(n int) {
		deadline := time.Now().Add(30 * time.Second)
		for len(php.Lines()) < n {
			if time.Now().After(deadline) {
				cancel()
				t.Fatalf("only %d lines at the PHP receiver, want %d", len(php.Lines()), n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitLines(2)
	proxy.down.Store(true)
	n := len(php.Lines())
	waitLines(n + 3) // three rounds with our server down
	proxy.down.Store(false)
	waitLines(n + 5)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if bs := box.Stats(); bs.Logins < 1 || bs.Logouts != bs.Logins {
		t.Errorf("FRITZ!Box: %d logins, %d logouts; want a logout at the end", bs.Logins, bs.Logouts)
	}

	st, err := store.Open(context.Background(), "sqlite://"+filepath.Join(dir, "pm.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	home := rtRange(t, st, "home")
	nat := rtRange(t, st, "nat")
	leg := rtRange(t, st, "leg")
	rounds := map[time.Time]int{}
	for k := range home {
		rounds[k.t]++
	}
	if len(rounds) < 7 {
		t.Fatalf("only %d rounds stored locally", len(rounds))
	}
	for r, c := range rounds {
		if c != 3 {
			t.Errorf("round %v has %d readings locally, want 3 (one per meter)", r, c)
		}
	}
	// The native uplink delivered exactly what was taken.
	if len(nat) != len(home) {
		t.Errorf("native: %d readings, local %d", len(nat), len(home))
	}
	for k, r := range home {
		n, ok := nat[k]
		if !ok || n.Power != r.Power {
			t.Errorf("native lacks %v (or differs: %+v vs %+v)", k, n, r)
		}
	}
	// The legacy uplink: one line per round, the balcony's power.
	if len(leg) != len(rounds) {
		t.Errorf("legacy: %d readings for %d rounds", len(leg), len(rounds))
	}
	for k, r := range leg {
		b, ok := home[key{"balcony", k.t}]
		if !ok || fmt.Sprintf("%.2f", b.Power) != fmt.Sprintf("%.2f", r.Power) {
			t.Errorf("legacy reading %v %.2f does not match the balcony's %+v", k, r.Power, b)
		}
	}
	// The PHP receiver: a sum line per round, each once, with the 3EM's
	// total among the values.
	lines := php.Lines()
	if len(lines) != len(rounds) {
		t.Errorf("PHP receiver: %d lines for %d rounds", len(lines), len(rounds))
	}
	seen := map[string]bool{}
	for _, l := range lines {
		ts := l.Stats[:19]
		if seen[ts] {
			t.Errorf("PHP receiver got round %s twice", ts)
		}
		seen[ts] = true
		if len(l.Parsed.Extra) != 3 {
			t.Errorf("line %q: want sum,temp,p1,p2,p3", l.Stats)
		}
	}
	if len(php.Rejected()) != 0 {
		t.Errorf("PHP receiver refused %q", php.Rejected())
	}
}

func rtFastRetry() (o logger.Options) {
	o.BackoffMin = 20 * time.Millisecond
	o.BackoffMax = 200 * time.Millisecond
	return o
}

// TestHelperRunProcess is not a test: TestKilledAndRestarted runs the test
// binary again with POWERMETER_RUN_CONFIG set, and then this is
// `powermeter run --config $POWERMETER_RUN_CONFIG`.
func TestHelperRunProcess(t *testing.T) {
	path := os.Getenv("POWERMETER_RUN_CONFIG")
	if path == "" {
		return
	}
	os.Exit(Main([]string{"run", "--config", path}, &Env{Stdout: os.Stdout, Stderr: os.Stderr}))
}

func TestKilledAndRestartedNothingLostNothingDoubled(t *testing.T) {
	dir := t.TempDir()
	// Our server, in this process.
	st, err := store.Open(context.Background(), "sqlite://"+filepath.Join(dir, "server.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	scfg, err := config.Parse("server.toml", []byte(`[server]
[[server.sources]]
name = "home"
key = "home-key-1"
`), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(context.Background(), scfg, st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	php := &uplinktest.PHP{Key: "php-key-1"}
	phpSrv := httptest.NewServer(php)
	defer phpSrv.Close()

	data := filepath.Join(dir, "logger")
	cfgPath := filepath.Join(dir, "logger.toml")
	toml := fmt.Sprintf(`data_dir = %q
[logger]
interval = "1s"
[[uplinks]]
name = "ours"
url = %q
protocol = "native"
key = "home-key-1"
[[uplinks]]
name = "php"
url = %q
key = "php-key-1"
combine = "each"
`, data, hs.URL+"/", phpSrv.URL+"/") + rtEmulators(t, "shelly-gen1")
	if err := os.WriteFile(cfgPath, []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	start := func() (*exec.Cmd, *strings.Builder) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperRunProcess$")
		cmd.Env = append(os.Environ(), "POWERMETER_RUN_CONFIG="+cfgPath)
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, &out
	}
	countAt := func(n int, what string, out *strings.Builder) {
		deadline := time.Now().Add(30 * time.Second)
		for len(php.Lines()) < n {
			if time.Now().After(deadline) {
				t.Fatalf("%s: only %d lines, want %d\n%s", what, len(php.Lines()), n, out)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	cmd, out := start()
	countAt(5, "first run", out)
	// Kill in the middle of whatever it is doing.
	time.Sleep(time.Duration(time.Now().UnixNano()%700) * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	before := len(php.Lines())
	time.Sleep(1500 * time.Millisecond)
	cmd, out = start()
	countAt(before+6, "after the restart", out)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("graceful stop: %v\n%s", err, out)
	}

	// Everything the logger took is in its outbox (nothing was deleted at
	// this size); compare with both receivers.
	ob, err := outbox.Open(filepath.Join(data, "outbox"), outbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	taken, err := ob.Pending("check", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	stored := rtRange(t, st, "home")
	if len(taken) < 12 {
		t.Fatalf("the logger took only %d readings", len(taken))
	}
	for _, it := range taken {
		if _, ok := stored[key{it.Reading.Device, it.Reading.Time}]; !ok {
			t.Errorf("lost on the way to our server: %s %v", it.Reading.Device, it.Reading.Time)
		}
	}
	if len(stored) != len(taken) {
		t.Errorf("our server has %d readings, the logger took %d", len(stored), len(taken))
	}
	// The PHP receiver does not deduplicate (only a repeat of the last
	// line): every reading must have arrived as exactly one line.
	lines := php.Lines()
	count := map[string]int{}
	for _, l := range lines {
		count[l.Stats]++
	}
	var doubled []string
	for s, c := range count {
		if c > 1 {
			doubled = append(doubled, s)
		}
	}
	sort.Strings(doubled)
	if len(doubled) > 0 {
		t.Errorf("lines doubled at the PHP receiver: %q", doubled)
	}
	if len(lines) != len(taken) {
		t.Errorf("PHP receiver: %d lines, the logger took %d readings", len(lines), len(taken))
	}
}

func TestRunConfigErrorsExit2(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	led := filepath.Join(dir, "led")
	os.MkdirAll(led, 0o755)
	for _, f := range []string{"trigger", "delay_on", "delay_off"} {
		os.WriteFile(filepath.Join(led, f), nil, 0o644)
	}
	cases := []struct {
		name, body, want string
	}{
		{"nothing.toml", "data_dir = \"" + dir + "\"\n", "nothing to run"},
		{"badca.toml", fmt.Sprintf("data_dir = %q\n[logger]\nstatus_led = %q\n[[meters]]\nname = \"m\"\ntype = \"shelly\"\nurl = \"http://127.0.0.1:9\"\n[[uplinks]]\nname = \"u\"\nurl = \"https://127.0.0.1:9/\"\nkey = \"k\"\nca_file = %q\n", dir, led, filepath.Join(dir, "missing.pem")), "uplinks[0].ca_file"},
		{"badkey.toml", "[logger]\nintervall = \"10s\"\n", "logger.intervall"},
		{"summeters.toml", fmt.Sprintf("data_dir = %q\n", dir) + thirteenMeters() + "[[uplinks]]\nname = \"php\"\nurl = \"http://127.0.0.1:9/\"\nkey = \"k\"\ncombine = \"sum\"\n", "uplinks[0].meters"},
	}
	for _, c := range cases {
		code, _, stderr := runCLI(t, "run", "--config", write(c.name, c.body))
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("%s: exit %d, stderr %q; want 2 and %q", c.name, code, stderr, c.want)
		}
	}
	// The LED shows the configuration error (2 blinks/s) after the exit.
	if b, _ := os.ReadFile(filepath.Join(led, "delay_on")); string(b) != "250" {
		t.Errorf("LED delay_on %q after a config error, want 250", b)
	}
	if code, _, _ := runCLI(t, "run"); code != 2 {
		t.Errorf("run without --config: exit %d", code)
	}
}

// A [server] listen that fails leaves no logger behind: the outbox (its
// lock) and the meters are not opened.
func TestRunFailedListenLeavesNothingOpen(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := t.TempDir()
	cfg, err := config.Parse("run.toml", []byte(fmt.Sprintf(`data_dir = %q
[server]
listen = %q
database = %q
[[server.sources]]
name = "home"
key = "home-key-1"
[logger]
source = "home"
[[meters]]
name = "m"
type = "shelly"
url = "http://127.0.0.1:9"
`, dir, busy.Addr().String(), "sqlite://"+filepath.Join(dir, "db.sqlite"))), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	err = runConfig(context.Background(), slog.New(slog.DiscardHandler), cfg, runParts{})
	if err == nil || !strings.Contains(err.Error(), "server.listen") {
		t.Fatalf("runConfig = %v, want the listen error", err)
	}
	ob, err := outbox.Open(filepath.Join(dir, "outbox"), outbox.Options{})
	if err != nil {
		t.Fatalf("the outbox is still held: %v", err)
	}
	ob.Close()
}

// Readings the local store refuses for good are logged (and counted by the
// logger), not dropped silently.
func TestRunLocalStoreRejectionsAreLogged(t *testing.T) {
	dir := t.TempDir()
	// A reading the store refuses (no time) waits in the outbox.
	ob, err := outbox.Open(filepath.Join(dir, "outbox"), outbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ob.Append([]outbox.Item{{Meter: "m", Reading: reading.Reading{Device: "m", Power: 1}}}); err != nil {
		t.Fatal(err)
	}
	ob.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse("run.toml", []byte(fmt.Sprintf(`data_dir = %q
[server]
database = %q
[[server.sources]]
name = "home"
key = "home-key-1"
[logger]
interval = "1s"
source = "home"
[[meters]]
name = "m"
type = "shelly"
url = "http://127.0.0.1:9"
`, dir, "sqlite://"+filepath.Join(dir, "db.sqlite"))), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	var logs demoBuf
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	lopts := rtFastRetry()
	lopts.Log = slog.New(slog.NewTextHandler(&logs, nil))
	go func() {
		done <- runConfig(ctx, slog.New(slog.DiscardHandler), cfg, runParts{serverListener: ln, loggerOpts: lopts})
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(logs.String(), "refused a reading for good") {
		if time.Now().After(deadline) {
			t.Fatalf("the refusal was not logged:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "uplink=local") {
		t.Fatalf("the refusal does not name the local store:\n%s", logs.String())
	}
}

// Killed while draining a backlog into a PHP install (which does not
// deduplicate) and restarted: every reading arrives as exactly one line.
// Replayed lines are acknowledged one by one, so only the line in flight at
// the kill is sent again, and that one had not arrived.
func TestKilledWhileReplayingNothingDoubled(t *testing.T) {
	dir := t.TempDir()
	php := &uplinktest.PHP{Key: "php-key-1"}
	var up atomic.Bool
	var replays atomic.Int32
	var trap atomic.Bool
	trap.Store(true)
	trapped := make(chan struct{}, 1)
	phpSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		if r.Method == http.MethodPost && r.FormValue("buffer") == "1" {
			if replays.Add(1) == 4 && trap.Load() {
				// The 4th replay is in flight when the logger is killed;
				// it never arrives.
				trapped <- struct{}{}
				<-r.Context().Done()
				return
			}
		}
		php.ServeHTTP(w, r)
	}))
	defer phpSrv.Close()

	data := filepath.Join(dir, "logger")
	cfgPath := filepath.Join(dir, "logger.toml")
	toml := fmt.Sprintf(`data_dir = %q
[logger]
interval = "1s"
[[uplinks]]
name = "php"
url = %q
key = "php-key-1"
`, data, phpSrv.URL+"/") + rtEmulators(t)
	if err := os.WriteFile(cfgPath, []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	start := func() (*exec.Cmd, *strings.Builder) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperRunProcess$")
		cmd.Env = append(os.Environ(), "POWERMETER_RUN_CONFIG="+cfgPath)
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, &out
	}
	cmd, out := start()
	// Down for several rounds: a backlog builds up.
	time.Sleep(6 * time.Second)
	up.Store(true)
	select {
	case <-trapped:
	case <-time.After(60 * time.Second):
		t.Fatalf("no replay in flight after the receiver came back (%d lines)\n%s", len(php.Lines()), out)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	trap.Store(false)
	if n := len(php.Lines()); n < 3 {
		t.Fatalf("only %d lines before the kill", n)
	}
	cmd, out = start()
	// Drained and current again: two live lines after the restart.
	deadline := time.Now().Add(60 * time.Second)
	for {
		live := 0
		for _, l := range php.Lines() {
			if !l.Buffer {
				live++
			}
		}
		if live >= 2 && replays.Load() > 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not drained after the restart\n%s", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("graceful stop: %v\n%s", err, out)
	}
	ob, err := outbox.Open(filepath.Join(data, "outbox"), outbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	if n := ob.Backlog("php"); n != 0 {
		t.Fatalf("%d readings still waiting", n)
	}
	taken, err := ob.Pending("check", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, l := range php.Lines() {
		count[l.Stats]++
	}
	var doubled []string
	for s, c := range count {
		if c > 1 {
			doubled = append(doubled, s)
		}
	}
	sort.Strings(doubled)
	if len(doubled) > 0 || php.Duplicates() > 0 {
		t.Errorf("lines doubled at the PHP receiver: %q (%d repeats of the last line)", doubled, php.Duplicates())
	}
	if len(php.Lines()) != len(taken) {
		t.Errorf("PHP receiver: %d lines, the logger took %d readings", len(php.Lines()), len(taken))
	}
}

// thirteenMeters is TOML for 13 meters, m1 … m13.
func thirteenMeters() string {
	var b strings.Builder
	for i := 1; i <= 13; i++ {
		fmt.Fprintf(&b, "[[meters]]\nname = \"m%d\"\ntype = \"shelly\"\nurl = \"http://127.0.0.1:9\"\n", i)
	}
	return b.String()
}
