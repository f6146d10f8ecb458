// Package csvsafe keeps CSV downloads harmless when opened in a
// spreadsheet: text fields that a spreadsheet would run as a formula are
// defused, and download file names are kept to safe characters.
package csvsafe

import "strings"

// Text returns s with a leading apostrophe when it starts with a character
// a spreadsheet reads as the start of a formula (= + - @, tab, carriage
// return); other text is returned as is. Use it for text such as device
// names, never for numbers (-12.5 is a number).
func Text(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// Field is Text, quoted for a CSV line when it holds a comma, a quote or a
// line break; for writers that do not quote themselves.
func Field(s string) string {
	s = Text(s)
	if strings.ContainsAny(s, ",\"\n\r") {
		return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
	}
	return s
}

// Filename returns a Content-Disposition value that offers name as an
// attachment; characters other than printable ASCII, quotes, backslashes,
// slashes and colons become '_'.
func Filename(name string) string {
	name = strings.Map(func(c rune) rune {
		if c == '"' || c == '\\' || c == '/' || c == ':' || c == ';' || c < ' ' || c > '~' {
			return '_'
		}
		return c
	}, name)
	return `attachment; filename="` + name + `"`
}
