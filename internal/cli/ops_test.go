//go:build !loggeronly

package cli

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/store/postgres/pgtest"
	"github.com/powermeter/powermeter/internal/store/sqlite"
)

func TestVersionFlagAndCommit(t *testing.T) {
	code, out, _ := mainOf(t, "--version")
	code2, out2, _ := mainOf(t, "version")
	if code != 0 || code2 != 0 || out != out2 {
		t.Fatalf("--version (%d) %q and version (%d) %q differ", code, out, code2, out2)
	}
	if !strings.Contains(out, "commit ") || !strings.Contains(out, runtime.Version()) {
		t.Errorf("version line %q lacks commit or Go version", out)
	}
	old, oldC := Version, Commit
	defer func() { Version, Commit = old, oldC }()
	Version, Commit = "v1.2.3", "0123456789abcdef"
	if _, out, _ := mainOf(t, "--version"); !strings.HasPrefix(out, "powermeter v1.2.3 (commit 0123456789abcdef, ") {
		t.Errorf("stamped version line = %q", out)
	}
}

// startServe runs the serve verb with args until the test ends; it returns
// once /healthz answers.
func startServe(t *testing.T, addr string, args ...string) (stop func() error) {
	t.Helper()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	declareFlags(fs, commands["serve"])
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	var out, errb syncBuffer
	env := &Env{Stdout: &out, Stderr: &errb, LookupEnv: func(string) (string, bool) { return "", false }, Log: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runServe(ctx, env, fs) }()
	for i := 0; ; i++ {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		if i == 200 {
			cancel()
			t.Fatalf("serve never answered: %v (%s)", err, errb.String())
		}
		time.Sleep(25 * time.Millisecond)
	}
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

func TestServeListenFlagAndHealthcheck(t *testing.T) {
	cfg := ieConfig(t, "127.0.0.1:1", true) // the file's address is not used
	addr := freeAddr(t)
	stop := startServe(t, addr, "--config", cfg, "--listen", addr)
	if code, out, stderr := mainOf(t, "healthcheck", "--url", "http://"+addr+"/healthz"); code != 0 || !strings.Contains(out, "healthy") {
		t.Errorf("healthcheck: exit %d, %q %q", code, out, stderr)
	}
	// from the config file: [server] listen on every interface → loopback
	other := filepath.Join(t.TempDir(), "pm.toml")
	os.WriteFile(other, []byte(fmt.Sprintf("[server]\nlisten = \"0.0.0.0:%s\"\n", addr[strings.LastIndex(addr, ":")+1:])), 0o600)
	if code, out, stderr := mainOf(t, "healthcheck", "--config", other); code != 0 || !strings.Contains(out, "127.0.0.1") {
		t.Errorf("healthcheck --config: exit %d, %q %q", code, out, stderr)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := mainOf(t, "healthcheck", "--url", "http://"+addr+"/healthz", "--timeout", "2s"); code != 1 || !strings.Contains(stderr, "unhealthy") {
		t.Errorf("healthcheck of a stopped server: exit %d, %q", code, stderr)
	}
}

// A busy port names --listen; the config is found in the working folder;
// --log-format json logs JSON.
func TestBusyPortDefaultConfigJSONLog(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "powermeter.toml"), []byte(fmt.Sprintf("[server]\nlisten = %q\ndatabase = \"sqlite://%s/pm.db\"\n", ln.Addr(), dir)), 0o600)
	t.Chdir(dir)
	code, _, stderr := mainOf(t, "serve", "--log-format", "json", "--log-level", "debug")
	if code != 1 || !strings.Contains(stderr, "--listen") || !strings.Contains(stderr, "already in use") {
		t.Errorf("busy port: exit %d, %q", code, stderr)
	}
	if !strings.Contains(stderr, `"msg":"using the config file","file":"powermeter.toml"`) {
		t.Errorf("no JSON log line naming the found config in %q", stderr)
	}
	if code, _, stderr := mainOf(t, "serve", "--log-format", "xml"); code != 2 || !strings.Contains(stderr, "text or json") {
		t.Errorf("--log-format xml: exit %d, %q", code, stderr)
	}
	if code, _, stderr := mainOf(t, "run", "--log-level", "loud"); code != 2 || !strings.Contains(stderr, "debug, info, warn or error") {
		t.Errorf("--log-level loud: exit %d, %q", code, stderr)
	}
}

