package emulate

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

func berlin(t *testing.T) *time.Location {
	z, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	return z
}

func TestSolarFollowsTheSun(t *testing.T) {
	z := berlin(t)
	at := func(s string) float64 {
		ts, err := time.ParseInLocation("2006-01-02 15:04", s, z)
		if err != nil {
			t.Fatal(err)
		}
		return Solar(ts, z, 600)
	}
	if p := at("2026-06-21 02:00"); p != 0 {
		t.Errorf("June night: %v W", p)
	}
	if p := at("2026-12-21 07:30"); p != 0 {
		t.Errorf("December before sunrise: %v W", p)
	}
	if p := at("2026-06-21 13:00"); p < 450 || p > 600 {
		t.Errorf("June noon: %v W, want most of 600", p)
	}
	if p := at("2026-06-21 06:30"); p <= 0 {
		t.Errorf("June morning: %v W, want production", p)
	}
	if p := at("2026-12-21 10:00"); p <= 0 {
		t.Errorf("December morning: %v W, want production", p)
	}
}

func TestFridgeCycles(t *testing.T) {
	base := time.Unix(2400*1000000, 0)
	if p := Fridge(base); p != 300 {
		t.Errorf("start spike: %v", p)
	}
	if p := Fridge(base.Add(5 * time.Minute)); p < 80 || p > 90 {
		t.Errorf("running: %v", p)
	}
	if p := Fridge(base.Add(30 * time.Minute)); p > 5 {
		t.Errorf("idle: %v", p)
	}
}

func TestHouse3HasOnePhaseFeedingIn(t *testing.T) {
	z := berlin(t)
	noon := time.Date(2026, 6, 21, 11, 0, 0, 0, time.UTC)
	ph := House3(noon, z)
	if ph[0] <= 0 || ph[1] <= 0 || ph[2] >= 0 {
		t.Errorf("phases at noon = %v, want L1, L2 consuming and L3 feeding in", ph)
	}
}

func TestCounterOnlyGrows(t *testing.T) {
	c := NewCounter(100)
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	if v := c.At(t0, 1000); v != 100 {
		t.Errorf("first call: %v", v)
	}
	if v := c.At(t0.Add(time.Hour), 1000); v != 1100 {
		t.Errorf("after 1 h at 1 kW: %v, want 1100", v)
	}
	if v := c.At(t0.Add(2*time.Hour), -500); v != 1100 {
		t.Errorf("feed-in must not count: %v", v)
	}
	if v := c.At(t0.Add(90*time.Minute), 1000); v != 1100 {
		t.Errorf("time going back must not count: %v", v)
	}
	c.Reset()
	if v := c.At(t0.Add(3*time.Hour), 0); v != 0 {
		t.Errorf("after reset: %v", v)
	}
}

func TestFaults(t *testing.T) {
	var fs Faults
	fs.Delay = 10 * time.Millisecond
	srv := httptest.NewServer(fs.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"power":12.5,"total":1000}`)
	})))
	defer srv.Close()
	get := func() (int, string, error) {
		resp, err := http.Get(srv.URL + "/status")
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	set := func(mode Fault) {
		resp, err := http.PostForm(srv.URL+"/_emulator/fault", url.Values{"mode": {string(mode)}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if fs.Active() != mode {
			t.Fatalf("fault %q not switched on: %q", mode, fs.Active())
		}
	}
	if code, body, err := get(); err != nil || code != 200 || !strings.Contains(body, "power") {
		t.Fatalf("healthy: %d %q %v", code, body, err)
	}
	set(HTML)
	if _, body, _ := get(); !strings.Contains(body, "<html>") {
		t.Errorf("html fault: %q", body)
	}
	set(Truncated)
	if _, body, _ := get(); body != `{"power":12.5` {
		t.Errorf("truncated fault: %q", body)
	}
	set(Status403)
	if code, _, _ := get(); code != 403 {
		t.Errorf("403 fault: %d", code)
	}
	set(Slow)
	if code, _, _ := get(); code != 200 {
		t.Errorf("slow fault answers late but answers: %d", code)
	}
	set(Offline)
	if _, _, err := get(); err == nil {
		t.Error("offline fault answered")
	}
	set(None)
	if code, _, err := get(); err != nil || code != 200 {
		t.Errorf("cleared: %d %v", code, err)
	}
	if _, err := New("toaster", Options{}); err == nil {
		t.Error("unknown emulator kind accepted")
	}
}
