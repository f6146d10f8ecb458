package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

type demoBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (d *demoBuf) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.b.Write(p)
}

func (d *demoBuf) String() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.b.String()
}

func TestDemoServesReadingsAndCleansUp(t *testing.T) {
	// three days of history test the same code as fourteen, faster
	defer func(d int) { demoHistoryDays = d }(demoHistoryDays)
	demoHistoryDays = 3
	var out demoBuf
	env := &Env{Stdout: &out, Stderr: io.Discard, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), LookupEnv: func(string) (string, bool) { return "", false }}
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	commands["demo"].Flags(fs)
	if err := fs.Parse([]string{"--listen", "127.0.0.1:0"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- runDemo(ctx, env, fs) }()

	urlRE := regexp.MustCompile(`dashboard at (http://127\.0\.0\.1:\d+/)\n\s+data in (\S+)`)
	var base, dir string
	deadline := time.Now().Add(3 * time.Minute) // history first: seconds, longer under -race
	for base == "" {
		if m := urlRE.FindStringSubmatch(out.String()); m != nil {
			base, dir = m[1], m[2]
		} else if time.Now().After(deadline) {
			t.Fatalf("no dashboard address printed:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The first round comes at the next 10-s mark: wait for all three
	// devices in the server's store.
	deadline = time.Now().Add(time.Minute)
	for {
		var latest struct {
			Readings []struct {
				Device string `json:"device"`
			} `json:"readings"`
		}
		resp, err := http.Get(base + "api/v1/sources/demo/latest")
		if err == nil {
			json.NewDecoder(resp.Body).Decode(&latest)
			resp.Body.Close()
		}
		if len(latest.Readings) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("latest readings: %+v (err %v)", latest, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("data folder: %v", err)
	}
	checkDemoEnergy(t, base)
	checkDemoLive(t, base)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("demo did not stop")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("temporary folder %s left behind (%v)", dir, err)
	}
}

// checkDemoEnergy checks the demo's history adds up: every day's home
// consumption is import + production − export, the fridge is a share of
// it, and the example tariff gives savings.
func checkDemoEnergy(t *testing.T, base string) {
	t.Helper()
	from := time.Now().AddDate(0, 0, -demoHistoryDays).Format("2006-01-02")
	resp, err := http.Get(base + "api/v1/sources/demo/energy?step=day&from=" + from)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a struct {
		Rows []struct {
			Key        string             `json:"key"`
			Import     float64            `json:"import_wh"`
			Export     float64            `json:"export_wh"`
			Production float64            `json:"production_wh"`
			Home       *float64           `json:"home_wh"`
			Rest       *float64           `json:"rest_of_home_wh"`
			App        map[string]float64 `json:"appliance_wh"`
			Savings    float64            `json:"savings"`
			Cost       float64            `json:"cost"`
		} `json:"rows"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		t.Fatal(err)
	}
	if len(a.Rows) < demoHistoryDays {
		t.Fatalf("%d days of energy, want at least %d", len(a.Rows), demoHistoryDays)
	}
	for _, r := range a.Rows[1 : len(a.Rows)-1] { // whole days
		if r.Home == nil || r.Rest == nil {
			t.Fatalf("%s: no home consumption", r.Key)
		}
		if d := *r.Home - (r.Import + r.Production - r.Export); d > 0.01 || d < -0.01 {
			t.Errorf("%s: home %v ≠ import %v + production %v − export %v", r.Key, *r.Home, r.Import, r.Production, r.Export)
		}
		if f := r.App["fridge"]; f < 500 || f > 1500 || *r.Rest+f-*r.Home > 0.01 {
			t.Errorf("%s: fridge %v Wh, rest %v of home %v", r.Key, f, *r.Rest, *r.Home)
		}
		if r.Production <= 0 || r.Savings <= 0 || r.Cost <= 0 {
			t.Errorf("%s: production %v savings %v cost %v", r.Key, r.Production, r.Savings, r.Cost)
		}
	}
}

// checkDemoLive checks the moment adds up to the watt: the home the live
// page shows is grid + plant, which is the house's loads of the load
// models at the reading's instant (the Pro 3EM sees the house minus the
// plant); the fridge is a share of it.
func checkDemoLive(t *testing.T, base string) {
	t.Helper()
	zone, _ := time.LoadLocation("Europe/Berlin")
	for try := 0; ; try++ {
		var latest struct {
			Readings []struct {
				Device string    `json:"device"`
				Time   time.Time `json:"time"`
				Power  float64   `json:"power_w"`
			} `json:"readings"`
		}
		resp, err := http.Get(base + "api/v1/sources/demo/latest")
		if err != nil {
			t.Fatal(err)
		}
		json.NewDecoder(resp.Body).Decode(&latest)
		resp.Body.Close()
		page, err := http.Get(base + "s/demo")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(page.Body)
		page.Body.Close()
		p := map[string]float64{}
		var at time.Time
		for _, r := range latest.Readings {
			p[r.Device] = r.Power
			at = r.Time
		}
		// the house at that instant, from the load models
		solar, fridge, ph := demoHome(at, zone)
		house := ph[0] + ph[1] + ph[2] + solar
		if d := p["grid"] + p["balcony"] - house; d > 0.05 || d < -0.05 {
			t.Errorf("grid %v + plant %v = %v, the house drew %v", p["grid"], p["balcony"], p["grid"]+p["balcony"], house)
		}
		if d := p["fridge"] - fridge; d > 0.05 || d < -0.05 {
			t.Errorf("fridge %v, the model says %v", p["fridge"], fridge)
		}
		m := regexp.MustCompile(`data-flow="home">([0-9.,]+) W`).FindSubmatch(b)
		if m == nil {
			t.Fatalf("live page has no home flow:\n%.2000s", b)
		}
		shown, _ := strconv.ParseFloat(strings.ReplaceAll(string(m[1]), ",", ""), 64)
		want := p["grid"] + p["balcony"]
		if math.Abs(shown-want) <= 0.5 || (want < 100 && math.Abs(shown-want) <= 0.05) {
			return
		}
		if try >= 3 { // a new round may have come between the two requests
			t.Fatalf("live page shows home %v W, grid + plant = %v W", shown, want)
		}
		time.Sleep(time.Second)
	}
}