func TestCheckVerb(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	db := filepath.Join(dir, "pm.db")
	good := write("good.toml", fmt.Sprintf("data_dir = %q\n[server]\ndatabase = \"sqlite://%s\"\n[[server.sources]]\nname = \"old\"\nkey = \"abc\"\n[[meters]]\nname = \"plug\"\ntype = \"shelly\"\nurl = \"http://192.0.2.1\"\n", dir, db))
	code, out, stderr := mainOf(t, "check", "--config", good)
	if code != 0 || !strings.Contains(out, "good.toml:6: server.sources[0].key: only 3 characters") || !strings.Contains(out, ": ok (1 meters") {
		t.Errorf("check good: exit %d, %q %q", code, out, stderr)
	}
	bad := write("bad.toml", "[[meters]]\nname = \"plug\"\ntype = \"shelly\"\nurl = \"http://192.0.2.1\"\nca_file = \""+filepath.Join(dir, "none.pem")+"\"\n[[meters]]\nname = \"b\"\ntype = \"shelly\"\nurl = \"http://x\"\npasword = \"x\"\n")
	code, _, stderr = mainOf(t, "check", "--config", bad)
	if code != 2 || !strings.Contains(stderr, "bad.toml:10: meters[1].pasword: unknown key") {
		t.Errorf("check bad: exit %d, %q", code, stderr)
	}
	notPEM := write("x.pem", "hello")
	ca := write("ca.toml", "[[meters]]\nname = \"plug\"\ntype = \"shelly\"\nurl = \"https://192.0.2.1\"\nca_file = \""+notPEM+"\"\n[server]\n[server.dashboard]\nusers = [\"anna:$2a$10$short\"]\n")
	code, _, stderr = mainOf(t, "check", "--config", ca)
	if code != 2 || !strings.Contains(stderr, "meters[0].ca_file: "+notPEM+" holds no PEM") || !strings.Contains(stderr, "server.dashboard.users[0]: not a usable bcrypt hash") {
		t.Errorf("check ca/hash: exit %d, %q", code, stderr)
	}

	// --database: a missing file is reported, not created
	if code, _, stderr := mainOf(t, "check", "--config", good, "--database"); code != 1 || !strings.Contains(stderr, "no such file") {
		t.Errorf("check --database without a file: exit %d, %q", code, stderr)
	}
	if _, err := os.Stat(db); err == nil {
		t.Fatal("check --database created the database")
	}
	st, err := sqlite.OpenFile(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	for _, full := range []bool{false, true} {
		args := []string{"check", "--config", good, "--database"}
		want := "quick_check ok"
		if full {
			args, want = append(args, "--full"), "integrity_check ok"
		}
		if code, out, stderr := mainOf(t, args...); code != 0 || !strings.Contains(out, want) {
			t.Errorf("check %v: exit %d, %q %q", args, code, out, stderr)
		}
	}
}

// Backup while readings stream in over HTTP: the copy holds every reading
// acknowledged before the backup began and none that was never sent;
// restore refuses while the server runs and afterwards brings the copy's
// readings back.
func TestBackupUnderLoadAndRestore(t *testing.T) {
	addr := freeAddr(t)
	cfg := ieConfig(t, addr, true)
	dbPath := filepath.Join(filepath.Dir(cfg), "pm.db")
	stop := startServe(t, addr, "--config", cfg)

	var acked, sent atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var next atomic.Int64
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				at := start.Add(time.Duration(next.Add(1)) * 10 * time.Second)
				u := fmt.Sprintf("http://%s/log.php?key=abc12345&stats=%s,%d.5", addr, at.Format("02.01.2006,15:04:05"), at.Second()+100)
				sent.Add(1)
				resp, err := http.Get(u)
				if err != nil {
					continue
				}
				resp.Body.Close()
				if resp.StatusCode == 200 {
					acked.Add(1)
				}
			}
		}()
	}
	for acked.Load() < 300 {
		time.Sleep(10 * time.Millisecond)
	}
	backup := filepath.Join(t.TempDir(), "backup.db")
	before := acked.Load()
	code, out, stderr := mainOf(t, "backup", "--config", cfg, "--to", backup)
	during := sent.Load()
	if code != 0 || !strings.Contains(out, "checked") {
		t.Fatalf("backup: exit %d, %q %q", code, out, stderr)
	}
	for acked.Load() < before+200 { // the load went on after the backup
		time.Sleep(10 * time.Millisecond)
	}
	if code, _, stderr := mainOf(t, "backup", "--config", cfg, "--to", backup); code != 1 || !strings.Contains(stderr, "exists already") {
		t.Errorf("backup over an existing file: exit %d, %q", code, stderr)
	}
	// restore while the server runs: refused, nothing changed
	if code, _, stderr := mainOf(t, "restore", "--config", cfg, "--from", backup); code != 1 || !strings.Contains(stderr, "in use by a running powermeter") {
		t.Errorf("restore while running: exit %d, %q", code, stderr)
	}
	cancel()
	wg.Wait()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	total := acked.Load()
	inBackup := countReadings(t, backup)
	if inBackup < before || inBackup > during {
		t.Errorf("backup holds %d readings; %d were acknowledged before it began and %d sent by its end", inBackup, before, during)
	}
	if got := countReadings(t, dbPath); got != total {
		t.Fatalf("database holds %d readings, %d acknowledged", got, total)
	}
	if code, out, stderr := mainOf(t, "restore", "--config", cfg, "--from", backup); code != 0 || !strings.Contains(out, "restored") {
		t.Fatalf("restore: exit %d, %q %q", code, out, stderr)
	}
	if got := countReadings(t, dbPath); got != inBackup {
		t.Errorf("after restore: %d readings, the backup has %d", got, inBackup)
	}
	if got := countReadings(t, dbPath+".before-restore"); got != total {
		t.Errorf("the replaced database kept %d readings, want %d", got, total)
	}
	t.Logf("backup under load: %d readings acknowledged before, %d in the backup, %d at the end", before, inBackup, total)
}

