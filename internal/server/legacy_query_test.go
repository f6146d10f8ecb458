package server

import (
	"net/url"
	"testing"
)

// legacyQuery must take and refuse exactly what url.ParseQuery does.
func TestLegacyQueryMatchesParseQuery(t *testing.T) {
	queries := []string{
		"",
		"key=abc&stats=26.11.2026,12:00:00,123.45,21.5",
		"stats=26.11.2026,12:00:00,1&key=k",
		"key=a&key=b&stats=x&stats=y",
		"key=&stats=",
		"key&stats",
		"stats=26.11.2026%2C12%3A00%3A00%2C1",
		"stats=a+b&key=c+d",
		"key=%zz&stats=1",
		"key=k&stats=%",
		"%zz=1&key=k&stats=s",
		"key=k;stats=s",
		"key=k&stats=s;x",
		"&&key=k&&stats=s&&",
		"=&=x&key=k",
		"key=k&stats=s&buffer=1",
		"a=1&b=2&c=3&d=4&e=5&f=6&g=7&h=8&key=k&stats=s",
		"a=1&b=2&c=3&d=4&e=5&f=6&g=7&h=8&key=%zz&stats=s",
		"KEY=k&Stats=s",
		"key=k%26x&stats=s%3Dt",
	}
	for _, q := range queries {
		key, stats, err := legacyQuery(q)
		v, werr := url.ParseQuery(q)
		if (err != nil) != (werr != nil) || (err != nil && err.Error() != werr.Error()) {
			t.Errorf("%q: error %v, url.ParseQuery: %v", q, err, werr)
			continue
		}
		if err != nil {
			continue
		}
		if key != v.Get("key") || stats != v.Get("stats") {
			t.Errorf("%q: key %q stats %q, want %q %q", q, key, stats, v.Get("key"), v.Get("stats"))
		}
	}
}

func FuzzLegacyQuery(f *testing.F) {
	f.Add("key=k&stats=26.11.2026,12:00:00,1")
	f.Add("key=%zz;x=1&stats")
	f.Fuzz(func(t *testing.T, q string) {
		key, stats, err := legacyQuery(q)
		v, werr := url.ParseQuery(q)
		if (err == nil) != (werr == nil) {
			t.Fatalf("%q: error %v, url.ParseQuery: %v", q, err, werr)
		}
		if err != nil {
			if err.Error() != werr.Error() {
				t.Fatalf("%q: error %v, url.ParseQuery: %v", q, err, werr)
			}
			return
		}
		if key != v.Get("key") || stats != v.Get("stats") {
			t.Fatalf("%q: key %q stats %q, want %q %q", q, key, stats, v.Get("key"), v.Get("stats"))
		}
	})
}
