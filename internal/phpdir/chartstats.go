package phpdir

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/powermeter/powermeter/internal/store"
)

// ChartStats is the PHP app's cache of per-day figures, written when a
// day's chart is viewed: one line per day,
//
//	YYYY-MM-DD,<Wh>,<first>,<last>,<peak W>,<peak time>[,<feed-in Wh>][,<min %>,<max %>]
//
// (times HH:MM:SS local). Its overview reads it; days can be in it whose
// raw YYYY-MM-DD.csv is gone.
const ChartStats = "chart_stats.csv"

// notDayFile reports names in a data folder that are the PHP app's caches,
// not day files: chart_stats.csv, chart_details_<n>.csv.
func notDayFile(name string) bool {
	return name == ChartStats || strings.HasPrefix(name, "chart_details_")
}

// dayOfFile is the day a data file is named after ("2024-03-01.csv.gz"),
// or "".
func dayOfFile(name string) string {
	if len(name) < 10 {
		return ""
	}
	if _, err := time.Parse(time.DateOnly, name[:10]); err != nil {
		return ""
	}
	return name[:10]
}

// ParseChartStatsLine reads one line of chart_stats.csv into a day summary.
func ParseChartStatsLine(line string) (store.ImportedDay, error) {
	f := strings.Split(strings.TrimSpace(line), ",")
	var d store.ImportedDay
	if len(f) < 2 {
		return d, errors.New("want date,Wh,first,last,peak W,peak time[,feed-in Wh]")
	}
	if _, err := time.Parse(time.DateOnly, f[0]); err != nil {
		return d, fmt.Errorf("field 1 %s: want a date YYYY-MM-DD", excerpt(f[0]))
	}
	d.Day, d.Origin = f[0], ChartStats
	num := func(i int, name string) (float64, error) {
		s := strings.TrimSpace(f[i])
		if s == "" {
			return 0, nil
		}
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || v != v || v < -1e12 || v > 1e12 {
			return 0, fmt.Errorf("field %d (%s) %s: not a number", i+1, name, excerpt(s))
		}
		return v, nil
	}
	clock := func(i int) string {
		if i < len(f) {
			if _, err := time.Parse(time.TimeOnly, strings.TrimSpace(f[i])); err == nil {
				return strings.TrimSpace(f[i])
			}
		}
		return ""
	}
	var err error
	if d.InWh, err = num(1, "Wh"); err != nil {
		return d, err
	}
	d.First, d.Last, d.PeakAt = clock(2), clock(3), clock(5)
	if len(f) > 4 {
		if d.PeakW, err = num(4, "peak W"); err != nil {
			return d, err
		}
	}
	// The feed-in field is written only when there was feed-in; the state
	// of charge pair (min, max) only with $unit2 = '%': 7 fields = feed-in,
	// 8 = charge only, 9 = both.
	if len(f) == 7 || len(f) == 9 {
		if d.OutWh, err = num(6, "feed-in Wh"); err != nil {
			return d, err
		}
	}
	d.InWh, d.OutWh, d.PeakW = abs(d.InWh), abs(d.OutWh), abs(d.PeakW)
	return d, d.Check()
}

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}

// chartStats imports the days of chart_stats.csv that have no day file
// (haveFile) as day summaries without raw readings.
func (im *importer) chartStats(ctx context.Context, dir string, haveFile map[string]bool) error {
	path := filepath.Join(dir, ChartStats)
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return &fileError{err: err}
	}
	if why := skipReason(fi.Mode()); why != "" {
		return &fileError{err: errors.New(why), skip: why}
	}
	f, err := openRegular(path)
	if err != nil {
		return &fileError{err: err}
	}
	defer f.Close()
	di, ok := im.st.(store.DayImporter)
	if !ok {
		return errors.New("import: this store keeps no day summaries: chart_stats.csv is not imported")
	}
	var days []store.ImportedDay
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, maxLine), maxLine)
	seen := map[string]int{}
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSuffix(strings.TrimPrefix(sc.Text(), "\ufeff"), "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		d, err := ParseChartStatsLine(line)
		if err != nil {
			im.refuse(Refusal{File: ChartStats, Line: n, Err: err})
			continue
		}
		im.res.StatsLines++
		if haveFile[d.Day] {
			continue // the raw readings are there: they are the truth
		}
		if i, dup := seen[d.Day]; dup {
			days[i] = d // the PHP app replaces a day's line: the last one wins
			continue
		}
		seen[d.Day] = len(days)
		days = append(days, d)
	}
	if err := sc.Err(); err != nil {
		return &fileError{err: fmt.Errorf("reading %s: %w", ChartStats, err)}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	n, err := di.PutImportedDays(ctx, im.opt.Source, days)
	if err != nil {
		return err
	}
	im.res.Summaries += len(days)
	im.res.SummariesNew += n
	return nil
}