func TestBackupRefusesPostgres(t *testing.T) {
	f := filepath.Join(t.TempDir(), "pm.toml")
	os.WriteFile(f, []byte("[server]\ndatabase = \"postgres://pm:secret@db.example/pm\"\n"), 0o600)
	code, _, stderr := mainOf(t, "backup", "--config", f, "--to", filepath.Join(t.TempDir(), "x"))
	if code != 1 || !strings.Contains(stderr, "pg_dump -Fc") || strings.Contains(stderr, "secret") {
		t.Errorf("backup of PostgreSQL: exit %d, %q", code, stderr)
	}
	code, _, stderr = mainOf(t, "restore", "--config", f, "--from", f)
	if code != 1 || !strings.Contains(stderr, "pg_restore") {
		t.Errorf("restore into PostgreSQL: exit %d, %q", code, stderr)
	}
}

func countReadings(t *testing.T, path string) int64 {
	t.Helper()
	st, err := sqlite.OpenFile(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srcs, err := st.Sources(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, s := range srcs {
		n += s.Count
	}
	return n
}

// An old logger's short key (in its flash, cannot be changed) is accepted
// by the server, with a warning in the log.
func TestShortKeyAcceptedWithWarning(t *testing.T) {
	addr := freeAddr(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "pm.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("[server]\nlisten = %q\ndatabase = \"sqlite://%s/pm.db\"\n[[server.sources]]\nname = \"old\"\nkey = \"esp\"\n", addr, dir)), 0o600)
	var logs syncBuffer
	env := &Env{Stdout: &logs, Stderr: &logs, LookupEnv: func(string) (string, bool) { return "", false }, Log: slog.New(slog.NewTextHandler(&logs, nil))}
	if _, err := LoadConfig(env, cfg, false); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "server.sources[0].key: only 3 characters") {
		t.Errorf("no warning logged: %q", logs.String())
	}
	startServe(t, addr, "--config", cfg)
	resp, err := http.Get("http://" + addr + "/log.php?key=esp&stats=01.06.2026,12:00:00,123.45,21.5")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("short key: %s", resp.Status)
	}
}

// check --database on PostgreSQL: the database is reached and its sources
// counted; backup refuses and names pg_dump.
func TestCheckDatabasePostgres(t *testing.T) {
	url := pgtest.URL(t)
	f := filepath.Join(t.TempDir(), "pm.toml")
	os.WriteFile(f, []byte(fmt.Sprintf("[server]\ndatabase = %q\n", url)), 0o600)
	code, out, stderr := mainOf(t, "check", "--config", f, "--database")
	if code != 0 || !strings.Contains(out, "reachable, 0 sources") {
		t.Errorf("check --database on PostgreSQL: exit %d, %q %q", code, out, stderr)
	}
	if code, _, stderr := mainOf(t, "backup", "--config", f, "--to", filepath.Join(t.TempDir(), "b")); code != 1 || !strings.Contains(stderr, "pg_dump") {
		t.Errorf("backup on PostgreSQL: exit %d, %q", code, stderr)
	}
}

// check builds the meters to run their own validation, without a request.
func TestCheckMetersOffline(t *testing.T) {
	var hits atomic.Int64
	srv := http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) })}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	url := "http://" + ln.Addr().String()
	f := filepath.Join(t.TempDir(), "pm.toml")
	os.WriteFile(f, []byte(fmt.Sprintf("[[meters]]\nname = \"box\"\ntype = \"fritzdect\"\nurl = %q\nusername = \"u\"\npassword = \"p\"\n\n[[meters]]\nname = \"plug\"\ntype = \"shelly\"\nurl = %q\nchannel = 16\n", url, url)), 0o600)
	code, _, stderr := mainOf(t, "check", "--config", f)
	if code != 2 || !strings.Contains(stderr, "pm.toml:12: meters[1].channel: 16: want 0..15") {
		t.Errorf("check: exit %d, %q", code, stderr)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("check sent %d requests to the devices", n)
	}
}
