package config

import (
	"os"
	"regexp"
	"testing"
)

// TestReadmeConfig keeps the README's example configuration valid.
func TestReadmeConfig(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```toml\n(.*?)```").FindAllSubmatch(readme, -1)
	if len(blocks) == 0 {
		t.Fatal("README.md has no toml example")
	}
	vars := func(string) (string, bool) { return "from-the-environment", true }
	for i, b := range blocks {
		c, err := Parse("README.md", b[1], vars)
		if err != nil {
			t.Errorf("README example %d does not load:\n%v", i+1, err)
			continue
		}
		if i == 0 && (c.Server == nil || len(c.Meters) == 0 || len(c.Uplinks) == 0) {
			t.Errorf("README example %d lost a section: %+v", i+1, c)
		}
	}
}
