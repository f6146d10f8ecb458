package logger

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"
)

// ntpEpochOffset is the seconds from 1900-01-01 (NTP) to 1970-01-01 (Unix).
const ntpEpochOffset = 2208988800

func toNTP(t time.Time) uint64 {
	secs := uint64(t.Unix() + ntpEpochOffset)
	frac := uint64(t.Nanosecond()) << 32 / 1e9
	return secs<<32 | frac
}

func fromNTP(v uint64) time.Time {
	secs := int64(v>>32) - ntpEpochOffset
	nanos := (v & 0xffffffff) * 1e9 >> 32
	return time.Unix(secs, int64(nanos)).UTC()
}

// NTPResult is one SNTP exchange.
type NTPResult struct {
	// Offset is how far the local clock is behind the server (add it to
	// local time to get the server's time).
	Offset time.Duration
	RTT    time.Duration
}

// QueryNTP asks an NTP server (host or host:port, default port 123) once,
// SNTP style (RFC 4330), and computes the local clock's offset. now is the
// local clock.
func QueryNTP(ctx context.Context, server string, now func() time.Time) (NTPResult, error) {
	if _, _, err := net.SplitHostPort(server); err != nil {
		server = net.JoinHostPort(server, "123")
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", server)
	if err != nil {
		return NTPResult{}, fmt.Errorf("ntp %s: %w", server, err)
	}
	defer conn.Close()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(5 * time.Second)
	}
	_ = conn.SetDeadline(deadline)

	var req [48]byte
	req[0] = 0<<6 | 4<<3 | 3 // no leap warning, version 4, client
	t1 := now()
	xmit := toNTP(t1)
	binary.BigEndian.PutUint64(req[40:], xmit)
	if _, err := conn.Write(req[:]); err != nil {
		return NTPResult{}, fmt.Errorf("ntp %s: send: %w", server, err)
	}
	var resp [48]byte
	for {
		n, err := conn.Read(resp[:])
		if err != nil {
			return NTPResult{}, fmt.Errorf("ntp %s: no answer: %w", server, err)
		}
		t4 := now()
		if n < 48 || binary.BigEndian.Uint64(resp[24:]) != xmit {
			continue // not the answer to our request
		}
		mode := resp[0] & 7
		stratum := resp[1]
		if mode != 4 && mode != 5 {
			return NTPResult{}, fmt.Errorf("ntp %s: answer in mode %d, want server", server, mode)
		}
		if stratum == 0 {
			return NTPResult{}, errors.New("ntp " + server + ": kiss-o'-death " + string(resp[12:16]))
		}
		if resp[0]>>6 == 3 {
			return NTPResult{}, fmt.Errorf("ntp %s: server clock not synchronised", server)
		}
		t2 := fromNTP(binary.BigEndian.Uint64(resp[32:]))
		t3 := fromNTP(binary.BigEndian.Uint64(resp[40:]))
		offset := (t2.Sub(t1) + t3.Sub(t4)) / 2
		rtt := t4.Sub(t1) - t3.Sub(t2)
		return NTPResult{Offset: offset, RTT: rtt}, nil
	}
}
