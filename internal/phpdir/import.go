package phpdir

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/powermeter/powermeter/internal/household"
	"github.com/powermeter/powermeter/internal/legacy"
	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/server/ingest"
	"github.com/powermeter/powermeter/internal/store"
)

// maxLine is the longest line Import reads; longer ones are refused.
const maxLine = 4096

// ImportOptions says where imported lines go.
type ImportOptions struct {
	Source string
	Zone   *time.Location
	// BatchSize is the number of readings per store insert (default 5000).
	BatchSize int
	// Progress, when set, is called with the number of file bytes read
	// since the previous call.
	Progress func(n int64)
	// OnRefuse, when set, is called for every refused line.
	OnRefuse func(Refusal)
	// OnSkip, when set, is called for every entry named like a data file
	// that is not a regular file (a symbolic link, a pipe, a device): they
	// are not read.
	OnSkip func(name, why string)
	// OnFileError, when set, is called for a file that cannot be read to
	// its end (a corrupt .gz, an I/O error); the import goes on with the
	// next file and what the file gave before the error is kept.
	OnFileError func(name string, err error)
	// Fields say what the values of a line mean (nil: power, temperature,
	// powers); value 2 is stored where they say (household.FieldMap.Place).
	Fields household.FieldMap
	// Threshold stores power below it (either sign) as 0, as the PHP app's
	// $power_threshold hides it.
	Threshold float64
	// MaxFuture refuses lines timed more than this ahead of Now (default
	// 24h, as the server's max_future); Now defaults to time.Now.
	MaxFuture time.Duration
	Now       func() time.Time
}

// Refusal is a line Import did not take.
type Refusal struct {
	File string
	Line int
	Err  error
}

// String names the file and line and says why, with at most a short,
// escaped excerpt of the line (a refused line may be anything: a binary
// file, a password file, terminal escapes).
func (r Refusal) String() string {
	return fmt.Sprintf("%s:%d: %s", SafeName(r.File), r.Line, describe(r.Err))
}

// SafeName is a file name fit to print: as it is when every character is
// printable, else quoted with escapes (a name can hold terminal escapes).
func SafeName(name string) string {
	for _, r := range name {
		if !strconv.IsPrint(r) {
			return strconv.Quote(name)
		}
	}
	return name
}

// excerptLen is the most bytes of a refused line that are shown.
const excerptLen = 16

func describe(err error) string {
	var le *legacy.Error
	if errors.As(err, &le) && le.Field > 0 {
		return fmt.Sprintf("stats field %d (%s) %s: %s", le.Field, le.Name, excerpt(le.Value), le.Msg)
	}
	if errors.As(err, &le) {
		return "stats: " + le.Msg
	}
	return err.Error()
}

// excerpt quotes (escaping every non-printable byte) at most excerptLen
// bytes of s.
func excerpt(s string) string {
	if len(s) <= excerptLen {
		return strconv.Quote(s)
	}
	cut := excerptLen
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "…"
}

// ImportResult counts what Import did.
type ImportResult struct {
	Files    int // files read to their end
	Lines    int // non-empty lines read
	Imported int // new readings
	Present  int // readings stored already, with the same values
	// Conflicts are readings whose instant holds other values already:
	// the first is kept, the line is not stored.
	Conflicts int
	Refused   int // lines refused (see OnRefuse)
	Skipped   int // entries that are not regular files (see OnSkip)
	Failed    int // files that could not be read to their end (see OnFileError)
	// StatsLines are the readable lines of chart_stats.csv; Summaries the
	// days among them without a day file, imported as day summaries
	// without raw readings (SummariesNew of them new or changed).
	StatsLines, Summaries, SummariesNew int
}

// Entry is a name in a data folder that looks like a data file.
type Entry struct {
	Name string
	Size int64
	// Skip says why the entry is not read ("" for a regular file).
	Skip string
}

// List lists the entries of dir named *.csv or *.csv.gz in name order;
// those that are not regular files (symbolic links are not followed) carry
// the reason they are skipped.
func List(dir string) ([]Entry, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading the folder %s: %w", dir, err)
	}
	var out []Entry
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, ".") || !(strings.HasSuffix(n, ".csv") || strings.HasSuffix(n, ".csv.gz")) || notDayFile(n) {
			continue
		}
		en := Entry{Name: n, Skip: skipReason(e.Type())}
		if en.Skip == "" {
			if info, err := e.Info(); err == nil {
				en.Size = info.Size()
			}
		}
		out = append(out, en)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// skipReason is why an entry of type m is not read, or "".
