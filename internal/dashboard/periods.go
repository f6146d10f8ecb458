package dashboard

import (
	"context"
	"encoding/csv"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/powermeter/powermeter/internal/energy"
)

// periodData is what the month and year pages show.
type periodData struct {
	Key        string // YYYY-MM or YYYY
	Prev, Next string
	HasNext    bool
	Current    string // this month / year (the T key)
	Up         string // the year of a month
	Bars       chartBars
	Days       []energy.DaySummary // month page
	Months     []energy.Period     // year page
	Total      energy.Period
	HasProd    bool
	CSV        string
}

// periodCSV writes days or months as CSV: energies in kWh with 3
// decimals, times local.
func (d *Dashboard) periodCSV(w http.ResponseWriter, name string, header []string, rows [][]string) {
	h := w.Header()
	h.Set("Content-Type", "text/csv; charset=utf-8")
	h.Set("Content-Disposition", `attachment; filename="`+name+`"`)
	h.Set("X-Content-Type-Options", "nosniff")
	cw := csv.NewWriter(w)
	_ = cw.Write(header)
	_ = cw.WriteAll(rows)
}

// periodDays returns the summaries of from..to: all of them for a CSV
// download, else within the summary budget (p.Pending says how many are
// left to the background).
func (d *Dashboard) periodDays(ctx context.Context, source string, p *page, from, to string, full bool) ([]energy.DaySummary, error) {
	if full {
		return d.calc(source, p.Zone).Totals(ctx, from, to)
	}
	days, pending, err := d.totals(ctx, source, p, from, to)
	p.Pending = pending
	return days, err
}

func kwh3(wh float64) string { return strconv.FormatFloat(wh/1000, 'f', 3, 64) }

func (d *Dashboard) month(w http.ResponseWriter, r *http.Request) {
	source, p, ok := d.sourceFromPath(w, r)
	if !ok {
		return
	}
	key, isCSV := strings.CutSuffix(r.PathValue("month"), ".csv")
	if key == "current" {
		key = p.Today[:7]
	}
	first, err := time.Parse("2006-01", key)
	if err != nil || first.Year() < 2000 || first.Year() > 2200 {
		p.Status, p.Title, p.ErrorMsg = http.StatusBadRequest, p.T("error"), p.T("bad_month")
		d.render(w, r, "error", p)
		return
	}
	last := first.AddDate(0, 1, -1)
	ctx, cancel := context.WithTimeout(r.Context(), time.Minute)
	defer cancel()
	days, err := d.periodDays(ctx, source, p, first.Format("2006-01-02"), last.Format("2006-01-02"), isCSV)
	if err != nil {
		d.fail(w, r, p, http.StatusInternalServerError, "server_error", err)
		return
	}
	if isCSV {
		rows := make([][]string, 0, len(days))
		for _, s := range days {
			rows = append(rows, []string{s.Day, kwh3(s.InWh), kwh3(s.OutWh), kwh3(s.Flow.Production), strconv.FormatFloat(s.PeakW, 'f', 1, 64), p.Clock(s.PeakAt), hmOrEmpty(p, s.FirstProd), hmOrEmpty(p, s.LastProd)})
		}
		d.periodCSV(w, source+"-"+key+".csv", []string{"day", "consumption_kwh", "feed_in_kwh", "production_kwh", "peak_w", "peak_at", "first_production", "last_production"}, rows)
		return
	}
	data := periodData{Key: key, Days: days, Up: key[:4], Current: p.Today[:7],
		Prev: first.AddDate(0, -1, 0).Format("2006-01"), Next: first.AddDate(0, 1, 0).Format("2006-01"),
		CSV: p.Link("/s/", url.PathEscape(source), "/month/", key, ".csv")}
	data.HasNext = data.Next <= p.Today[:7]
	if ms := energy.Months(days); len(ms) == 1 {
		data.Total = ms[0]
	}
	data.Bars = dayBars(key, days, p, func(day string) string { return p.Link("/s/", url.PathEscape(source), "/day/", day) })
	data.HasProd = data.Bars.HasProd
	p.Title = source + " · " + p.MonthName(key)
	p.Nav = "month"
	p.Data = data
	d.render(w, r, "month", p)
}

func hmOrEmpty(p *page, t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return p.HM(t)
}

func (d *Dashboard) year(w http.ResponseWriter, r *http.Request) {
	source, p, ok := d.sourceFromPath(w, r)
	if !ok {
		return
	}
	key, isCSV := strings.CutSuffix(r.PathValue("year"), ".csv")
	if key == "current" {
		key = p.Today[:4]
	}
	y, err := strconv.Atoi(key)
	if err != nil || len(key) != 4 || y < 2000 || y > 2200 {
		p.Status, p.Title, p.ErrorMsg = http.StatusBadRequest, p.T("error"), p.T("bad_year")
		d.render(w, r, "error", p)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Minute)
	defer cancel()
	days, err := d.periodDays(ctx, source, p, key+"-01-01", key+"-12-31", isCSV)
	if err != nil {
		d.fail(w, r, p, http.StatusInternalServerError, "server_error", err)
		return
	}
	months := energy.Months(days)
	if isCSV {
		rows := make([][]string, 0, len(months))
		for _, m := range months {
			rows = append(rows, []string{m.Key, kwh3(m.InWh), kwh3(m.OutWh), kwh3(m.Flow.Production), strconv.FormatFloat(m.PeakW, 'f', 1, 64), p.Stamp(m.PeakAt), strconv.Itoa(m.Days)})
		}
		d.periodCSV(w, source+"-"+key+".csv", []string{"month", "consumption_kwh", "feed_in_kwh", "production_kwh", "peak_w", "peak_at", "days_with_data"}, rows)
		return
	}
	data := periodData{Key: key, Months: months, Current: p.Today[:4],
		Prev: strconv.Itoa(y - 1), Next: strconv.Itoa(y + 1),
		CSV: p.Link("/s/", url.PathEscape(source), "/year/", key, ".csv")}
	data.HasNext = data.Next <= p.Today[:4]
	if ys := energy.Years(days); len(ys) == 1 {
		data.Total = ys[0]
	}
	data.Bars = monthBars(key, months, p, func(m string) string { return p.Link("/s/", url.PathEscape(source), "/month/", m) })
	data.HasProd = data.Bars.HasProd
	p.Title = source + " · " + key
	p.Nav = "year"
	p.Data = data
	d.render(w, r, "year", p)
}
