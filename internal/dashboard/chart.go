package dashboard

import (
	"html/template"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/powermeter/powermeter/internal/energy"
)

// Chart geometry in SVG user units. The SVG stretches to its box
// (preserveAspectRatio="none"); labels are HTML around it so they stay
// readable on a phone.
const (
	chartCols = 1000 // one column per unit: min/max per column
	chartH    = 400
)

// col is one pixel column of the day chart.
type col struct {
	x        int
	min, max float64
	tsum     float64
	tn       int
}

// dayChart collects a day's power points into columns, keeping min and max
// so short spikes survive, and runs of columns without a gap.
type dayChart struct {
	start, end time.Time
	runs       [][]col
	cur        []col
	points     int
	pmin, pmax float64
	tmin, tmax float64
	hasT       bool
}

func newDayChart(start, end time.Time) *dayChart {
	return &dayChart{start: start, end: end, tmin: math.Inf(1), tmax: math.Inf(-1)}
}

func (c *dayChart) x(t time.Time) int {
	x := int(float64(chartCols) * t.Sub(c.start).Seconds() / c.end.Sub(c.start).Seconds())
	return min(max(x, 0), chartCols-1)
}

// add takes the next point (in time order).
func (c *dayChart) add(p energy.Point) {
	c.points++
	if p.Gap && len(c.cur) > 0 {
		c.runs = append(c.runs, c.cur)
		c.cur = nil
	}
	c.pmin, c.pmax = math.Min(c.pmin, p.Power), math.Max(c.pmax, p.Power)
	if p.HasTemp {
		c.hasT = true
		c.tmin, c.tmax = math.Min(c.tmin, p.Temp), math.Max(c.tmax, p.Temp)
	}
	x := c.x(p.Time)
	if n := len(c.cur); n > 0 && c.cur[n-1].x == x {
		k := &c.cur[n-1]
		k.min, k.max = math.Min(k.min, p.Power), math.Max(k.max, p.Power)
		if p.HasTemp {
			k.tsum += p.Temp
			k.tn++
		}
		return
	}
	k := col{x: x, min: p.Power, max: p.Power}
	if p.HasTemp {
		k.tsum, k.tn = p.Temp, 1
	}
	c.cur = append(c.cur, k)
}

func (c *dayChart) finish() {
	if len(c.cur) > 0 {
		c.runs = append(c.runs, c.cur)
		c.cur = nil
	}
}

// niceStep returns a 1-2-5 step that cuts span into about n parts.
func niceStep(span float64, n int) float64 {
	if span <= 0 {
		return 1
	}
	raw := span / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*mag >= raw {
			return m * mag
		}
	}
	return 10 * mag
}

type axisLabel struct {
	Pos  float64 // percent from the top (y) or left (x)
	Text string
}

// chartView is what the day template draws.
type chartView struct {
	SVG         template.HTML
	YLabels     []axisLabel
	TLabels     []axisLabel
	XLabels     []axisLabel
	Points      int
	HasTemp     bool
	Description string
}

