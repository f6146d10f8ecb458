package server

import (
	"context"

	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/store"
)

// conflictMsg is what a conflicting reading is told.
const conflictMsg = "conflict: a different reading of this device and second is stored; the first was kept"

// conflicts finds the readings of rs that the store already holds with
// other values (after an Insert that found some present). A failure to
// compare is logged and counts as none: the readings are stored either way.
func (s *Server) conflicts(ctx context.Context, source string, rs []reading.Reading, res store.InsertResult) []int {
	if res.Present == 0 {
		return nil
	}
	idx, err := store.Conflicts(ctx, s.st, source, rs)
	if err != nil {
		s.storeErr("checking readings already present for conflicts", err, "source", source)
		return nil
	}
	return idx
}

// countInsert counts what an insert did, conflicts apart from the present.
func (s *Server) countInsert(source, protocol string, res store.InsertResult, conflicts int) {
	s.met.countIngest(source, protocol, res.Inserted, res.Present-conflicts)
	if conflicts > 0 {
		s.met.conflicts.WithLabelValues(source, protocol).Add(float64(conflicts))
	}
}

// nativeAnswer is the answer to a stored batch: 200 with the counts; when
// some readings conflict with what is stored, "conflicts" counts them and
// "items" names each (index, field "time").
type nativeAnswer struct {
	Inserted  int         `json:"inserted"`
	Present   int         `json:"present"`
	Conflicts int         `json:"conflicts,omitempty"`
	Warning   string      `json:"warning,omitempty"`
	Items     []itemError `json:"items,omitempty"`
}

func newNativeAnswer(res store.InsertResult, conflicts []int) nativeAnswer {
	a := nativeAnswer{Inserted: res.Inserted, Present: res.Present - len(conflicts), Conflicts: len(conflicts)}
	if len(conflicts) > 0 {
		a.Warning = "some readings were not stored: " + conflictMsg
		for i, ix := range conflicts {
			if i == maxItemErrors {
				break
			}
			a.Items = append(a.Items, itemError{Index: ix, Field: "time", Error: conflictMsg})
		}
	}
	return a
}
