// Package emulate holds what the device emulators share: a registry for
// `powermeter emulate KIND`, switchable faults, and a load model clock.
//
// Every emulator is an http.Handler serving the device's real protocol. The
// faults that every device can show (offline, slow, HTML, truncated answers,
// plain error statuses) are applied by Faults.Wrap in front of it; faults
// that only make sense for one family (FRITZ!DECT "inval", a counter reset)
// are read by the emulator itself from Faults.Active.
//
// Faults are switched from Go (Faults.Set) or over HTTP:
//
//	POST /_emulator/fault?mode=offline      (mode= with no value clears it)
//	GET  /_emulator/fault                   the active mode
package emulate

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// Fault is a misbehaviour an emulator can be switched to.
type Fault string

const (
	None      Fault = ""
	Offline   Fault = "offline"   // the connection is closed without an answer
	Slow      Fault = "slow"      // answers after Faults.Delay (default 3 s)
	HTML      Fault = "html"      // answers 200 with an HTML page
	Truncated Fault = "truncated" // answers with the body cut in half
	Status401 Fault = "401"
	Status403 Fault = "403"
	Status500 Fault = "500"
	// Family-specific faults; the emulator itself applies them.
	Inval        Fault = "inval"         // FRITZ!DECT: device not present
	CounterReset Fault = "counter-reset" // energy counters restart from 0
	Stale        Fault = "stale"         // AhoyDTU/OpenDTU: data stops moving
	LostSync     Fault = "lost-sync"     // Tasmota SML: the read head lost the meter, reports 0
	Disconnected Fault = "disconnected"  // FRITZ!Box REST API: the unit is not connected
)

// Faults is the switch board of one emulator. The zero value is ready.
type Faults struct {
	mu     sync.Mutex
	active Fault
	// Delay is how long Slow waits (default 3 s).
	Delay time.Duration
}

// Set switches to f (None clears).
func (fs *Faults) Set(f Fault) {
	fs.mu.Lock()
	fs.active = f
	fs.mu.Unlock()
}

// Active is the current fault.
func (fs *Faults) Active() Fault {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.active
}

// Wrap applies the generic faults in front of h and serves the control
// endpoint /_emulator/fault.
func (fs *Faults) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/_emulator/fault" {
			fs.control(w, r)
			return
		}
		switch f := fs.Active(); f {
		case Offline:
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					c.Close()
					return
				}
			}
			panic(http.ErrAbortHandler)
		case Slow:
			d := fs.Delay
			if d == 0 {
				d = 3 * time.Second
			}
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return
			}
		case HTML:
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprint(w, "<!DOCTYPE html><html><head><title>Login</title></head><body><h1>Please log in</h1></body></html>\n")
			return
		case Truncated:
			tw := &truncWriter{ResponseWriter: w}
			h.ServeHTTP(tw, r)
			tw.flush()
			return
		case Status401, Status403, Status500:
			code := map[Fault]int{Status401: 401, Status403: 403, Status500: 500}[f]
			http.Error(w, http.StatusText(code), code)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (fs *Faults) control(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		fmt.Fprintln(w, string(fs.Active()))
	case http.MethodPost:
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fs.Set(Fault(r.Form.Get("mode")))
		fmt.Fprintln(w, "ok")
	default:
		http.Error(w, "GET or POST", http.StatusMethodNotAllowed)
	}
}

// truncWriter buffers the answer and writes only its first half.
type truncWriter struct {
	http.ResponseWriter
	buf  []byte
	code int
}

func (t *truncWriter) WriteHeader(code int)        { t.code = code }
func (t *truncWriter) Write(b []byte) (int, error) { t.buf = append(t.buf, b...); return len(b), nil }
func (t *truncWriter) flush() {
	if t.code == 0 {
		t.code = http.StatusOK
	}
	t.ResponseWriter.Header().Del("Content-Length")
	t.ResponseWriter.WriteHeader(t.code)
	t.ResponseWriter.Write(t.buf[:len(t.buf)/2])
}

// Options are the settings `powermeter emulate` passes to a constructor.
type Options struct {
	// Username and Password the emulated device demands ("" = no auth).
	Username, Password string
	// Profile selects the load the device measures: "solar", "fridge",
	// "house3" (3-phase house, one phase feeding in), "constant".
	Profile string
	// Now is the clock (default time.Now); tests pass a fake one.
	Now func() time.Time
	// Zone is the device's local zone (Shelly Gen1 and Tasmota report local time).
	Zone *time.Location
}

// Emulator is a device emulator: an HTTP handler plus its fault board.
type Emulator interface {
	http.Handler
	Faults() *Faults
}

// Constructor builds an emulator.
type Constructor func(Options) (Emulator, error)

var (
	mu    sync.RWMutex
	kinds = map[string]Constructor{}
)

// Register adds an emulator kind ("fritzbox", "shelly-gen1", …).
func Register(kind string, c Constructor) {
	mu.Lock()
	defer mu.Unlock()
	kinds[kind] = c
}

// Kinds lists the registered emulator kinds.
func Kinds() []string {
	mu.RLock()
	defer mu.RUnlock()
	out := make([]string, 0, len(kinds))
	for k := range kinds {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// New builds an emulator of kind.
func New(kind string, o Options) (Emulator, error) {
	mu.RLock()
	c, ok := kinds[kind]
	mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("unknown emulator %q (known: %s)", kind, strings.Join(Kinds(), ", "))
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Zone == nil {
		o.Zone = time.UTC
	}
	return c(o)
}
