package config

import (
	"os"
	"path/filepath"
	"testing"
)

// TestPackagedConfigs keeps the config files the packages and the image
// ship valid, and runnable as they are.
func TestPackagedConfigs(t *testing.T) {
	files, err := filepath.Glob("../../packaging/*.toml")
	if err != nil || len(files) < 3 {
		t.Fatalf("packaging/*.toml: %v %v", files, err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		c, err := Parse(f, data, func(string) (string, bool) { return "", false })
		if err != nil {
			t.Errorf("%s does not load:\n%v", f, err)
			continue
		}
		if len(c.Warnings) > 0 {
			t.Errorf("%s warns: %v", f, c.Warnings)
		}
		if filepath.Base(f) != "powermeter-logger.toml" && c.Server == nil {
			t.Errorf("%s has no [server]: the service would have nothing to run", f)
		}
	}
}
