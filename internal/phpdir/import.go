package phpdir

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

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
}

// Refusal is a line Import did not take.
type Refusal struct {
	File string
	Line int
	Err  error
}

func (r Refusal) String() string { return fmt.Sprintf("%s:%d: %v", r.File, r.Line, r.Err) }

// ImportResult counts what Import did.
type ImportResult struct {
	Files    int
	Lines    int // non-empty lines read
	Imported int // new readings
	Present  int // readings stored already
	Refused  int // lines refused (see OnRefuse)
}

// Files lists the .csv and .csv.gz files of dir in name order and their
// total size.
func Files(dir string) ([]string, int64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, 0, fmt.Errorf("reading the folder %s: %w", dir, err)
	}
	var names []string
	var total int64
	for _, e := range ents {
		n := e.Name()
		if e.IsDir() || strings.HasPrefix(n, ".") || !(strings.HasSuffix(n, ".csv") || strings.HasSuffix(n, ".csv.gz")) {
			continue
		}
		if info, err := e.Info(); err == nil {
			total += info.Size()
		}
		names = append(names, n)
	}
	sort.Strings(names)
	return names, total, nil
}

// Import reads the PHP data folder dir into the store under opt.Source (which
// must be registered): every .csv and .csv.gz file in name order, every line
// through legacy.Parse and the receiver's time rules (the doubled autumn
// hour in order, spring-gap times accepted). It is idempotent: lines stored
// already count as present. Refused lines are reported with file:line and
// do not stop the import; an I/O or store error does.
func Import(ctx context.Context, st store.Store, dir string, opt ImportOptions) (ImportResult, error) {
	var res ImportResult
	if opt.Zone == nil {
		return res, errors.New("import: no time zone")
	}
	if opt.BatchSize <= 0 {
		opt.BatchSize = 5000
	}
	names, _, err := Files(dir)
	if err != nil {
		return res, err
	}
	im := &importer{st: st, opt: opt, res: &res, rsv: ingest.NewResolver(st)}
	for _, name := range names {
		if err := im.file(ctx, filepath.Join(dir, name), name); err != nil {
			return res, err
		}
		res.Files++
	}
	if err := im.flush(ctx); err != nil {
		return res, err
	}
	return res, nil
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
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	defer f.Close()
	var src io.Reader = &progressReader{r: f, fn: im.opt.Progress}
	if strings.HasSuffix(name, ".gz") {
		gz, err := gzip.NewReader(src)
		if err != nil {
			return fmt.Errorf("import: %s: %w", name, err)
		}
		defer gz.Close()
		src = gz
	}
	br := bufio.NewReaderSize(src, maxLine)
	for n := 1; ; n++ {
		line, tooLong, err := readLine(br)
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("import: reading %s:%d: %w", name, n, err)
		}
		eof := errors.Is(err, io.EOF)
		line = strings.TrimSuffix(line, "\r")
		switch {
		case tooLong:
			im.refuse(Refusal{File: name, Line: n, Err: fmt.Errorf("line longer than %d bytes", maxLine)})
		case line != "":
			if e := im.line(ctx, name, n, line); e != nil {
				return e
			}
		}
		if eof {
			return nil
		}
	}
}

// readLine reads one line without its newline; a line longer than the
// reader's buffer is skipped and reported as too long.
func readLine(br *bufio.Reader) (string, bool, error) {
	b, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		for errors.Is(err, bufio.ErrBufferFull) {
			_, err = br.ReadSlice('\n')
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return "", true, err
		}
		return "", true, err
	}
	return strings.TrimSuffix(string(b), "\n"), false, err
}

func (im *importer) line(ctx context.Context, name string, n int, s string) error {
	im.res.Lines++
	l, err := legacy.Parse(s)
	if err != nil {
		im.refuse(Refusal{File: name, Line: n, Err: err})
		return nil
	}
	t, ticket, err := im.rsv.Resolve(ctx, im.opt.Source, im.opt.Zone, l)
	if err != nil {
		return fmt.Errorf("import: %s:%d: %w", name, n, err)
	}
	im.batch = append(im.batch, ingest.Reading(l, t))
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
