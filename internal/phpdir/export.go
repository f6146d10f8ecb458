// Package phpdir reads and writes the data folder of the PHP powermeter app:
// one YYYY-MM-DD.csv per local day with stats lines
// (DD.MM.YYYY,HH:MM:SS,power[,temp[,…]]) and stats.txt with the current
// line. Export writes such a folder from the store, Import reads one into it
// (also .csv.gz files), through the same parser and time rules as the
// log.php receiver.
package phpdir

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/powermeter/powermeter/internal/household"
	"github.com/powermeter/powermeter/internal/legacy"
	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/server/ingest"
	"github.com/powermeter/powermeter/internal/store"
)

// ExportOptions says what to export.
type ExportOptions struct {
	Source string
	Device string // the device whose readings become lines
	Zone   *time.Location
	// From and To bound the readings (From <= Time < To); zero: unbounded.
	// Each must be a midnight in Zone (ErrPartialDay otherwise): a day file
	// is written whole and replaces the file of that day.
	From, To time.Time
	// OnSkip, when set, receives each reading that cannot be written as a
	// stats line; without it Export logs how many it left out.
	OnSkip func(Skip)
	// Fields say where value 2 of a legacy line was stored (see
	// household.FieldMap.Place); nil: as temperature. Only the device
	// "legacy" is written back with them.
	Fields household.FieldMap
}

// ExportResult counts what Export wrote.
type ExportResult struct {
	Files   int
	Lines   int
	Skipped int // readings left out: they do not fit a stats line
}

// Skip is a reading Export left out, and why.
type Skip struct {
	Time time.Time
	Err  error
}

func (s Skip) String() string { return s.Time.Format(time.RFC3339) + ": " + s.Err.Error() }

// ErrPartialDay is returned for a From or To that is not a local midnight.
var ErrPartialDay = errors.New("not a midnight in the source's zone: a day file holds a whole day, so the export takes whole days (YYYY-MM-DD)")

// midnight reports whether t is the start of its local day in zone (01:00
// on a day whose midnight a DST change skips).
func midnight(t time.Time, zone *time.Location) bool {
	l := t.In(zone)
	return t.Equal(time.Date(l.Year(), l.Month(), l.Day(), 0, 0, 0, 0, zone))
}

