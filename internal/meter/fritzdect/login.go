package fritzdect

import (
	"context"
	"crypto/md5"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/powermeter/powermeter/internal/meter"
)

// zeroSID is the SID of "not logged in".
const zeroSID = "0000000000000000"

// maxIterations bounds the PBKDF2 work a box may ask of us (real boxes use
// 60000 + 6000); a larger number is taken as a broken answer.
const maxIterations = 5_000_000

// sessionInfo is the answer of /login_sid.lua.
type sessionInfo struct {
	XMLName   xml.Name `xml:"SessionInfo"`
	SID       string   `xml:"SID"`
	Challenge string   `xml:"Challenge"`
	BlockTime string   `xml:"BlockTime"`
	Rights    struct {
		Names  []string `xml:"Name"`
		Access []string `xml:"Access"`
	} `xml:"Rights"`
	Users []struct {
		Last string `xml:"last,attr"`
		Name string `xml:",chardata"`
	} `xml:"Users>User"`
}

func parseSessionInfo(b []byte) (*sessionInfo, error) {
	var si sessionInfo
	if err := decodeXML(b, &si); err != nil {
		return nil, err
	}
	si.SID = strings.TrimSpace(si.SID)
	si.Challenge = strings.TrimSpace(si.Challenge)
	if si.SID == "" || si.Challenge == "" && si.SID == zeroSID {
		return nil, errors.New("SessionInfo without SID or challenge")
	}
	return &si, nil
}

// blockTime is the BlockTime in seconds (0 when missing or unreadable).
func (si *sessionInfo) blockTime() time.Duration {
	n, err := strconv.Atoi(strings.TrimSpace(si.BlockTime))
	if err != nil || n < 0 {
		return 0
	}
	return time.Duration(n) * time.Second
}

func (si *sessionInfo) loggedIn() bool { return si.SID != zeroSID }

// hasRight reports whether the session carries the named right; known is
// false when the box lists no rights at all.
func (si *sessionInfo) hasRight(name string) (has, known bool) {
	if len(si.Rights.Names) == 0 {
		return false, false
	}
	for i, n := range si.Rights.Names {
		if strings.TrimSpace(n) == name {
			return i >= len(si.Rights.Access) || strings.TrimSpace(si.Rights.Access[i]) != "0", true
		}
	}
	return false, true
}

// lastUser is the user marked last="1" in the box's user list ("" if none).
func (si *sessionInfo) lastUser() string {
	for _, u := range si.Users {
		if u.Last == "1" {
			return strings.TrimSpace(u.Name)
		}
	}
	return ""
}

func (si *sessionInfo) knowsUser(name string) bool {
	for _, u := range si.Users {
		if strings.TrimSpace(u.Name) == name {
			return true
		}
	}
	return false
}

// loginResponse answers a challenge: PBKDF2 for "2$…" challenges, MD5
// otherwise (old boxes ignore version=2 and send an MD5 challenge).
func loginResponse(challenge, password string) (string, error) {
	if strings.HasPrefix(challenge, "2$") {
		return pbkdf2Response(challenge, password)
	}
	return md5Response(challenge, password), nil
}

// md5Response is "<challenge>-<md5 of UTF-16LE(challenge-password)>", with
// every code point above 255 replaced by '.' as the box does.
func md5Response(challenge, password string) string {
	s := challenge + "-" + password
	buf := make([]byte, 0, 2*len(s))
	for _, r := range s {
		if r > 255 {
			r = '.'
		}
		buf = append(buf, byte(r), 0)
	}
	sum := md5.Sum(buf)
	return challenge + "-" + hex.EncodeToString(sum[:])
}

// pbkdf2Response answers a "2$<iter1>$<salt1>$<iter2>$<salt2>" challenge.
func pbkdf2Response(challenge, password string) (string, error) {
	parts := strings.Split(challenge, "$")
	if len(parts) != 5 || parts[0] != "2" {
		return "", fmt.Errorf("PBKDF2 challenge %q: want 2$<iter1>$<salt1>$<iter2>$<salt2>", challenge)
	}
	iter1, err1 := strconv.Atoi(parts[1])
	iter2, err2 := strconv.Atoi(parts[3])
	if err1 != nil || err2 != nil || iter1 < 1 || iter2 < 1 || iter1 > maxIterations || iter2 > maxIterations {
		return "", fmt.Errorf("PBKDF2 challenge %q: bad iteration counts", challenge)
	}
	salt1, err1 := hex.DecodeString(parts[2])
	salt2, err2 := hex.DecodeString(parts[4])
	if err1 != nil || err2 != nil {
		return "", fmt.Errorf("PBKDF2 challenge %q: salts are not hex", challenge)
	}
	h1, err := pbkdf2.Key(sha256.New, password, salt1, iter1, 32)
	if err != nil {
		return "", fmt.Errorf("PBKDF2 round 1: %w", err)
	}
	h2, err := pbkdf2.Key(sha256.New, string(h1), salt2, iter2, 32)
	if err != nil {
		return "", fmt.Errorf("PBKDF2 round 2: %w", err)
	}
	return parts[4] + "$" + hex.EncodeToString(h2), nil
}

