package meter

import (
	"sort"
	"strings"
	"unicode"
)

// Slug turns a name a device gives itself ("Kühlschrank", "Balkon Süd #2")
// into a device name for readings: lower case, umlauts spelt out (ü → ue,
// ß → ss), every other run of characters outside a–z and 0–9 one '-', at
// most 48 bytes. "" when nothing is left.
func Slug(name string) string {
	var b strings.Builder
	dash := false
	put := func(s string) {
		if dash && b.Len() > 0 {
			b.WriteByte('-')
		}
		dash = false
		b.WriteString(s)
	}
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			put(string(r))
		case r == 'ä':
			put("ae")
		case r == 'ö':
			put("oe")
		case r == 'ü':
			put("ue")
		case r == 'ß':
			put("ss")
		case r == 'é' || r == 'è' || r == 'ê':
			put("e")
		case r == 'á' || r == 'à' || r == 'â':
			put("a")
		case unicode.IsLetter(r) || unicode.IsDigit(r) || r == ' ' || unicode.IsPunct(r) || unicode.IsSymbol(r):
			dash = true
		default:
			dash = true
		}
	}
	s := b.String()
	if len(s) > 48 {
		s = strings.TrimRight(s[:48], "-")
	}
	return s
}

// NamedDevice is a device's stable id (AIN, channel, serial) and the name
// the device or its hub gives it.
type NamedDevice struct{ ID, Name string }

// DeviceSlugs names each device after its own name (Slug), stable from
// round to round: a device without a usable name is called by its id, and
// devices whose names give the same slug are all called slug-id, so that
// which one comes first (or a device joining later) never renames another.
// ids are used as given apart from Slug-like cleaning.
func DeviceSlugs(devs []NamedDevice) map[string]string {
	slugs := make(map[string]string, len(devs))
	count := map[string]int{}
	for _, d := range devs {
		s := Slug(d.Name)
		slugs[d.ID] = s
		if s != "" {
			count[s]++
		}
	}
	out := make(map[string]string, len(devs))
	ids := make([]string, 0, len(devs))
	for _, d := range devs {
		ids = append(ids, d.ID)
	}
	sort.Strings(ids)
	for _, id := range ids {
		s := slugs[id]
		idSlug := Slug(id)
		if idSlug == "" {
			idSlug = "device"
		}
		switch {
		case s == "":
			out[id] = idSlug
		case count[s] > 1:
			out[id] = s + "-" + idSlug
		default:
			out[id] = s
		}
	}
	// a name that happens to equal another device's id-based name
	seen := map[string]string{}
	for _, id := range ids {
		n := out[id]
		if other, dup := seen[n]; dup && other != id {
			out[id] = n + "-" + Slug(id)
		}
		seen[out[id]] = id
	}
	return out
}