func f1(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

// render draws the chart. Everything written into the SVG is numbers and
// fixed names; labels go through html/template.
func (c *dayChart) render(l lang, zone *time.Location) chartView {
	c.finish()
	v := chartView{Points: c.points, HasTemp: c.hasT}
	lo, hi := math.Min(0, c.pmin), math.Max(0, c.pmax)
	if hi-lo < 10 {
		hi = lo + 10
	}
	step := niceStep(hi-lo, 5)
	lo = math.Floor(lo/step) * step
	hi = math.Ceil(hi/step) * step
	y := func(p float64) float64 { return chartH * (hi - p) / (hi - lo) }
	zero := y(0)

	// power: per run, the area from zero to the extremes and the min–max
	// band, through the column centres; drawn twice (above zero in the
	// consumption colour, below in the feed-in colour) by <use>
	area := make([]byte, 0, 16*chartCols)
	band := make([]byte, 0, 16*chartCols)
	pt := func(dst []byte, x int, y float64) []byte {
		dst = strconv.AppendInt(dst, int64(x), 10)
		dst = append(dst, ".5,"...)
		return strconv.AppendFloat(dst, math.Round(y*10)/10, 'f', -1, 64)
	}
	for _, run := range c.runs {
		for i, k := range run {
			cmd := byte('L')
			if i == 0 {
				cmd = 'M'
			}
			area = append(area, cmd)
			area = pt(area, k.x, y(math.Max(k.max, 0)))
			band = append(band, cmd)
			band = pt(band, k.x, y(k.max))
		}
		for i := len(run) - 1; i >= 0; i-- {
			k := run[i]
			area = append(area, 'L')
			area = pt(area, k.x, y(math.Min(k.min, 0)))
			band = append(band, 'L')
			band = pt(band, k.x, y(k.min))
		}
		area = append(area, 'Z')
		band = append(band, 'Z')
	}

	var b strings.Builder
	b.Grow(len(area) + len(band) + 16*1024)
	b.WriteString(`<svg class="chart-svg" viewBox="0 0 1000 400" preserveAspectRatio="none" role="img" aria-label="`)
	b.WriteString(template.HTMLEscapeString(l.T("chart_title")))
	b.WriteString(`" data-points="`)
	b.WriteString(strconv.Itoa(c.points))
	b.WriteString(`">`)
	// clip regions above and below zero, for the two colours
	b.WriteString(`<defs><clipPath id="c-pos"><rect x="0" y="-1" width="1000" height="` + f1(zero+1) + `"/></clipPath>`)
	b.WriteString(`<clipPath id="c-neg"><rect x="0" y="` + f1(zero) + `" width="1000" height="` + f1(chartH-zero+1) + `"/></clipPath>`)
	// the shapes, coloured by the <use> that draws them
	if len(c.runs) > 0 {
		b.WriteString(`<path id="p-area" d="`)
		b.Write(area)
		b.WriteString(`"/><path id="p-band" stroke-width="1.6" stroke-linejoin="round" vector-effect="non-scaling-stroke" d="`)
		b.Write(band)
		b.WriteString(`"/>`)
	}
	b.WriteString(`</defs>`)

	// grid: hours and power steps
	b.WriteString(`<g class="grid">`)
	hours := 0
	for t := c.start; t.Before(c.end); t = t.Add(time.Hour) {
		x := float64(chartCols) * t.Sub(c.start).Seconds() / c.end.Sub(c.start).Seconds()
		cls := "h"
		if hours%3 == 0 {
			cls = "h3"
			v.XLabels = append(v.XLabels, axisLabel{Pos: x / 10, Text: t.In(zone).Format("15:04")})
		}
		if hours > 0 {
			b.WriteString(`<line class="` + cls + `" x1="` + f1(x) + `" x2="` + f1(x) + `" y1="0" y2="400"/>`)
		}
		hours++
	}
	for p := lo; p <= hi+step/2; p += step {
		yy := y(p)
		cls := "p"
		if math.Abs(p) < step/2 {
			cls = "zero"
			p = 0
		}
		b.WriteString(`<line class="` + cls + `" x1="0" x2="1000" y1="` + f1(yy) + `" y2="` + f1(yy) + `"/>`)
		v.YLabels = append(v.YLabels, axisLabel{Pos: yy / chartH * 100, Text: l.num(p, 0) + " W"})
	}
	b.WriteString(`</g>`)

	if len(c.runs) > 0 {
		b.WriteString(`<g class="pos" clip-path="url(#c-pos)"><use class="area" href="#p-area"/><use class="band" href="#p-band"/></g>`)
		b.WriteString(`<g class="neg" clip-path="url(#c-neg)"><use class="area" href="#p-area"/><use class="band" href="#p-band"/></g>`)
	}

	// temperature on its own scale, a line through column means
	if c.hasT {
		tlo, thi := math.Floor(c.tmin)-1, math.Ceil(c.tmax)+1
		tstep := niceStep(thi-tlo, 4)
		tlo, thi = math.Floor(tlo/tstep)*tstep, math.Ceil(thi/tstep)*tstep
		ty := func(t float64) float64 { return chartH * (thi - t) / (thi - tlo) }
		var d strings.Builder
		for _, run := range c.runs {
			open := false
			for _, k := range run {
				if k.tn == 0 {
					open = false
					continue
				}
				if !open {
					d.WriteString("M")
					open = true
				} else {
					d.WriteString(" L")
				}
				d.WriteString(f1(float64(k.x)+0.5) + "," + f1(ty(k.tsum/float64(k.tn))))
			}
		}
		b.WriteString(`<path class="temp" d="` + d.String() + `"/>`)
		for t := tlo; t <= thi+tstep/2; t += tstep {
			v.TLabels = append(v.TLabels, axisLabel{Pos: ty(t) / chartH * 100, Text: l.num(t, 0) + " °C"})
		}
	}
	b.WriteString(`</svg>`)
	v.SVG = template.HTML(b.String())
	return v
}
