// Package uplinktest has a receiver that behaves like the PHP powermeter's
// log.php, for tests of the legacy uplink.
package uplinktest

import (
	"net/http"
	"regexp"
	"sync"

	"github.com/powermeter/powermeter/internal/legacy"
)

// Line is one line the receiver accepted.
type Line struct {
	Stats    string
	Method   string
	Buffer   bool   // sent with buffer=1 (a replay)
	RawQuery string // the query as it came (GET)
	Parsed   legacy.Line
}

// PHP answers like log.php: always 200 with an empty body; it takes a line
// only with the right key, when it matches the PHP pattern and every field
// passes (legacy.Parse), and not when it repeats the last accepted line.
// Down makes it fail instead.
type PHP struct {
	Key string

	mu       sync.Mutex
	lines    []Line
	rejected []string
	dups     int
	current  string
	down     int
	requests int
}

var statsRE = regexp.MustCompile(`[0-9]{2}\.[0-9]{2}\.[0-9]{4},[0-9]{2}:[0-9]{2}:[0-9]{2},[\-0-9]{1,6}(\.[0-9]{1,3})?`)

// SetDown makes the receiver answer with status code (0: work again; -1:
// close the connection without an answer).
func (p *PHP) SetDown(code int) {
	p.mu.Lock()
	p.down = code
	p.mu.Unlock()
}

// ServeHTTP implements http.Handler.
func (p *PHP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.requests++
	down := p.down
	p.mu.Unlock()
	switch {
	case down < 0:
		panic(http.ErrAbortHandler)
	case down > 0:
		http.Error(w, "down", down)
		return
	}
	if r.URL.Path != "/log.php" && !endsWith(r.URL.Path, "/log.php") {
		http.NotFound(w, r)
		return
	}
	if err := r.ParseForm(); err != nil {
		w.WriteHeader(http.StatusOK)
		return
	}
	var stats, key string
	if r.Method == http.MethodPost {
		stats, key = r.PostForm.Get("stats"), r.PostForm.Get("key")
	} else {
		stats, key = r.URL.Query().Get("stats"), r.URL.Query().Get("key")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	defer w.WriteHeader(http.StatusOK)
	if key != p.Key {
		p.rejected = append(p.rejected, stats)
		return
	}
	if r.Method != http.MethodPost && !statsRE.MatchString(stats) {
		p.rejected = append(p.rejected, stats)
		return
	}
	parsed, err := legacy.Parse(stats)
	if err != nil {
		p.rejected = append(p.rejected, stats)
		return
	}
	if len(p.lines) > 0 && p.lines[len(p.lines)-1].Stats == stats {
		p.dups++
		return
	}
	buffer := r.PostForm.Get("buffer") == "1"
	p.lines = append(p.lines, Line{Stats: stats, Method: r.Method, Buffer: buffer, RawQuery: r.URL.RawQuery, Parsed: parsed})
	if !buffer {
		p.current = stats
	}
}

func endsWith(s, suffix string) bool {
	return len(s) >= len(suffix) && s[len(s)-len(suffix):] == suffix
}

// Lines returns the accepted lines in order.
func (p *PHP) Lines() []Line {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Line(nil), p.lines...)
}

// Rejected returns the refused stats values.
func (p *PHP) Rejected() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.rejected...)
}

// Current is what stats.txt would hold: the last line not sent as a replay.
func (p *PHP) Current() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.current
}

// Duplicates counts lines ignored as a repeat of the last one.
func (p *PHP) Duplicates() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dups
}

// Requests counts every request, failed ones included.
func (p *PHP) Requests() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.requests
}
