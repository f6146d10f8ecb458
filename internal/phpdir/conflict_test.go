package phpdir

import (
	"context"
	"os"
	"path/filepath"
	"testing"
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
