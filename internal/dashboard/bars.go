package dashboard

import (
	"html/template"
	"math"
	"strconv"
	"strings"

	"github.com/powermeter/powermeter/internal/energy"
)

// chartBars is a bar chart of a year's months: consumption and feed-in side
// by side, in kWh.
type chartBars struct {
	SVG     template.HTML
	XLabels []axisLabel
	YLabels []axisLabel
}

var monthShort = [2][12]string{
	{"Jan", "Feb", "Mär", "Apr", "Mai", "Jun", "Jul", "Aug", "Sep", "Okt", "Nov", "Dez"},
	{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"},
}

func monthBars(year string, months []energy.Period, p *page) chartBars {
	var c chartBars
	if len(months) == 0 {
		return c
	}
	var in, out [12]float64
	top := 0.0
	for _, m := range months {
		if len(m.Key) != 7 || m.Key[:4] != year {
			continue
		}
		i, err := strconv.Atoi(m.Key[5:])
		if err != nil || i < 1 || i > 12 {
			continue
		}
		in[i-1], out[i-1] = m.InWh/1000, m.OutWh/1000
		top = math.Max(top, math.Max(in[i-1], out[i-1]))
	}
	if top <= 0 {
		top = 1
	}
	step := niceStep(top, 4)
	top = math.Ceil(top/step) * step
	const w, h = 1200.0, 300.0
	y := func(v float64) float64 { return h * (1 - v/top) }
	li := 1
	if p.lang == langDE {
		li = 0
	}
	var b strings.Builder
	b.WriteString(`<svg class="bars-svg" viewBox="0 0 1200 300" preserveAspectRatio="none" role="img">`)
	for v := 0.0; v <= top+step/2; v += step {
		b.WriteString(`<line class="grid-p" x1="0" x2="1200" y1="` + f1(y(v)) + `" y2="` + f1(y(v)) + `"/>`)
		c.YLabels = append(c.YLabels, axisLabel{Pos: y(v) / h * 100, Text: p.num(v, stepDecimals(step)) + " kWh"})
	}
	for i := 0; i < 12; i++ {
		x := float64(i) * w / 12
		for j, v := range []float64{in[i], out[i]} {
			if v <= 0 {
				continue
			}
			cls, title := "bar-in", p.T("energy_in")
			if j == 1 {
				cls, title = "bar-out", p.T("energy_out")
			}
			b.WriteString(`<rect class="` + cls + `" x="` + f1(x+15+float64(j)*35) + `" width="32" y="` + f1(y(v)) + `" height="` + f1(h-y(v)) + `"><title>`)
			b.WriteString(template.HTMLEscapeString(monthShort[li][i] + " " + year + ": " + title + " " + p.num(v, 2) + " kWh"))
			b.WriteString(`</title></rect>`)
		}
		c.XLabels = append(c.XLabels, axisLabel{Pos: (x + w/24) / w * 100, Text: monthShort[li][i]})
	}
	b.WriteString(`</svg>`)
	c.SVG = template.HTML(b.String())
	return c
}
