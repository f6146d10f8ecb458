package store

import (
	"context"
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	cases := map[string]string{
		"postgres://pm:s3cret@db.example/pm?sslmode=require": "postgres://pm:xxx@db.example/pm?sslmode=require",
		"postgres://pm@db.example/pm?password=s3cret":        "postgres://pm@db.example/pm?password=xxx",
		"sqlite:///var/lib/powermeter/pm.db":                 "sqlite:///var/lib/powermeter/pm.db",
	}
	for in, want := range cases {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestOpenUnknownScheme(t *testing.T) {
	_, err := Open(context.Background(), "mysql://u:s3cret@h/db")
	if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "no backend") {
		t.Errorf("Open of an unknown scheme: %v", err)
	}
}
