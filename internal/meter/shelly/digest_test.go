package shelly

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestParseChallenge(t *testing.T) {
	for _, c := range []struct {
		name   string
		values []string
		want   challenge
	}{
		{"documented", []string{`Digest qop="auth", realm="shellyplus1pm-44179394d4d4", nonce="603", algorithm=SHA-256`},
			challenge{realm: "shellyplus1pm-44179394d4d4", nonce: "603", algorithm: "SHA-256", qopAuth: true}},
		{"base64 nonce quoted, stale", []string{`Digest qop="auth", realm="shellypro3em-aabb", nonce="Zm9vYmFyYmF6cXV4MTIzNA==", algorithm=SHA-256, stale=true`},
			challenge{realm: "shellypro3em-aabb", nonce: "Zm9vYmFyYmF6cXV4MTIzNA==", algorithm: "SHA-256", qopAuth: true, stale: true}},
		{"base64 nonce bare", []string{`Digest realm="r", nonce=YWJjZGVmZ2hpams=, algorithm=SHA-256, qop="auth,auth-int", stale=TRUE`},
			challenge{realm: "r", nonce: "YWJjZGVmZ2hpams=", algorithm: "SHA-256", qopAuth: true, stale: true}},
		{"bare nonce last", []string{`Digest realm="r",algorithm=SHA-256,qop="auth",nonce=YWI=`},
			challenge{realm: "r", nonce: "YWI=", algorithm: "SHA-256", qopAuth: true}},
		{"escaped quote, opaque, no qop", []string{`Digest realm="a \"b\" c", nonce="n=1=2", opaque="o,p"`},
			challenge{realm: `a "b" c`, nonce: "n=1=2", opaque: "o,p"}},
		{"basic first", []string{`Basic realm="x"`, `digest realm="y", nonce="z", algorithm=sha-256, qop=auth`},
			challenge{realm: "y", nonce: "z", algorithm: "sha-256", qopAuth: true}},
	} {
		got, err := parseChallenge(c.values)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if got != c.want {
			t.Errorf("%s:\n got %+v\nwant %+v", c.name, got, c.want)
		}
	}
	for _, bad := range [][]string{
		nil,
		{`Basic realm="x"`},
		{`Digest realm="x", algorithm=SHA-256`},
		{`Digest realm="x", nonce="abc`},
		{`Digest realm="x", nonce="n", algorithm=SHA-512-256`},
		{`Digest realm`},
	} {
		if c, err := parseChallenge(bad); err == nil {
			t.Errorf("parseChallenge(%q) = %+v, want an error", bad, c)
		}
	}
}

// RFC 7616 section 3.9.1 example.
func TestDigestResponseRFC7616(t *testing.T) {
	args := []string{"Mufasa", "http-auth@example.org", "Circle of Life", "GET", "/dir/index.html",
		"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", "00000001", "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", "auth"}
	if got := digestResponse(algSHA256, args[0], args[1], args[2], args[3], args[4], args[5], args[6], args[7], args[8]); got != "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1" {
		t.Errorf("SHA-256 response %s", got)
	}
	if got := digestResponse(algMD5, args[0], args[1], args[2], args[3], args[4], args[5], args[6], args[7], args[8]); got != "8ca523f5e9506fed4657c9700eebdbec" {
		t.Errorf("MD5 response %s", got)
	}
}

// The client's header is accepted by the emulator's check, nc counts up,
// and a replayed nc is refused.
func TestDigestRoundTrip(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	srv := newDigestServer("shellyplusplugs-aabbccddeeff", "", "pass€word", EmulatorConfig{NonceTTL: time.Hour, NonceUses: 4}, func() time.Time { return now })
	w := httptest.NewRecorder()
	srv.challenge(w, false)
	ch, err := parseChallenge(w.Result().Header.Values("WWW-Authenticate"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(ch.nonce, "=") || len(ch.nonce) < 20 {
		t.Errorf("nonce %q: want firmware 2.x style base64 ending in '='", ch.nonce)
	}
	cl := digestClient{user: "admin", pass: "pass€word"}
	if err := cl.accept(ch); err != nil {
		t.Fatal(err)
	}
	var last string
	for i := 1; i <= 3; i++ {
		h, err := cl.authorization("GET", "/rpc/Shelly.GetStatus?x=1")
		if err != nil {
			t.Fatal(err)
		}
		if want := "nc=0000000" + string(rune('0'+i)); !strings.Contains(h, want) {
			t.Errorf("request %d: %s lacks %s", i, h, want)
		}
		req := httptest.NewRequest("GET", "/rpc/Shelly.GetStatus?x=1", nil)
		req.Header.Set("Authorization", h)
		if ok, stale := srv.check(req); !ok || stale {
			t.Errorf("request %d refused (stale %v): %s", i, stale, h)
		}
		last = h
	}
	// replay of nc 3
	req := httptest.NewRequest("GET", "/rpc/Shelly.GetStatus?x=1", nil)
	req.Header.Set("Authorization", last)
	if ok, _ := srv.check(req); ok {
		t.Error("replayed nc accepted")
	}
	// 4th use is fine, the 5th of a nonce good for 4 is stale
	h, _ := cl.authorization("GET", "/rpc/Shelly.GetStatus?x=1")
	req.Header.Set("Authorization", h)
	if ok, stale := srv.check(req); !ok || stale {
		t.Errorf("4th use: ok %v stale %v", ok, stale)
	}
	h, _ = cl.authorization("GET", "/rpc/Shelly.GetStatus?x=1")
	req.Header.Set("Authorization", h)
	if ok, stale := srv.check(req); ok || !stale {
		t.Errorf("worn-out nonce: ok %v stale %v, want stale", ok, stale)
	}
	// wrong password is never stale
	bad := digestClient{user: "admin", pass: "wrong"}
	bad.accept(ch)
	h, _ = bad.authorization("GET", "/rpc/Shelly.GetStatus?x=1")
	req.Header.Set("Authorization", h)
	if ok, stale := srv.check(req); ok || stale {
		t.Errorf("wrong password: ok %v stale %v", ok, stale)
	}
	// another URI than the one signed
	h, _ = cl.authorization("GET", "/rpc/Shelly.GetStatus?x=1")
	req = httptest.NewRequest("GET", "/rpc/Switch.GetStatus?id=0", nil)
	req.Header.Set("Authorization", h)
	if ok, _ := srv.check(req); ok {
		t.Error("credentials for another URI accepted")
	}
	// Basic is refused
	req.SetBasicAuth("admin", "pass€word")
	if ok, _ := srv.check(req); ok {
		t.Error("Basic auth accepted")
	}
}