func skipReason(m fs.FileMode) string {
	switch t := m.Type(); {
	case t.IsRegular():
		return ""
	case t&fs.ModeSymlink != 0:
		return "a symbolic link (not followed; copy the file in)"
	case t.IsDir():
		return "a folder"
	case t&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case t&fs.ModeDevice != 0, t&fs.ModeCharDevice != 0:
		return "a device"
	case t&fs.ModeSocket != 0:
		return "a socket"
	}
	return "not a regular file"
}

// Files lists the regular .csv and .csv.gz files of dir in name order and
// their total size.
func Files(dir string) ([]string, int64, error) {
	ents, err := List(dir)
	if err != nil {
		return nil, 0, err
	}
	var names []string
	var total int64
	for _, e := range ents {
		if e.Skip == "" {
			names = append(names, e.Name)
			total += e.Size
		}
	}
	return names, total, nil
}

// Import reads the PHP data folder dir into the store under opt.Source (which
// must be registered): every .csv and .csv.gz file in name order, every line
// through legacy.Parse and the receiver's time rules (the doubled autumn
// hour in order, spring-gap times accepted). It is idempotent: lines stored
// already count as present. Refused lines are reported with file:line and
// do not stop the import, nor does a file that cannot be read (a corrupt
// .gz: OnFileError, counted in Failed) or an entry that is not a regular
// file (OnSkip); a store error does, and so does ctx ending (what was read
// until then is stored).
func Import(ctx context.Context, st store.Store, dir string, opt ImportOptions) (ImportResult, error) {
	var res ImportResult
	if opt.Zone == nil {
		return res, errors.New("import: no time zone")
	}
	if opt.BatchSize <= 0 {
		opt.BatchSize = 5000
	}
	if opt.MaxFuture <= 0 {
		opt.MaxFuture = 24 * time.Hour
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	ents, err := List(dir)
	if err != nil {
		return res, err
	}
	im := &importer{st: st, opt: opt, res: &res, rsv: ingest.NewResolver(st)}
	haveFile := map[string]bool{}
	for _, e := range ents {
		if d := dayOfFile(e.Name); d != "" && e.Skip == "" {
			haveFile[d] = true
		}
	}
	for _, e := range ents {
		if e.Skip != "" {
			im.skip(e.Name, e.Skip)
			continue
		}
		err := im.file(ctx, filepath.Join(dir, e.Name), e.Name)
		var fe *fileError
		switch {
		case errors.As(err, &fe) && ctx.Err() == nil:
			if fe.skip != "" {
				im.skip(e.Name, fe.skip)
				continue
			}
			res.Failed++
			if opt.OnFileError != nil {
				opt.OnFileError(e.Name, fe.err)
			}
			continue
		case err != nil:
			if ctx.Err() != nil {
				// Interrupted: keep what was read.
				err = errors.Join(fmt.Errorf("import interrupted in %s: %w", e.Name, ctx.Err()), im.flush(context.WithoutCancel(ctx)))
			}
			return res, err
		}
		res.Files++
	}
	if err := im.flush(ctx); err != nil {
		return res, err
	}
	// Days only the PHP app's chart_stats.csv still knows.
	if err := im.chartStats(ctx, dir, haveFile); err != nil {
		var fe *fileError
		if !errors.As(err, &fe) {
			return res, err
		}
		if fe.skip != "" {
			im.skip(ChartStats, fe.skip)
		} else {
			res.Failed++
			if opt.OnFileError != nil {
				opt.OnFileError(ChartStats, fe.err)
			}
		}
	}
	return res, nil
}

// fileError is a file that cannot be read (the import goes on), or is
// found not to be a regular file when opened (skip).
type fileError struct {
	err  error
	skip string
}

func (e *fileError) Error() string { return e.err.Error() }
func (e *fileError) Unwrap() error { return e.err }

func (im *importer) skip(name, why string) {
	im.res.Skipped++
	if im.opt.OnSkip != nil {
		im.opt.OnSkip(name, why)
	}
}

type importer struct {
	st      store.Store
	opt     ImportOptions
	res     *ImportResult
	rsv     *ingest.Resolver
	batch   []reading.Reading
	tickets []ingest.Ticket // of the batch's readings
}

func (im *importer) file(ctx context.Context, path, name string) error {
	f, err := openRegular(path)
	if err != nil {
		return &fileError{err: err}
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return &fileError{err: err}
	} else if why := skipReason(fi.Mode()); why != "" {
		return &fileError{err: errors.New(why), skip: why}
	}
	var src io.Reader = &progressReader{r: &ctxReader{ctx: ctx, r: f}, fn: im.opt.Progress}
	if strings.HasSuffix(name, ".gz") {
		gz, err := gzip.NewReader(src)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return &fileError{err: fmt.Errorf("not a readable gzip file: %w", err)}
		}
		defer gz.Close()
		src = gz
	}
	lr := &lineReader{br: bufio.NewReaderSize(src, maxLine)}
	for n := 1; ; n++ {
		line, tooLong, err := lr.next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return &fileError{err: fmt.Errorf("reading line %d: %w", n, err)}
		}
		if n == 1 {
			line = strings.TrimPrefix(line, "\ufeff") // a UTF-8 byte order mark
		}
		switch {
		case tooLong:
			im.refuse(Refusal{File: name, Line: n, Err: fmt.Errorf("line longer than %d bytes", maxLine)})
		case line != "":
			if e := im.line(ctx, name, n, line); e != nil {
				return e
			}
		}
	}
}

