package shelly

import (
	"crypto/md5" //nolint:gosec // RFC 7616 MD5 digest, only when a device asks for it
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// HTTP Digest authentication (RFC 7616) as Shelly Gen2+ devices speak it:
// SHA-256, qop "auth", user "admin", realm = the device id. Firmware 2.x
// sends long base64 nonces that end in '=', so every header field is split
// at its first '=' only.

// challenge is a parsed `WWW-Authenticate: Digest …` header.
type challenge struct {
	realm, nonce, opaque, algorithm string
	qopAuth                         bool // the server offers qop "auth"
	stale                           bool
}

// eachParam calls fn for every `key=value` field of an auth header's
// parameter list. Values may be quoted ("…" with \-escapes) or bare; the key
// ends at the field's first '='.
func eachParam(s string, fn func(key, val string)) error {
	for {
		s = strings.TrimLeft(s, " \t,")
		if s == "" {
			return nil
		}
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return fmt.Errorf("field %q has no '='", truncate(s, 40))
		}
		key := strings.ToLower(strings.TrimSpace(s[:eq]))
		s = strings.TrimLeft(s[eq+1:], " \t")
		var val string
		if strings.HasPrefix(s, `"`) {
			end, esc := -1, false
			for i := 1; i < len(s); i++ {
				if s[i] == '\\' {
					esc = true
					i++
					continue
				}
				if s[i] == '"' {
					end = i
					break
				}
			}
			if end < 0 {
				return fmt.Errorf("field %q: quoted value not closed", key)
			}
			val = s[1:end]
			if esc {
				val = unescape(val)
			}
			s = s[end+1:]
		} else {
			comma := strings.IndexByte(s, ',')
			if comma < 0 {
				comma = len(s)
			}
			val = strings.TrimSpace(s[:comma])
			s = s[comma:]
		}
		fn(key, val)
	}
}

func unescape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// cutScheme splits "Digest realm=…" into the scheme and its parameters.
func cutScheme(h string) (scheme, params string) {
	h = strings.TrimSpace(h)
	i := strings.IndexAny(h, " \t")
	if i < 0 {
		return h, ""
	}
	return h[:i], h[i+1:]
}

// parseChallenge picks the Digest challenge out of the WWW-Authenticate
// header values of a 401 answer.
func parseChallenge(values []string) (challenge, error) {
	for _, v := range values {
		scheme, params := cutScheme(v)
		if !strings.EqualFold(scheme, "Digest") {
			continue
		}
		var c challenge
		err := eachParam(params, func(k, v string) {
			switch k {
			case "realm":
				c.realm = v
			case "nonce":
				c.nonce = v
			case "opaque":
				c.opaque = v
			case "algorithm":
				c.algorithm = v
			case "stale":
				c.stale = strings.EqualFold(v, "true")
			case "qop":
				for _, q := range strings.Split(v, ",") {
					if strings.TrimSpace(q) == "auth" {
						c.qopAuth = true
					}
				}
			}
		})
		if err != nil {
			return challenge{}, fmt.Errorf("digest challenge %q: %w", truncate(v, 120), err)
		}
		if c.nonce == "" {
			return challenge{}, fmt.Errorf("digest challenge %q has no nonce", truncate(v, 120))
		}
		if _, err := parseAlgo(c.algorithm); err != nil {
			return challenge{}, err
		}
		return c, nil
	}
	if len(values) == 0 {
		return challenge{}, errors.New("no WWW-Authenticate header")
	}
	return challenge{}, fmt.Errorf("no Digest challenge in WWW-Authenticate %q", truncate(strings.Join(values, "; "), 120))
}

// algo is a digest algorithm.
type algo uint8

const (
	algMD5 algo = iota + 1
	algSHA256
)

// parseAlgo maps the algorithm parameter (absent = MD5, RFC 7616).
func parseAlgo(s string) (algo, error) {
	switch strings.ToUpper(s) {
	case "SHA-256":
		return algSHA256, nil
	case "", "MD5":
		return algMD5, nil
	}
	return 0, fmt.Errorf("digest algorithm %q is not supported (want SHA-256)", s)
}

// hexSum appends hex(H(data)) to dst.
func (a algo) hexSum(dst, data []byte) []byte {
	if a == algMD5 {
		sum := md5.Sum(data) //nolint:gosec // the device asked for MD5
		return hex.AppendEncode(dst, sum[:])
	}
	sum := sha256.Sum256(data)
	return hex.AppendEncode(dst, sum[:])
}

