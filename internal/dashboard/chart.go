package dashboard

import (
	"html/template"
	"math"
	"strconv"
	"strings"
	"time"
)

// Chart geometry in SVG user units. The SVG stretches to its box
// (preserveAspectRatio="none"); labels are HTML around it so they stay
// readable on a phone.
const (
	chartCols = 1000 // one column per unit: min/max per column
	chartH    = 400
)

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

// stepDecimals is how many decimals the labels of an axis with this step
// need to differ (0.25 → 2, 0.5 → 1, 2 → 0).
func stepDecimals(step float64) int {
	for d := 0; d < 6; d++ {
		if math.Abs(step-math.Round(step)) < 1e-9*math.Max(1, step) {
			return d
		}
		step *= 10
	}
	return 6
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
	Legend      []legendItem
	WhMax       float64
	Description string
}

// legendItem is one toggle of the legend.
type legendItem struct {
	Key, Label, Class string
}

func f1(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

// render draws the chart. Everything written into the SVG is numbers,
// fixed names and escaped series keys; labels go through html/template.
func (c *chartBuilder) render(l lang, zone *time.Location) chartView {
	for _, s := range []*chartSeries{c.total, c.temp, c.wh, c.mm} {
		s.finish()
	}
	for _, d := range c.devs {
		d.power.finish()
		for _, p := range d.phases {
			p.finish()
		}
	}
	c.prod.Label, c.home.Label = l.T("flow_prod"), l.T("flow_home")
	lines := c.lines()
	raw := c.o.Res == 0
	v := chartView{HasTemp: c.temp.n > 0}
	if raw {
		v.Points = c.points
	} else {
		v.Points = c.total.buckets()
	}
	// the power axis over the total and the lines
	lo, hi := 0.0, 0.0
	for _, s := range append([]*chartSeries{c.total, c.mm}, lines...) {
		for _, run := range s.runs {
			for _, b := range run {
				if raw || s == c.mm {
					lo, hi = math.Min(lo, b.min), math.Max(hi, b.max)
				} else {
					m := b.sum / float64(b.n)
					lo, hi = math.Min(lo, m), math.Max(hi, m)
				}
			}
		}
	}
	if c.o.YMax > 0 {
		hi = c.o.YMax
	}
	if hi-lo < 10 {
		hi = lo + 10
	}
	step := niceStep(hi-lo, 5)
	lo = math.Floor(lo/step) * step
	if c.o.YMax <= 0 {
		hi = math.Ceil(hi/step) * step
	}
	y := func(p float64) float64 { return chartH * (hi - p) / (hi - lo) }
	zero := y(0)

	pt := func(dst []byte, x, y float64) []byte {
		dst = strconv.AppendFloat(dst, math.Round(x*10)/10, 'f', -1, 64)
		dst = append(dst, ',')
		return strconv.AppendFloat(dst, math.Round(y*10)/10, 'f', -1, 64)
	}
	mean := func(b bucket) float64 { return b.sum / float64(b.n) }
	// band: per run, through the maxima and back through the minima (raw),
	// or a line through the means
	band := func(s *chartSeries, yf func(float64) float64) []byte {
		out := make([]byte, 0, 16*chartCols)
		for _, run := range s.runs {
			for i, b := range run {
				cmd := byte('L')
				if i == 0 {
					cmd = 'M'
				}
				out = append(out, cmd)
				if raw {
					out = pt(out, c.xOf(b.i), yf(b.max))
				} else {
					out = pt(out, c.xOf(b.i), yf(mean(b)))
				}
			}
			if raw {
				for i := len(run) - 1; i >= 0; i-- {
					out = append(out, 'L')
					out = pt(out, c.xOf(run[i].i), yf(run[i].min))
				}
				out = append(out, 'Z')
			}
		}
		return out
	}
	area := make([]byte, 0, 16*chartCols)
	for _, run := range c.total.runs {
		for i, b := range run {
			cmd := byte('L')
			if i == 0 {
				cmd = 'M'
			}
			area = append(area, cmd)
			top := b.max
			if !raw {
				top = mean(b)
			}
			area = pt(area, c.xOf(b.i), y(math.Max(top, 0)))
		}
		for i := len(run) - 1; i >= 0; i-- {
			b := run[i]
			bot := b.min
			if !raw {
				bot = mean(b)
			}
			area = append(area, 'L')
			area = pt(area, c.xOf(b.i), y(math.Min(bot, 0)))
		}
		area = append(area, 'Z')
	}

	var b strings.Builder
	b.Grow(len(area)*3 + 16*1024)
	b.WriteString(`<svg class="chart-svg" viewBox="0 0 1000 400" preserveAspectRatio="none" role="img" aria-label="`)
	b.WriteString(template.HTMLEscapeString(l.T("chart_title")))
	b.WriteString(`" data-points="`)
	b.WriteString(strconv.Itoa(v.Points))
	b.WriteString(`" data-res="`)
	b.WriteString(c.o.ResName)
	b.WriteString(`">`)
	b.WriteString(`<defs><clipPath id="c-pos"><rect x="0" y="-1" width="1000" height="` + f1(zero+1) + `"/></clipPath>`)
	b.WriteString(`<clipPath id="c-neg"><rect x="0" y="` + f1(zero) + `" width="1000" height="` + f1(chartH-zero+1) + `"/></clipPath>`)
	b.WriteString(`<clipPath id="c-plot"><rect x="-2" y="-2" width="1004" height="404"/></clipPath>`)
	if len(c.total.runs) > 0 {
		b.WriteString(`<path id="p-area" d="`)
		b.Write(area)
		b.WriteString(`"/><path id="p-band" stroke-width="1.6" stroke-linejoin="round" vector-effect="non-scaling-stroke" d="`)
		b.Write(band(c.total, y))
		b.WriteString(`"/>`)
	}
	b.WriteString(`</defs>`)

	// grid: hours (every 3rd labelled; every hour when zoomed to less than
	// 8 hours) and power steps
	b.WriteString(`<g class="grid">`)
	spanS := c.o.To.Sub(c.o.From).Seconds()
	every := 3
	if spanS <= 8*3600 {
		every = 1
	}
	first := c.o.From.In(zone)
	hourT := time.Date(first.Year(), first.Month(), first.Day(), first.Hour(), 0, 0, 0, zone)
	if hourT.Before(c.o.From) {
		hourT = hourT.Add(time.Hour)
	}
	for t := hourT; t.Before(c.o.To); t = t.Add(time.Hour) {
		x := 1000 * t.Sub(c.o.From).Seconds() / spanS
		cls := "h"
		if t.In(zone).Hour()%every == 0 {
			cls = "h3"
			v.XLabels = append(v.XLabels, axisLabel{Pos: x / 10, Text: t.In(zone).Format("15:04")})
		}
		if x > 0.5 {
			b.WriteString(`<line class="` + cls + `" x1="` + f1(x) + `" x2="` + f1(x) + `" y1="0" y2="400"/>`)
		}
	}
	for p := lo; p <= hi+step/2; p += step {
		yy := y(p)
		if yy < -0.5 {
			break
		}
		cls := "p"
		if math.Abs(p) < step/2 {
			cls = "zero"
			p = 0
		}
		b.WriteString(`<line class="` + cls + `" x1="0" x2="1000" y1="` + f1(yy) + `" y2="` + f1(yy) + `"/>`)
		v.YLabels = append(v.YLabels, axisLabel{Pos: yy / chartH * 100, Text: l.num(p, stepDecimals(step)) + " W"})
	}
	b.WriteString(`</g><g clip-path="url(#c-plot)">`)

	v.Legend = append(v.Legend, legendItem{Key: "total", Label: l.T("power_total"), Class: "total"})
	if len(c.mm.runs) > 0 {
		// reduced minutes: a light band from their lowest to their highest
		// power behind the total, so their spikes still show
		var d []byte
		for _, run := range c.mm.runs {
			for i, bk := range run {
				cmd := byte('L')
				if i == 0 {
					cmd = 'M'
				}
				d = append(d, cmd)
				d = pt(d, c.xOf(bk.i), y(bk.max))
			}
			for i := len(run) - 1; i >= 0; i-- {
				d = append(d, 'L')
				d = pt(d, c.xOf(run[i].i), y(run[i].min))
			}
			d = append(d, 'Z')
		}
		b.WriteString(`<path class="mm" data-s="total" d="`)
		b.Write(d)
		b.WriteString(`"/>`)
	}
	if len(c.total.runs) > 0 {
		useCls := "band"
		if !raw {
			useCls = "band line"
		}
		b.WriteString(`<g data-s="total"><g class="pos" clip-path="url(#c-pos)"><use class="area" href="#p-area"/><use class="` + useCls + `" href="#p-band"/></g>`)
		b.WriteString(`<g class="neg" clip-path="url(#c-neg)"><use class="area" href="#p-area"/><use class="` + useCls + `" href="#p-band"/></g></g>`)
	}
	for _, s := range lines {
		cls := "ln " + s.Class
		if !raw {
			cls += " line"
		}
		b.WriteString(`<path class="` + cls + `" data-s="` + template.HTMLEscapeString(s.Key) + `" d="`)
		b.Write(band(s, y))
		b.WriteString(`"/>`)
		v.Legend = append(v.Legend, legendItem{Key: s.Key, Label: s.Label, Class: s.Class})
	}

	// running energy on its own scale (0 to the view's last value)
	whMax := 0.0
	for _, run := range c.wh.runs {
		for _, bk := range run {
			whMax = math.Max(whMax, bk.max)
		}
	}
	v.WhMax = whMax
	if whMax > 0 {
		wy := func(e float64) float64 { return chartH * (1 - e/whMax) }
		var d []byte
		for _, run := range c.wh.runs {
			for i, bk := range run {
				if i == 0 {
					d = append(d, 'M')
				} else {
					d = append(d, 'L')
				}
				d = pt(d, c.xOf(bk.i), wy(bk.last))
			}
		}
		b.WriteString(`<path class="wh" data-s="wh" d="`)
		b.Write(d)
		b.WriteString(`"/>`)
		v.Legend = append(v.Legend, legendItem{Key: "wh", Label: l.T("running_energy"), Class: "wh"})
	}

	// temperature on its own scale, a line through the bucket means
	if c.temp.n > 0 {
		tlo, thi := c.o.TMin, c.o.TMax
		if tlo >= thi {
			tlo, thi = math.Inf(1), math.Inf(-1)
			for _, run := range c.temp.runs {
				for _, bk := range run {
					tlo, thi = math.Min(tlo, mean(bk)), math.Max(thi, mean(bk))
				}
			}
			tlo, thi = math.Floor(tlo)-1, math.Ceil(thi)+1
		}
		tstep := niceStep(thi-tlo, 4)
		if c.o.TMin >= c.o.TMax {
			tlo, thi = math.Floor(tlo/tstep)*tstep, math.Ceil(thi/tstep)*tstep
		}
		ty := func(t float64) float64 { return chartH * (thi - t) / (thi - tlo) }
		var d []byte
		for _, run := range c.temp.runs {
			for i, bk := range run {
				if i == 0 {
					d = append(d, 'M')
				} else {
					d = append(d, 'L')
				}
				d = pt(d, c.xOf(bk.i), ty(mean(bk)))
			}
		}
		b.WriteString(`<path class="temp" data-s="temp" d="`)
		b.Write(d)
		b.WriteString(`"/>`)
		for t := math.Ceil(tlo/tstep) * tstep; t <= thi+tstep/1000; t += tstep {
			v.TLabels = append(v.TLabels, axisLabel{Pos: ty(t) / chartH * 100, Text: l.num(t, stepDecimals(tstep)) + " °C"})
		}
		v.Legend = append(v.Legend, legendItem{Key: "temp", Label: l.T("temperature"), Class: "temp"})
	}
	b.WriteString(`</g></svg>`)
	v.SVG = template.HTML(b.String())
	return v
}
