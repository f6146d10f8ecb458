package dashboard

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/powermeter/powermeter/internal/energy"
)

// bandRow is one line of the power band table: time and energy above Step.
type bandRow struct {
	Step    float64
	Seconds float64
	Wh      float64
	Pct     float64 // share of the first row's time, for the bar
}

// bandRows lists time and energy above each step. The day keeps 50 W
// bands; the table shows 50 W steps while that gives at most maxBandRows
// lines, else wider steps (100, 250, 500 W …).
func bandRows(bands []energy.Band) []bandRow {
	above := energy.Above(bands)
	last := -1
	for i, b := range above {
		if b.Seconds >= 0.5 {
			last = i
		}
	}
	if last < 0 {
		return nil
	}
	every := 1
	for _, k := range []int{1, 2, 5, 10, 20, 40, 100} {
		every = k
		if last/k+1 <= maxBandRows {
			break
		}
	}
	var rows []bandRow
	for i := 0; i <= last; i += every {
		b := above[i]
		rows = append(rows, bandRow{Step: float64(i) * energy.BandWidth, Seconds: b.Seconds, Wh: b.Wh})
	}
	for i := range rows {
		rows[i].Pct = 100 * rows[i].Seconds / rows[0].Seconds
	}
	return rows
}

const maxBandRows = 16

func shiftDay(day string, n int) string {
	t, err := time.Parse("2006-01-02", day)
	if err != nil {
		return day
	}
	return t.AddDate(0, 0, n).Format("2006-01-02")
}

// validDay accepts a real YYYY-MM-DD within the years readings may have.
func validDay(s string) bool {
	t, err := time.Parse("2006-01-02", s)
	return err == nil && t.Year() >= 2000 && t.Year() <= 2200
}

// dayRedirect answers the date picker (a GET form) with the day's address.
func (d *Dashboard) dayRedirect(w http.ResponseWriter, r *http.Request) {
	source, p, ok := d.sourceFromPath(w, r)
	if !ok {
		return
	}
	day := r.URL.Query().Get("date")
	if day == "" {
		day = p.Today
	}
	if !validDay(day) {
		d.fail(w, r, p, http.StatusBadRequest, "bad_date", nil)
		return
	}
	http.Redirect(w, r, p.Link("/s/", url.PathEscape(source), "/day/", day), http.StatusSeeOther)
}

type overviewData struct {
	Years      []energy.Period
	Year       string
	Months     []energy.Period // of Year
	YearTotal  energy.Period
	Month      string
	Days       []energy.DaySummary // of Month
	MonthTotal energy.Period
	All        energy.Period
	MonthBars  chartBars
	ExportFrom string
	ExportTo   string
	Home       *homeView // a home with roles: flows and money
}

func (d *Dashboard) overview(w http.ResponseWriter, r *http.Request) {
	source, p, ok := d.sourceFromPath(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Minute)
	defer cancel()
	days, pending, err := d.totals(ctx, source, p, "2000-01-01", "2200-12-31")
	p.Pending = pending
	if err != nil {
		d.fail(w, r, p, http.StatusInternalServerError, "server_error", err)
		return
	}
	data := overviewData{Years: energy.Years(days), All: energy.Sum(days), ExportFrom: shiftDay(p.Today, -6), ExportTo: p.Today}
	q := r.URL.Query()
	month, year := q.Get("month"), q.Get("year")
	if len(days) > 0 {
		lastDay := days[len(days)-1].Day
		if month == "" || len(month) != 7 {
			if len(year) == 4 && year != lastDay[:4] {
				month = year + "-01"
				// the year's last month with readings
				for _, s := range days {
					if s.Day[:4] == year {
						month = s.Day[:7]
					}
				}
			} else {
				month = lastDay[:7]
			}
		}
		if len(year) != 4 {
			year = month[:4]
		}
	}
	data.Year, data.Month = year, month
	var inYear []energy.DaySummary
	for _, s := range days {
		if s.Day[:4] == year {
			inYear = append(inYear, s)
		}
		if s.Day[:7] == month {
			data.Days = append(data.Days, s)
		}
	}
	data.Months = energy.Months(inYear)
	if ys := energy.Years(inYear); len(ys) == 1 {
		data.YearTotal = ys[0]
	}
	if ms := energy.Months(data.Days); len(ms) == 1 {
		data.MonthTotal = ms[0]
	}
	data.MonthBars = monthBars(data.Year, data.Months, p)
	data.Home = d.homeOverview(ctx, source, p.Zone, days, year, month)
	p.Title = source + " · " + p.T("overview")
	p.Nav = "overview"
	p.Data = data
	d.render(w, r, "overview", p)
}
