// Package server is powermeter's HTTP server: the legacy log.php receiver,
// the native JSON ingest API, the read API, health and metrics, and the
// dashboard when it is built in.
package server

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/dashboard"
	"github.com/powermeter/powermeter/internal/energy"
	"github.com/powermeter/powermeter/internal/household"
	"github.com/powermeter/powermeter/internal/promexp/promreg"
	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/server/ingest"
	"github.com/powermeter/powermeter/internal/store"
)

// MaxBatch is the most readings one native request may carry.
const MaxBatch = 10000

// Timeouts of the HTTP server.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 60 * time.Second
	writeTimeout      = 60 * time.Second
	idleTimeout       = 120 * time.Second
	// streamTimeout is the write deadline of a streamed read-API answer.
	streamTimeout = 30 * time.Minute
	// insertTimeout bounds one store insert of a request.
	insertTimeout = 30 * time.Second
	// shutdownTimeout is how long in-flight requests get to finish.
	shutdownTimeout = 30 * time.Second
)

// Server serves ingest, the read API and operations endpoints.
type Server struct {
	cfg   *config.Config
	st    store.Store
	log   *slog.Logger
	keys  *keyring
	lim   *limiter
	read  *readAccess
	met   *metrics
	res   *ingest.Resolver
	dash  *dashboard.Dashboard
	zones map[string]*time.Location
	days  *energy.Cache // decoded day summaries, shared with the dashboard
	// fields are the field maps of sources whose legacy lines do not mean
	// power, temperature, powers
	fields map[string]household.FieldMap

	maxBody   int64
	maxBatch  int
	maxFuture time.Duration
	now       func() time.Time
	errs      *errLimiter
	good      *goodCreds
	proxies   proxies
	// metricsToken is the SHA-256 of [server] metrics_token (nil: none).
	metricsToken []byte
	handler      http.Handler
	// retention is the [server.retention] job (nil: none), run by Serve
	retention *Retention
}

// New builds a server for the [server] section of cfg on store st and
// registers the configured sources in the store (EnsureSource with their
// zones).
func New(ctx context.Context, cfg *config.Config, st store.Store, log *slog.Logger) (*Server, error) {
	if cfg.Server == nil {
		return nil, &config.Error{File: cfg.Path, Key: "server", Msg: "missing: the [server] section is needed to serve"}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:       cfg,
		st:        st,
		log:       log,
		keys:      newKeyring(cfg.Server.Sources),
		lim:       newLimiter(),
		met:       newMetrics(),
		res:       ingest.NewResolver(st),
		zones:     map[string]*time.Location{},
		days:      energy.NewCache(50000),
		maxBody:   cfg.Server.MaxBodyBytes,
		maxBatch:  MaxBatch,
		maxFuture: cfg.Server.MaxFuture.Duration,
		now:       time.Now,
	}
	s.errs = newErrLimiter(log, func() time.Time { return s.now() })
	s.good = newGoodCreds(func() time.Time { return s.lim.now() }, len(cfg.Server.Sources))
	s.proxies = newProxies(cfg.Server.TrustedProxies)
	if s.maxBody <= 0 {
		s.maxBody = 4 << 20
	}
	s.read = newReadAccess(cfg.Server, s.keys)
	if t := cfg.Server.MetricsToken; t != "" {
		d := sha256.Sum256([]byte(t))
		s.metricsToken = d[:]
	}
	specs := make([]store.SourceSpec, 0, len(cfg.Server.Sources))
	names := make([]string, 0, len(cfg.Server.Sources))
	for _, src := range cfg.Server.Sources {
		zone := src.Timezone.Location
		if zone == nil {
			zone = cfg.Timezone.Location
		}
		if zone == nil {
			zone = time.UTC
		}
		s.zones[src.Name] = zone
		if f := config.SourceFields(src); !f.IsDefault() {
			if s.fields == nil {
				s.fields = map[string]household.FieldMap{}
			}
			s.fields[src.Name] = f
		}
		names = append(names, src.Name)
		specs = append(specs, store.SourceSpec{Name: src.Name, Timezone: zone.String()})
	}
	s.met.prepareIngest(names)
	if err := store.EnsureSources(ctx, st, specs); err != nil {
		return nil, fmt.Errorf("registering the sources in the store: %w", err)
	}
	if lt, ok := st.(store.LastTimer); ok {
		// Otherwise each source's first line asks the store on its own.
		if last, err := lt.LastTimes(ctx, names); err != nil {
			log.Warn("reading the sources' last times at start-up (each source's first line reads its own)", "err", err)
		} else {
			s.res.Prime(names, last)
		}
	}
	if s.retention = NewRetention(cfg, st, log); s.retention != nil {
		s.retention.register(s.met.reg)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/readings", s.native)
	mux.HandleFunc("GET /api/v1/sources", s.apiSources)
	mux.HandleFunc("GET /api/v1/sources/{name}/latest", s.apiLatest)
	mux.HandleFunc("GET /api/v1/sources/{name}/readings", s.apiReadings)
	mux.HandleFunc("GET /api/v1/sources/{name}/energy", s.apiEnergy)
	mux.HandleFunc("GET /healthz", s.healthz)
	if cfg.Server.Metrics {
		s.met.reg.MustRegister(promreg.NewReadings(s.latestAll, log))
		mh := s.met.handler()
		mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
			if s.metricsGrant(w, r) {
				mh.ServeHTTP(w, r)
			}
		})
	}
	if err := s.mountDashboard(mux); err != nil {
		return nil, err
	}
	s.handler = s.observe(s.routeLegacy(mux))
	return s, nil
}

