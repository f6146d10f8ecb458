package server

import (
	"fmt"
	"testing"

	"github.com/powermeter/powermeter/internal/config"
)

func TestKeyringLookup(t *testing.T) {
	var srcs []config.Source
	for i := range 1000 {
		srcs = append(srcs, config.Source{Name: fmt.Sprintf("home%d", i), Key: fmt.Sprintf("key-%08d", i)})
	}
	k := newKeyring(srcs)
	for _, i := range []int{0, 1, 500, 999} {
		if name, ok := k.lookup(fmt.Sprintf("key-%08d", i)); !ok || name != fmt.Sprintf("home%d", i) {
			t.Errorf("key %d: %q %v", i, name, ok)
		}
	}
	for _, bad := range []string{"", "key-", "key-0000000", "key-000000000", "KEY-00000001", "key-00001000"} {
		if name, ok := k.lookup(bad); ok {
			t.Errorf("%q found source %q", bad, name)
		}
	}
}

func BenchmarkKeyringLookup(b *testing.B) {
	var srcs []config.Source
	for i := range 10000 {
		srcs = append(srcs, config.Source{Name: fmt.Sprintf("home%d", i), Key: fmt.Sprintf("key-%08d", i)})
	}
	k := newKeyring(srcs)
	for b.Loop() {
		if _, ok := k.lookup("key-00009999"); !ok {
			b.Fatal("not found")
		}
	}
}
