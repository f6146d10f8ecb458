package dashboard

import (
	"html/template"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/powermeter/powermeter/internal/energy"
)

// chartBars is a bar chart of periods (days of a month, months of a year):
// consumption, feed-in and (with a pv device) production side by side, in
// kWh; each group links to its period.
type chartBars struct {
	SVG     template.HTML
	XLabels []axisLabel
	YLabels []axisLabel
	HasProd bool
}

var monthShort = [2][12]string{
	{"Jan", "Feb", "Mär", "Apr", "Mai", "Jun", "Jul", "Aug", "Sep", "Okt", "Nov", "Dez"},
	{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"},
}

// barGroup is one period of a bar chart.
type barGroup struct {
	Key   string // data-key (YYYY-MM-DD or YYYY-MM)
	Label string // x-axis label ("" for none)
	Title string // tooltip prefix
	Href  string // "" for none
	In    float64
	Out   float64
	Prod  float64
	Has   bool
}

// bars draws groups of up to three bars.
func bars(groups []barGroup, withProd bool, p *page) chartBars {
	c := chartBars{HasProd: withProd}
	if len(groups) == 0 {
		return c
	}
	top := 0.0
	for _, g := range groups {
		top = math.Max(top, math.Max(g.In, g.Out))
		if withProd {
			top = math.Max(top, g.Prod)
		}
	}
	top /= 1000
	if top <= 0 {
		top = 1
	}
	step := niceStep(top, 4)
	top = math.Ceil(top/step) * step
	const w, h = 1200.0, 300.0
	y := func(v float64) float64 { return h * (1 - v/top) }
	var b strings.Builder
	b.WriteString(`<svg class="bars-svg" viewBox="0 0 1200 300" preserveAspectRatio="none" role="img">`)
	for v := 0.0; v <= top+step/2; v += step {
		b.WriteString(`<line class="grid-p" x1="0" x2="1200" y1="` + f1(y(v)) + `" y2="` + f1(y(v)) + `"/>`)
		c.YLabels = append(c.YLabels, axisLabel{Pos: y(v) / h * 100, Text: p.num(v, stepDecimals(step)) + " kWh"})
	}
	gw := w / float64(len(groups))
	nb := 2.0
	if withProd {
		nb = 3
	}
	bw := gw * 0.8 / nb
	for i, g := range groups {
		x := float64(i) * gw
		if g.Has {
			if g.Href != "" {
				b.WriteString(`<a href="` + template.HTMLEscapeString(g.Href) + `">`)
			}
			b.WriteString(`<g class="grp" data-key="` + template.HTMLEscapeString(g.Key) + `"><rect class="hit" x="` + f1(x) + `" width="` + f1(gw) + `" y="0" height="300"/>`)
			vals := []struct {
				cls, title string
				v          float64
			}{{"bar-in", p.T("energy_in"), g.In}, {"bar-out", p.T("energy_out"), g.Out}}
			if withProd {
				vals = append(vals, struct {
					cls, title string
					v          float64
				}{"bar-prod", p.T("production"), g.Prod})
			}
			for j, bv := range vals {
				v := bv.v / 1000
				b.WriteString(`<rect class="` + bv.cls + `" data-wh="` + strconv.FormatFloat(bv.v, 'f', -1, 64) + `" x="` + f1(x+gw*0.1+float64(j)*bw) + `" width="` + f1(bw*0.92) + `" y="` + f1(y(v)) + `" height="` + f1(h-y(v)) + `"><title>`)
				b.WriteString(template.HTMLEscapeString(g.Title + ": " + bv.title + " " + p.num(v, 2) + " kWh"))
				b.WriteString(`</title></rect>`)
			}
			b.WriteString(`</g>`)
			if g.Href != "" {
				b.WriteString(`</a>`)
			}
		}
		if g.Label != "" {
			c.XLabels = append(c.XLabels, axisLabel{Pos: (x + gw/2) / w * 100, Text: g.Label})
		}
	}
	b.WriteString(`</svg>`)
	c.SVG = template.HTML(b.String())
	return c
}

// monthBars is the bar chart of a year's months; link makes a month's
// address ("" for none).
func monthBars(year string, months []energy.Period, p *page, link ...func(key string) string) chartBars {
	li := 1
	if p.lang == langDE {
		li = 0
	}
	groups := make([]barGroup, 12)
	withProd := false
	for i := range groups {
		key := year + "-" + twoDigits(i+1)
		groups[i] = barGroup{Key: key, Label: monthShort[li][i], Title: monthShort[li][i] + " " + year}
		if len(link) > 0 {
			groups[i].Href = link[0](key)
		}
	}
	if len(months) == 0 {
		return chartBars{}
	}
	for _, m := range months {
		if len(m.Key) != 7 || m.Key[:4] != year {
			continue
		}
		i, err := strconv.Atoi(m.Key[5:])
		if err != nil || i < 1 || i > 12 {
			continue
		}
		g := &groups[i-1]
		g.In, g.Out, g.Prod, g.Has = m.InWh, m.OutWh, m.Flow.Production, true
		withProd = withProd || m.Flow.Production > 0
	}
	return bars(groups, withProd, p)
}

// dayBars is the bar chart of a month's days (every day of the month, the
// ones without readings empty).
func dayBars(month string, days []energy.DaySummary, p *page, link func(day string) string) chartBars {
	first, err := time.Parse("2006-01", month)
	if err != nil {
		return chartBars{}
	}
	n := first.AddDate(0, 1, -1).Day()
	groups := make([]barGroup, n)
	for i := range groups {
		day := first.AddDate(0, 0, i).Format("2006-01-02")
		label := ""
		if i == 0 || (i+1)%5 == 0 {
			label = strconv.Itoa(i + 1)
		}
		groups[i] = barGroup{Key: day, Label: label, Title: p.ShortDate(day), Href: link(day)}
	}
	withProd := false
	for _, s := range days {
		t, err := time.Parse("2006-01-02", s.Day)
		if err != nil || t.Format("2006-01") != month {
			continue
		}
		g := &groups[t.Day()-1]
		g.In, g.Out, g.Prod, g.Has = s.InWh, s.OutWh, s.Flow.Production, true
		withProd = withProd || s.Flow.Production > 0
	}
	if len(days) == 0 {
		return chartBars{}
	}
	return bars(groups, withProd, p)
}

func twoDigits(i int) string {
	if i < 10 {
		return "0" + strconv.Itoa(i)
	}
	return strconv.Itoa(i)
}
