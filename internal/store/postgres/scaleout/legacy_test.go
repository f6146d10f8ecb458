package scaleout_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/store/postgres/pgtest"
)

// TestLegacyFailoverAutumn sends a logger's legacy lines to two servers on
// one database across the night the clock goes back: B saw the source before
// the doubled hour, A takes the first pass, B the second (a failover). B must
// store the second pass (not answer "already stored" from its stale memory),
// and the dashboard of either server shows every reading.
func TestLegacyFailoverAutumn(t *testing.T) {
	u := pgtest.URL(t)
	a := startServer(t, u)
	b := startServer(t, u)
	client := &http.Client{Timeout: 30 * time.Second}
	get := func(base, path string) (int, string) {
		t.Helper()
		resp, err := client.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		return resp.StatusCode, string(body)
	}
	send := func(base, name, line, buffer, want string) {
		t.Helper()
		form := url.Values{"key": {"home-key-0001"}, "stats": {line}}
		if buffer != "" {
			form.Set("buffer", buffer)
		}
		resp, err := client.PostForm(base+"/log.php", form)
		if err != nil {
			t.Fatalf("%s %s: %v", name, line, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != want {
			t.Fatalf("%s %s: %d %q, want %q", name, line, resp.StatusCode, body, want)
		}
	}
	send(b, "B", "25.10.2026,01:55:00,1.00,20.5", "", "stored\n")
	for _, l := range []string{"25.10.2026,02:00:00,2.00,20.5", "25.10.2026,02:30:00,3.00,20.5", "25.10.2026,02:59:00,4.00,20.5"} {
		send(a, "A", l, "", "stored\n")
	}
	// a retry of the first pass reaches B (whose memory still says 01:55)
	send(b, "B", "25.10.2026,02:30:00,3.00,20.5", "1", "already stored\n")
	for _, l := range []string{"25.10.2026,02:00:00,20.00,20.5", "25.10.2026,02:30:00,30.00,20.5"} {
		send(b, "B", l, "", "stored\n")
	}
	// back to A, whose memory says 02:59 CEST
	send(a, "A", "25.10.2026,02:30:00,30.00,20.5", "1", "already stored\n")
	send(a, "A", "25.10.2026,03:10:00,40.00,20.5", "", "stored\n")

	want := "time,device,power_w,energy_in_wh,energy_out_wh,temperature_c,voltage_v,phases_w\n" +
		"2026-10-24T23:55:00Z,legacy,1,,,20.5,,\n" +
		"2026-10-25T00:00:00Z,legacy,2,,,20.5,,\n" +
		"2026-10-25T00:30:00Z,legacy,3,,,20.5,,\n" +
		"2026-10-25T00:59:00Z,legacy,4,,,20.5,,\n" +
		"2026-10-25T01:00:00Z,legacy,20,,,20.5,,\n" +
		"2026-10-25T01:30:00Z,legacy,30,,,20.5,,\n" +
		"2026-10-25T02:10:00Z,legacy,40,,,20.5,,\n"
	for name, base := range map[string]string{"A": a, "B": b} {
		code, body := get(base, "/s/home/export.csv?from=2026-10-24T23:00:00Z&to=2026-10-25T03:00:00Z&format=utc")
		if code != 200 || body != want {
			t.Errorf("dashboard export of server %s: %d\n%s\nwant:\n%s", name, code, body, want)
		}
		// the day page and the home page count all 7
		for _, path := range []string{"/s/home/day/2026-10-25", "/"} {
			code, body = get(base, path)
			if code != 200 || !strings.Contains(body, ">7 readings<") && !strings.Contains(body, ">7 Messwerte<") {
				t.Errorf("%s of server %s: %d, does not count 7 readings:\n%s", path, name, code, body)
			}
		}
	}
}
