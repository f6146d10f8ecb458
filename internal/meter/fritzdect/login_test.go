package fritzdect

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestMD5Vectors(t *testing.T) {
	for _, tc := range []struct{ challenge, password, want string }{
		{"1234567z", "äbc", "1234567z-9e224a41eeefa284df7bb0f26c2913e2"},
		// € is above 255: it goes in as '.', as the box does it.
		{"1234567z", "€uro", "1234567z-4522c7fbe2dff00732eab4aa8db94511"},
		{"1234567z", ".uro", "1234567z-4522c7fbe2dff00732eab4aa8db94511"},
	} {
		if got := md5Response(tc.challenge, tc.password); got != tc.want {
			t.Errorf("md5Response(%q, %q) = %s, want %s", tc.challenge, tc.password, got, tc.want)
		}
		got, err := loginResponse(tc.challenge, tc.password)
		if err != nil || got != tc.want {
			t.Errorf("loginResponse(%q, %q) = %s, %v; want %s", tc.challenge, tc.password, got, err, tc.want)
		}
	}
}

func TestPBKDF2Vectors(t *testing.T) {
	for _, tc := range []struct{ challenge, password, want string }{
		{"2$10000$5A1711$2000$5A1722", "1example!", "5A1722$1798a1672bca7c6463d6b245f82b53703b0f50813401b03e4045a5861e689adb"},
		{"2$10000$a64b986b521fcbc44d7a9f0adad34b14$1000$b9c232dea345233f5a893b2284931ac8", "admin123",
			"b9c232dea345233f5a893b2284931ac8$2825c7fbd8cdbcbaf93ca2e8d0798c31cf38394469a9ce89365778dc9103ad82"},
	} {
		got, err := loginResponse(tc.challenge, tc.password)
		if err != nil || got != tc.want {
			t.Errorf("loginResponse(%q, %q) = %s, %v; want %s", tc.challenge, tc.password, got, err, tc.want)
		}
	}
}

func TestPBKDF2BadChallenges(t *testing.T) {
	for _, c := range []string{
		"2$10000$5A1711$2000",               // too few parts
		"2$x$5A1711$2000$5A1722",            // iterations not a number
		"2$0$5A1711$2000$5A1722",            // zero iterations
		"2$99999999$5A1711$2000$5A1722",     // absurd work
		"2$10000$zz$2000$5A1722",            // salt not hex
		"2$10000$5A1711$2000$5A1722$extra$", // too many parts
	} {
		if r, err := pbkdf2Response(c, "pw"); err == nil {
			t.Errorf("pbkdf2Response(%q) = %q, want an error", c, r)
		}
	}
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseSessionInfo(t *testing.T) {
	si, err := parseSessionInfo(readTestdata(t, "sessioninfo_md5.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if si.loggedIn() || si.Challenge != "5f3a9c21" || si.blockTime() != 0 || len(si.Users) != 0 {
		t.Errorf("md5: %+v", si)
	}
	if _, known := si.hasRight("HomeAuto"); known {
		t.Error("md5: rights known from an empty <Rights>")
	}

	si, err = parseSessionInfo(readTestdata(t, "sessioninfo_pbkdf2_users.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(si.Challenge, "2$60000$") || si.lastUser() != "fritz3456" || !si.knowsUser("admin") || si.knowsUser("fritz0000") {
		t.Errorf("pbkdf2: %+v", si)
	}

	si, err = parseSessionInfo(readTestdata(t, "sessioninfo_loggedin.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if !si.loggedIn() || si.SID != "9a4c1e07d2b83f65" {
		t.Errorf("logged in: %+v", si)
	}
	if has, known := si.hasRight("HomeAuto"); !has || !known {
		t.Errorf("HomeAuto right: has=%v known=%v", has, known)
	}
	if has, known := si.hasRight("NAS"); has || !known {
		t.Errorf("NAS right: has=%v known=%v", has, known)
	}

	si, err = parseSessionInfo(readTestdata(t, "sessioninfo_blocked.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if si.blockTime() != 32*time.Second {
		t.Errorf("blocked: BlockTime %v", si.blockTime())
	}

	for _, bad := range []string{"", "<html><body>login</body></html>", "<SessionInfo><SID></SID></SessionInfo>", "<SessionInfo><SID>0000000000000000</SID><Chal"} {
		if _, err := parseSessionInfo([]byte(bad)); err == nil {
			t.Errorf("parseSessionInfo(%q): no error", bad)
		}
	}
}