// userHint is appended to login errors: where to find the right user name.
const userHint = "FRITZ!OS 7.24 and later need the user name; a box without users of its own creates one like \"fritz1234\", see System > FRITZ!Box Users"

// login gets a new session. It never sends a login while the box blocks
// logins (BlockTime) and records a new block after a refused login.
// Called with b.mu held.
func (b *box) login(ctx context.Context) error {
	now := b.now()
	if now.Before(b.blockedUntil) {
		left := b.blockedUntil.Sub(now).Round(time.Second)
		if left < time.Second {
			left = time.Second
		}
		return &meter.Error{Kind: meter.Blocked, Err: b.blockCause, RetryAfter: left,
			Msg: fmt.Sprintf("FRITZ!Box at %s blocks logins for user %s for another %s; not trying before then", b.host(), b.user, fmtSecs(left))}
	}
	b.sid = ""
	q := url.Values{"version": {"2"}}
	body, err := b.get(ctx, "/login_sid.lua", q)
	if err != nil {
		return err
	}
	si, err := parseSessionInfo(body)
	if err != nil {
		return b.badAnswer(body, err, "login_sid.lua")
	}
	if si.loggedIn() {
		// A box without login protection hands out a session at once.
		b.setSession(si)
		return nil
	}
	if bt := si.blockTime(); bt > 0 {
		b.blockedUntil = b.now().Add(bt)
		b.blockCause = nil
		return &meter.Error{Kind: meter.Blocked, RetryAfter: bt,
			Msg: fmt.Sprintf("FRITZ!Box at %s blocks new logins for %s (after earlier wrong passwords); not trying before then", b.host(), fmtSecs(bt))}
	}
	resp, err := loginResponse(si.Challenge, b.pass)
	if err != nil {
		return meter.Errorf(meter.BadAnswer, err, "FRITZ!Box at %s sent a login challenge we cannot answer", b.host())
	}
	form := url.Values{"username": {b.user}, "response": {resp}}
	body, err = b.post(ctx, "/login_sid.lua", q, form)
	if err != nil {
		return err
	}
	res, err := parseSessionInfo(body)
	if err != nil {
		return b.badAnswer(body, err, "login_sid.lua")
	}
	if !res.loggedIn() {
		return b.refused(si, res)
	}
	b.setSession(res)
	b.log.Debug("fritzdect: logged in", "box", b.host(), "user", b.user, "pbkdf2", strings.HasPrefix(si.Challenge, "2$"))
	return nil
}

func (b *box) setSession(si *sessionInfo) {
	b.sid = si.SID
	b.sidFresh = true
	b.homeAuto, b.rightsKnown = si.hasRight("HomeAuto")
	b.blockedUntil = time.Time{}
	b.blockCause = nil
	b.rightsRetry = time.Time{}
}

// refused builds the error of a refused login and records the block.
func (b *box) refused(challenge, res *sessionInfo) error {
	bt := res.blockTime()
	// A box that refuses without a BlockTime still must not be hammered:
	// wait at least one poll interval.
	wait := bt
	if wait < minLoginRetry {
		wait = minLoginRetry
	}
	b.blockedUntil = b.now().Add(wait)
	users := res
	if len(users.Users) == 0 {
		users = challenge
	}
	var hint string
	switch {
	case len(users.Users) > 0 && !users.knowsUser(b.user):
		hint = fmt.Sprintf("the box has no user %q", b.user)
		if last := users.lastUser(); last != "" {
			hint += fmt.Sprintf("; the user last logged in is %q", last)
		}
	case len(users.Users) > 0 && users.lastUser() != "" && users.lastUser() != b.user:
		hint = fmt.Sprintf("wrong password (the user last logged in is %q)", users.lastUser())
	default:
		hint = "wrong password"
	}
	msg := fmt.Sprintf("FRITZ!Box refused the login for user %s: %s", b.user, hint)
	if bt > 0 {
		msg += fmt.Sprintf("; it blocks new logins for %s", fmtSecs(bt))
	}
	b.blockCause = &meter.Error{Kind: meter.Auth, Msg: msg}
	return &meter.Error{Kind: meter.Auth, RetryAfter: bt, Msg: msg + " (check username and password; " + userHint + ")"}
}

// logout ends the session (called with b.mu held).
func (b *box) logout(ctx context.Context) error {
	if b.sid == "" {
		return nil
	}
	sid := b.sid
	b.sid = ""
	_, err := b.get(ctx, "/login_sid.lua", url.Values{"logout": {"1"}, "sid": {sid}})
	return err
}

func fmtSecs(d time.Duration) string {
	return strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10) + " s"
}