// lineReader splits lines at LF, CRLF or a lone CR (old Mac files).
type lineReader struct {
	br  *bufio.Reader
	buf []byte
}

// next returns the next line without its end; a line longer than maxLine
// is read past and reported as too long. After the last line: io.EOF.
func (lr *lineReader) next() (string, bool, error) {
	lr.buf = lr.buf[:0]
	tooLong, got := false, false
	add := func(b []byte) {
		if tooLong || len(lr.buf)+len(b) > maxLine {
			tooLong = true
			return
		}
		lr.buf = append(lr.buf, b...)
	}
	for {
		if _, err := lr.br.Peek(1); err != nil {
			if errors.Is(err, io.EOF) && got {
				return string(lr.buf), tooLong, nil
			}
			return "", false, err
		}
		got = true
		chunk, _ := lr.br.Peek(lr.br.Buffered())
		i := bytes.IndexAny(chunk, "\r\n")
		if i < 0 {
			add(chunk)
			lr.br.Discard(len(chunk))
			continue
		}
		add(chunk[:i])
		end := chunk[i]
		lr.br.Discard(i + 1)
		if end == '\r' {
			if b, err := lr.br.Peek(1); err == nil && b[0] == '\n' {
				lr.br.Discard(1)
			}
		}
		return string(lr.buf), tooLong, nil
	}
}

// ctxReader ends reading when ctx ends (SIGINT, SIGTERM).
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(b []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(b)
}

func (im *importer) line(ctx context.Context, name string, n int, s string) error {
	im.res.Lines++
	l, err := legacy.Parse(s)
	if err != nil {
		im.refuse(Refusal{File: name, Line: n, Err: err})
		return nil
	}
	if c := legacy.Instants(l.Wall(), im.opt.Zone); c[0].Sub(im.opt.Now()) > im.opt.MaxFuture {
		im.refuse(Refusal{File: name, Line: n, Err: fmt.Errorf("time %s is more than %s ahead of the clock (server.max_future)", c[0].Format(time.RFC3339), im.opt.MaxFuture)})
		return nil
	}
	t, ticket, err := im.rsv.Resolve(ctx, im.opt.Source, im.opt.Zone, l)
	if err != nil {
		return fmt.Errorf("import: %s:%d: %w", name, n, err)
	}
	r := ingest.Reading(l, t)
	if im.opt.Threshold > 0 && math.Abs(r.Power) < im.opt.Threshold {
		r.Power = 0
	}
	im.opt.Fields.Place(&r)
	im.batch = append(im.batch, r)
	im.tickets = append(im.tickets, ticket)
	if len(im.batch) >= im.opt.BatchSize {
		return im.flush(ctx)
	}
	return nil
}

func (im *importer) flush(ctx context.Context) error {
	if len(im.batch) == 0 {
		return nil
	}
	defer func() {
		for _, t := range im.tickets {
			t.Done()
		}
		im.batch, im.tickets = im.batch[:0], im.tickets[:0]
	}()
	r, err := im.st.Insert(ctx, im.opt.Source, im.batch)
	if err != nil {
		return fmt.Errorf("import: storing %d readings: %w", len(im.batch), err)
	}
	im.res.Imported += r.Inserted
	im.res.Present += r.Present
	if r.Present > 0 {
		idx, err := store.Conflicts(ctx, im.st, im.opt.Source, im.batch)
		if err != nil {
			return fmt.Errorf("import: %w", err)
		}
		im.res.Conflicts += len(idx)
		im.res.Present -= len(idx)
	}
	return nil
}

func (im *importer) refuse(r Refusal) {
	im.res.Refused++
	if im.opt.OnRefuse != nil {
		im.opt.OnRefuse(r)
	}
}

type progressReader struct {
	r  io.Reader
	fn func(int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if p.fn != nil && n > 0 {
		p.fn(int64(n))
	}
	return n, err
}
