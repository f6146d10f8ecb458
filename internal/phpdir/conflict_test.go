package phpdir

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestImportCountsConflicts: a line for a second that holds another value
// already keeps the first and is counted as a conflict, not as present
// (issue 9, item 9).
func TestImportCountsConflicts(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	first, second := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(first, "2026-11-26.csv"), []byte("26.11.2026,12:00:00,5.00\n26.11.2026,12:00:10,6.00\n"), 0o644)
	os.WriteFile(filepath.Join(second, "2026-11-26.csv"), []byte("26.11.2026,12:00:00,7.00\n26.11.2026,12:00:10,6.00\n26.11.2026,12:00:20,8.00\n"), 0o644)
	if res, err := Import(ctx, st, first, ImportOptions{Source: "home", Zone: berlin}); err != nil || res.Imported != 2 {
		t.Fatalf("first import: %+v %v", res, err)
	}
	res, err := Import(ctx, st, second, ImportOptions{Source: "home", Zone: berlin})
	if err != nil || res.Imported != 1 || res.Present != 1 || res.Conflicts != 1 {
		t.Fatalf("second import: %+v %v, want 1 imported, 1 present, 1 conflict", res, err)
	}
}

// TestImportRefusesFutureLines: a line from a clock glitch (2106) is
// refused like the receiver refuses it (issue 9, item 4).
func TestImportRefusesFutureLines(t *testing.T) {
	st := openStore(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "2026-11-26.csv"), []byte("26.11.2026,12:00:00,5.00\n07.02.2106,07:28:15,6.00\n"), 0o644)
	var refused []Refusal
	now := func() time.Time { return time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC) }
	res, err := Import(context.Background(), st, dir, ImportOptions{Source: "home", Zone: berlin, Now: now, OnRefuse: func(r Refusal) { refused = append(refused, r) }})
	if err != nil || res.Imported != 1 || res.Refused != 1 || len(refused) != 1 || refused[0].Line != 2 || !strings.Contains(refused[0].Err.Error(), "max_future") {
		t.Fatalf("%+v %v %v", res, err, refused)
	}
}