// Export writes the source's readings of one device as a PHP data folder in
// dir (created if needed). Each day file is written whole to a temporary
// name and then renamed (mode 0644), replacing a file of the same name.
// stats.txt gets the newest line exported. A reading that does not fit a
// stats line (more than 6 digits before the point, more than 12 further
// values) is left out and counted in Skipped.
//
// Values are written with legacy.FormatNumber: power and further fields
// with 2 decimals, temperature with 1, each with more (up to 3, what the PHP
// receiver accepts) when the stored value needs them.
func Export(ctx context.Context, st store.Store, dir string, opt ExportOptions) (ExportResult, error) {
	var res ExportResult
	if opt.Zone == nil {
		return res, errors.New("export: no time zone")
	}
	for _, b := range []struct {
		name string
		t    time.Time
	}{{"start", opt.From}, {"end", opt.To}} {
		if !b.t.IsZero() && !midnight(b.t, opt.Zone) {
			return res, fmt.Errorf("export: %s %s is %w", b.name, b.t.In(opt.Zone).Format(time.RFC3339), ErrPartialDay)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return res, fmt.Errorf("export: creating %s: %w", dir, err)
	}
	from, to := opt.From, opt.To
	if from.IsZero() {
		from = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	if to.IsZero() {
		to = time.Date(2201, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	var (
		day  string
		f    *os.File
		bw   *bufio.Writer
		last string
		buf  []byte
		skip Skip // the first reading left out
	)
	closeDay := func() error {
		if f == nil {
			return nil
		}
		tmp := f.Name()
		err := bw.Flush()
		if err == nil {
			err = f.Sync()
		}
		if e := f.Close(); err == nil {
			err = e
		}
		f = nil
		if err == nil {
			err = os.Rename(tmp, filepath.Join(dir, day+".csv"))
		}
		if err != nil {
			os.Remove(tmp)
			return fmt.Errorf("export: writing %s.csv: %w", day, err)
		}
		res.Files++
		return nil
	}
	err := st.Range(ctx, opt.Source, from, to, func(rd reading.Reading) error {
		if rd.Device != opt.Device {
			return nil
		}
		if len(opt.Fields) > 0 && rd.Device == ingest.Device {
			opt.Fields.Unplace(&rd)
		}
		line, err := Line(rd, opt.Zone)
		if err != nil {
			sk := Skip{Time: rd.Time, Err: err}
			if res.Skipped == 0 {
				skip = sk
			}
			res.Skipped++
			if opt.OnSkip != nil {
				opt.OnSkip(sk)
			}
			return nil
		}
		if d := rd.Time.In(opt.Zone).Format("2006-01-02"); d != day {
			if err := closeDay(); err != nil {
				return err
			}
			day = d
			if f, err = os.CreateTemp(dir, "."+day+".csv.*"); err != nil {
				return fmt.Errorf("export: creating the file of %s: %w", day, err)
			}
			if err := f.Chmod(0o644); err != nil {
				return fmt.Errorf("export: creating the file of %s: %w", day, err)
			}
			if bw == nil {
				bw = bufio.NewWriterSize(f, 64<<10)
			} else {
				bw.Reset(f)
			}
		}
		buf = append(append(buf[:0], line...), '\n')
		if _, err := bw.Write(buf); err != nil {
			return fmt.Errorf("export: writing %s.csv: %w", day, err)
		}
		last = line
		res.Lines++
		return nil
	})
	if err != nil {
		if f != nil {
			f.Close()
			os.Remove(f.Name())
		}
		return res, err
	}
	if err := closeDay(); err != nil {
		return res, err
	}
	if res.Skipped > 0 && opt.OnSkip == nil {
		slog.Warn("export: readings left out: they do not fit a stats line",
			"source", opt.Source, "device", opt.Device, "readings", res.Skipped, "first", skip.String())
	}
	if last != "" {
		if err := writeFileAtomic(filepath.Join(dir, "stats.txt"), []byte(last)); err != nil {
			return res, fmt.Errorf("export: writing stats.txt: %w", err)
		}
	}
	return res, nil
}

// Line writes a reading as a stats line in zone, as the PHP receiver stores
// it: power, then temperature (empty when absent but more values follow),
// then the phases.
func Line(rd reading.Reading, zone *time.Location) (string, error) {
	if 4+len(rd.Phases) > legacy.MaxFields {
		return "", fmt.Errorf("%d further values, a line holds at most %d", len(rd.Phases), legacy.MaxFields-4)
	}
	var b strings.Builder
	b.Grow(48 + 10*len(rd.Phases))
	b.WriteString(rd.Time.In(zone).Format("02.01.2006,15:04:05"))
	add := func(name string, v float64, minDec int) error {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("%s is not a number", name)
		}
		s := legacy.FormatNumber(v, decimals(v, minDec))
		if ip, _, _ := strings.Cut(s, "."); len(ip) > 6 {
			return fmt.Errorf("%s %s does not fit a stats line (at most 6 characters before the point)", name, s)
		}
		b.WriteByte(',')
		b.WriteString(s)
		return nil
	}
	if err := add("power", rd.Power, 2); err != nil {
		return "", err
	}
	switch {
	case rd.Temperature != nil:
		if err := add("temperature", *rd.Temperature, 1); err != nil {
			return "", err
		}
	case len(rd.Phases) > 0:
		b.WriteByte(',')
	}
	for i, p := range rd.Phases {
		if err := add(fmt.Sprintf("value %d", i+1), p, 2); err != nil {
			return "", err
		}
	}
	return b.String(), nil
}

// decimals is the fewest decimals, at least min and at most 3, that write v
// without loss (3 when even that rounds).
func decimals(v float64, min int) int {
	for d := min; d < 3; d++ {
		p := math.Pow10(d)
		if math.Abs(math.Round(v*p)/p-v) < 1e-9 {
			return d
		}
	}
	return 3
}

func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	err = f.Chmod(0o644)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if e := f.Close(); err == nil {
		err = e
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}