// hexHash returns hex(H(p0:p1:…)).
func (a algo) hexHash(parts ...string) string {
	var buf [256]byte
	b := buf[:0]
	for i, p := range parts {
		if i > 0 {
			b = append(b, ':')
		}
		b = append(b, p...)
	}
	var out [2 * sha256.Size]byte
	return string(a.hexSum(out[:0], b))
}

// digestResponse computes the response field. qop is "auth" or "" (RFC 2069).
func digestResponse(a algo, user, realm, pass, method, uri, nonce, nc, cnonce, qop string) string {
	ha1 := a.hexHash(user, realm, pass)
	ha2 := a.hexHash(method, uri)
	if qop == "" {
		return a.hexHash(ha1, nonce, ha2)
	}
	return a.hexHash(ha1, nonce, nc, cnonce, qop, ha2)
}

// digestClient holds the nonce a device gave us and counts its uses, so
// requests after the first carry credentials right away (preemptive).
// Its user serializes access (Meter.mu).
type digestClient struct {
	user, pass string
	ch         challenge
	alg        algo
	ha1        string // H(user:realm:password), kept per challenge
	nc         uint32
	// fresh is set while the nonce has not yet been used successfully: a
	// plain 401 on it means the password is wrong.
	fresh bool
}

func (d *digestClient) has() bool { return d.ch.nonce != "" }

func (d *digestClient) reset() {
	d.ch, d.alg, d.ha1, d.nc, d.fresh = challenge{}, 0, "", 0, false
}

// accept takes a new challenge; nc starts over at 1.
func (d *digestClient) accept(c challenge) error {
	a, err := parseAlgo(c.algorithm)
	if err != nil {
		return err
	}
	if a != d.alg || c.realm != d.ch.realm || d.ha1 == "" {
		d.ha1 = a.hexHash(d.user, c.realm, d.pass)
	}
	d.ch, d.alg, d.nc, d.fresh = c, a, 0, true
	return nil
}

// authorization builds the Authorization header for one request.
func (d *digestClient) authorization(method, uri string) (string, error) {
	d.nc++
	var ncb [8]byte
	for i, v := 7, d.nc; i >= 0; i, v = i-1, v>>4 {
		ncb[i] = "0123456789abcdef"[v&0xf]
	}
	var raw [8]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("digest cnonce: %w", err)
	}
	var cnb [16]byte
	hex.Encode(cnb[:], raw[:])

	var buf [512]byte
	var ha2b, respb [2 * sha256.Size]byte
	b := append(append(append(buf[:0], method...), ':'), uri...)
	ha2 := d.alg.hexSum(ha2b[:0], b)
	b = append(append(buf[:0], d.ha1...), ':')
	b = append(append(b, d.ch.nonce...), ':')
	if d.ch.qopAuth {
		b = append(append(b, ncb[:]...), ':')
		b = append(append(b, cnb[:]...), ':')
		b = append(b, "auth:"...)
	}
	resp := d.alg.hexSum(respb[:0], append(b, ha2...))

	var h strings.Builder
	h.Grow(200 + len(d.user) + len(d.ch.realm) + len(d.ch.nonce) + len(uri) + len(d.ch.opaque))
	h.WriteString(`Digest username=`)
	writeQuoted(&h, d.user)
	h.WriteString(`, realm=`)
	writeQuoted(&h, d.ch.realm)
	h.WriteString(`, nonce=`)
	writeQuoted(&h, d.ch.nonce)
	h.WriteString(`, uri=`)
	writeQuoted(&h, uri)
	h.WriteString(`, response="`)
	h.Write(resp)
	h.WriteByte('"')
	if d.ch.algorithm != "" {
		h.WriteString(`, algorithm=`)
		h.WriteString(d.ch.algorithm)
	}
	if d.ch.qopAuth {
		h.WriteString(`, qop=auth, nc=`)
		h.Write(ncb[:])
		h.WriteString(`, cnonce="`)
		h.Write(cnb[:])
		h.WriteByte('"')
	}
	if d.ch.opaque != "" {
		h.WriteString(`, opaque=`)
		writeQuoted(&h, d.ch.opaque)
	}
	return h.String(), nil
}

// writeQuoted writes s as an HTTP quoted-string.
func writeQuoted(b *strings.Builder, s string) {
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
