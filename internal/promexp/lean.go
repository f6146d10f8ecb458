package promexp

import (
	"net/http"
	"time"
)

// Lean serves the logger's metrics without client_golang (the loggeronly
// build).
type Lean struct {
	lg     Statuser
	source string
	rounds *Hist
}

// NewLean builds the metrics of lg.
func NewLean(lg Statuser, source string) *Lean {
	return &Lean{lg: lg, source: source, rounds: NewHist(RoundBuckets)}
}

// ObserveRound records a round's duration (for logger.ObserveRounds).
func (l *Lean) ObserveRound(d time.Duration) { l.rounds.Observe(d) }

// Handler serves the metrics in Prometheus' text format.
func (l *Lean) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_ = WriteText(w, LoggerFamilies(l.lg.Status(), l.source, l.rounds))
	})
}
