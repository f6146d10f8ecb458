package csvsafe

import "testing"

func TestText(t *testing.T) {
	for in, want := range map[string]string{
		"":           "",
		"grid":       "grid",
		"=cmd|x":     "'=cmd|x",
		"+1":         "'+1",
		"-x":         "'-x",
		"@SUM(A1)":   "'@SUM(A1)",
		"\tx":        "'\tx",
		"\rx":        "'\rx",
		"a=b":        "a=b",
		"Küche 1":    "Küche 1",
		"'already":   "'already",
		" =spaced":   " =spaced",
		"12.5":       "12.5",
		"plug,1":     "plug,1",
		"say \"hi\"": "say \"hi\"",
	} {
		if got := Text(in); got != want {
			t.Errorf("Text(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestField(t *testing.T) {
	for in, want := range map[string]string{
		"grid":      "grid",
		"=a,b":      `"'=a,b"`,
		"plug,1":    `"plug,1"`,
		`say "hi"`:  `"say ""hi"""`,
		"two\nline": "\"two\nline\"",
		"-1":        "'-1",
	} {
		if got := Field(in); got != want {
			t.Errorf("Field(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFilename(t *testing.T) {
	for in, want := range map[string]string{
		"home.csv":                 `attachment; filename="home.csv"`,
		`a"; filename="evil.exe`:   `attachment; filename="a__ filename=_evil.exe"`,
		"x\r\nSet-Cookie: a=b.csv": `attachment; filename="x__Set-Cookie_ a=b.csv"`,
		"../../etc/passwd":         `attachment; filename=".._.._etc_passwd"`,
		"Küche.csv":                `attachment; filename="K_che.csv"`,
		`back\slash`:               `attachment; filename="back_slash"`,
	} {
		if got := Filename(in); got != want {
			t.Errorf("Filename(%q) = %q, want %q", in, got, want)
		}
	}
}
