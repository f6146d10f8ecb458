package emulate

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestBasicAuth(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if BasicAuth(w, r, "admin", "secret", "dev") {
			w.Write([]byte("ok"))
		}
	})
	srv := httptest.NewServer(h)
	defer srv.Close()
	for _, c := range []struct {
		user, pass string
		set        bool
		want       int
	}{
		{"admin", "secret", true, http.StatusOK},
		{"admin", "wrong", true, http.StatusUnauthorized},
		{"root", "secret", true, http.StatusUnauthorized},
		{"", "", false, http.StatusUnauthorized},
	} {
		r, err := http.NewRequest("GET", srv.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		if c.set {
			r.SetBasicAuth(c.user, c.pass)
		}
		w, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		w.Body.Close()
		if w.StatusCode != c.want {
			t.Errorf("%q/%q: status %d, want %d", c.user, c.pass, w.StatusCode, c.want)
		}
		if ch := w.Header.Get("WWW-Authenticate"); (c.want == http.StatusUnauthorized) != (ch == `Basic realm="dev"`) {
			t.Errorf("%q/%q: challenge %q", c.user, c.pass, ch)
		}
	}
}
