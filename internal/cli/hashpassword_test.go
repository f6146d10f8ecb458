package cli

import (
	"bytes"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestHashPassword(t *testing.T) {
	var out, errb bytes.Buffer
	code := Main([]string{"hash-password", "--cost", "4", "anna"}, &Env{Stdout: &out, Stderr: &errb, Stdin: strings.NewReader("geheim€\n")})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	name, hash, ok := strings.Cut(strings.TrimSpace(out.String()), ":")
	if !ok || name != "anna" {
		t.Fatalf("output %q", out.String())
	}
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte("geheim€")) != nil {
		t.Error("hash does not match the password")
	}
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte("geheim")) == nil {
		t.Error("hash matches a wrong password")
	}
	for _, args := range [][]string{{"hash-password"}, {"hash-password", "a:b"}, {"hash-password", "--cost", "99", "a"}, {"hash-password", "--bogus", "a"}} {
		code := Main(args, &Env{Stdout: &out, Stderr: &errb, Stdin: strings.NewReader("x\n")})
		if code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}