// mountDashboard adds the web pages (/, /s/{source}…, /static/…) to mux,
// with the same access settings ([server.dashboard]) as the read API.
func (s *Server) mountDashboard(mux *http.ServeMux) error {
	d, err := dashboard.New(s.st, dashboard.Options{
		Sources:   s.cfg.Server.Sources,
		Users:     s.cfg.Server.Dashboard.Users,
		ReadToken: s.cfg.Server.Dashboard.ReadToken,
		Interval:  s.cfg.Logger.Interval.Duration,
		Zone:      s.cfg.Timezone.Location,
		Log:       s.log,
		Guard:     dashGuard{s},
		Cache:     s.days,
		Home:      s.cfg.Home,
		Tariff:    s.cfg.TariffOf,
		Fields:    s.cfg.Fields,
	})
	if err != nil {
		return fmt.Errorf("dashboard: %w", err)
	}
	d.Register(mux)
	s.dash = d
	return nil
}

// Handler is the server's whole HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// ListenAndServe listens on [server] listen and serves until ctx ends.
func (s *Server) ListenAndServe(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Server.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", s.cfg.Server.Listen, err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx ends, then shuts down gracefully: it stops
// accepting, lets in-flight requests (and their writes) finish for up to
// 30 s, and returns nil.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	// Request contexts end when shutdown begins, so long-lived answers
	// (live pages, big downloads) stop; ingest handlers store with a
	// context of their own, so a write in flight still finishes.
	reqCtx, endRequests := context.WithCancel(context.WithoutCancel(ctx))
	defer endRequests()
	hs := &http.Server{
		Handler:           s.handler,
		BaseContext:       func(net.Listener) context.Context { return reqCtx },
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	// The retention job runs beside serving and stops with it (a slice in
	// flight is rolled back; the next start goes on from the last one).
	jobCtx, endJobs := context.WithCancel(ctx)
	defer endJobs()
	jobsDone := make(chan struct{})
	go func() {
		defer close(jobsDone)
		if s.retention != nil {
			s.retention.Run(jobCtx)
		}
	}()
	defer func() { endJobs(); <-jobsDone }()
	s.warnIfOpen(ln.Addr())
	s.log.Info("serving", "addr", ln.Addr().String(), "sources", len(s.cfg.Server.Sources))
	select {
	case err := <-errc:
		return fmt.Errorf("serving on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	s.log.Info("shutting down: finishing in-flight requests")
	endRequests()
	if s.dash != nil {
		s.dash.Close() // ends live streams, also on handlers served elsewhere
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	err := hs.Shutdown(sctx)
	if err != nil {
		hs.Close() // out of patience: drop what is left
	}
	if e := <-errc; e != nil && !errors.Is(e, http.ErrServerClosed) && err == nil {
		err = e
	}
	if err != nil {
		return fmt.Errorf("shutting down: %w", err)
	}
	s.log.Info("stopped")
	return nil
}

// zone is the time zone of a source: from the config, else as the store
// has it registered.
func (s *Server) zone(ctx context.Context, source string) (*time.Location, error) {
	if z, ok := s.zones[source]; ok {
		return z, nil
	}
	infos, err := s.st.Sources(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing sources: %w", err)
	}
	for _, in := range infos {
		if in.Name == source {
			if z, err := time.LoadLocation(in.Timezone); err == nil && in.Timezone != "" {
				return z, nil
			}
			return s.cfg.Timezone.Location, nil
		}
	}
	return nil, store.ErrUnknownSource
}

// routeLegacy sends any path ending in /log.php to the legacy receiver
// (the original logger's base URL may carry folders), the rest to mux.
func (s *Server) routeLegacy(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/log.php") {
			r.Pattern = "legacy"
			s.legacy(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// recorder remembers the status and size of an answer.
type recorder struct {
	http.ResponseWriter
	code  int
	bytes int64
}

func (rw *recorder) WriteHeader(code int) {
	if rw.code == 0 {
		rw.code = code
	}
	rw.ResponseWriter.WriteHeader(code)
}

func (rw *recorder) Write(b []byte) (int, error) {
	if rw.code == 0 {
		rw.code = http.StatusOK
	}
	n, err := rw.ResponseWriter.Write(b)
	rw.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach Flush and deadlines.
func (rw *recorder) Unwrap() http.ResponseWriter { return rw.ResponseWriter }

// observe logs each request (path only: the query may hold a key) and
// records its latency. Successes are logged at debug level (a logger sends
// every 10 s), refusals at info, server errors as errors.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rw := &recorder{ResponseWriter: w}
		next.ServeHTTP(rw, r)
		if rw.code == 0 {
			rw.code = http.StatusOK
		}
		d := time.Since(start)
		route := r.Pattern
		if route == "" {
			route = "other"
		}
		s.met.observeLatency(route, rw.code, d.Seconds())
		level := slog.LevelDebug
		switch {
		case rw.code >= 500:
			level = slog.LevelError
		case rw.code >= 400:
			level = slog.LevelInfo
		}
		if !s.log.Enabled(r.Context(), level) {
			return
		}
		attrs := []slog.Attr{slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.Int("status", rw.code), slog.Int64("bytes", rw.bytes),
			slog.Duration("took", d), slog.String("remote", s.clientAddr(r))}
		if level == slog.LevelError {
			// a failing store fails every request: one line per 10 s
			ok, n := s.errs.allow("request " + route + " " + strconv.Itoa(rw.code))
			if !ok {
				return
			}
			if n > 0 {
				attrs = append(attrs, slog.Int("repeated", n))
			}
		}
		s.log.LogAttrs(r.Context(), level, "request", attrs...)
	})
}

// textError answers with a one-line plain-text reason.
func textError(w http.ResponseWriter, code int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	fmt.Fprintln(w, strings.ReplaceAll(msg, "\n", " "))
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if err := s.ping(ctx); err != nil {
		s.storeErr("health check: store unreachable", err)
		textError(w, http.StatusServiceUnavailable, "store unreachable")
		return
	}
	if err := s.readCheck(ctx); err != nil {
		s.storeErr("health check: the store fails reads", err)
		textError(w, http.StatusServiceUnavailable, "store fails reads")
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "ok")
}

// ping checks that the store answers: with its own Ping when it has one,
// else with a cheap query.
func (s *Server) ping(ctx context.Context) error {
	if p, ok := s.st.(interface{ Ping(context.Context) error }); ok {
		return p.Ping(ctx)
	}
	_, _, err := s.st.LastTime(ctx, "\x00healthz")
	if errors.Is(err, store.ErrUnknownSource) {
		return nil
	}
	return err
}

// readCheck reads from the store what the pages read first: the newest
// reading of the first configured source and its last minute of readings.
func (s *Server) readCheck(ctx context.Context) error {
	if len(s.cfg.Server.Sources) == 0 {
		return nil
	}
	src := s.cfg.Server.Sources[0].Name
	t, ok, err := s.st.LastTime(ctx, src)
	if err != nil {
		if errors.Is(err, store.ErrUnknownSource) {
			return nil
		}
		return fmt.Errorf("reading the last time of %s: %w", src, err)
	}
	if !ok {
		return nil
	}
	if err := s.st.Range(ctx, src, t.Add(-time.Minute), t.Add(time.Second), func(reading.Reading) error { return nil }); err != nil {
		return fmt.Errorf("reading the last minute of %s: %w", src, err)
	}
	return nil
}
