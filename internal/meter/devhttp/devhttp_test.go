package devhttp

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/meter"
)

func TestAnswers(t *testing.T) {
	for _, c := range []struct {
		name   string
		code   int
		body   string
		kind   meter.Kind
		inMsg  string
		wantOK bool
	}{
		{"ok", 200, ` {"a": 1} `, 0, "", true},
		{"401", 401, "", meter.Auth, `refused access for user "u" (HTTP 401); see the manual`, false},
		{"403", 403, "", meter.Auth, "HTTP 403", false},
		{"404", 404, "", meter.BadAnswer, "404 Not Found for /x?password=xxxxx&q=1: is this really a Gadget", false},
		{"429", 429, "", meter.Busy, "back off", false},
		{"500", 500, "", meter.BadAnswer, "HTTP 500 Internal Server Error", false},
		{"html", 200, "\n<!DOCTYPE html><html></html>", meter.BadAnswer, "answered HTML, not JSON", false},
		{"empty", 200, "  ", meter.BadAnswer, "empty body", false},
		{"truncated", 200, `{"a": [1, 2`, meter.BadAnswer, "broken or truncated JSON", false},
		{"shape", 200, `{"a": "text"}`, meter.BadAnswer, "unexpected shape", false},
		{"huge", 200, `{"a": 1, "pad": "` + strings.Repeat("x", MaxBody) + `"}`, meter.BadAnswer, "larger than", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if u, p, ok := r.BasicAuth(); !ok || u != "u" || p != "secret" {
					t.Errorf("basic auth %q %q %v", u, p, ok)
				}
				w.WriteHeader(c.code)
				w.Write([]byte(c.body))
			}))
			defer srv.Close()
			cl, err := New(config.Meter{URL: srv.URL + "/", Username: "u", Password: "secret"}, "Gadget")
			if err != nil {
				t.Fatal(err)
			}
			cl.BasicAuth, cl.AuthHint = true, "see the manual"
			var v struct{ A int }
			err = cl.GetJSON(context.Background(), "/x?q=1&password=secret", &v)
			if c.wantOK {
				if err != nil || v.A != 1 {
					t.Fatalf("GetJSON = %v, %+v", err, v)
				}
				return
			}
			if meter.KindOf(err) != c.kind || !strings.Contains(err.Error(), c.inMsg) {
				t.Errorf("error %v (kind %v), want kind %v with %q", err, meter.KindOf(err), c.kind, c.inMsg)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
}

func TestTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	cl, err := New(config.Meter{URL: srv.URL, Timeout: config.Duration{Duration: 100 * time.Millisecond}}, "Gadget")
	if err != nil {
		t.Fatal(err)
	}
	err = cl.GetJSON(context.Background(), "/", &struct{}{})
	if meter.KindOf(err) != meter.Unreachable || !strings.Contains(err.Error(), "did not answer within 100ms") {
		t.Errorf("error %v", err)
	}
}
