package scan

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ssdpSearch asks UPnP root devices to answer (the FRITZ!Box is one).
const ssdpSearch = "M-SEARCH * HTTP/1.1\r\n" +
	"HOST: 239.255.255.250:1900\r\n" +
	"MAN: \"ssdp:discover\"\r\n" +
	"MX: 1\r\n" +
	"ST: upnp:rootdevice\r\n\r\n"

// ssdp sends an M-SEARCH and hands on the FRITZ!Boxes that answer (their
// SERVER header names AVM and the model). A box's web interface is on
// port 80 of the LOCATION's host; the LOCATION's own port is tried too
// (it is what an emulator serves on).
func (s *Scanner) ssdp(ctx context.Context, listen time.Duration, found chan<- candidate) {
	dst, err := net.ResolveUDPAddr("udp4", s.SSDP)
	if err != nil {
		return
	}
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4zero})
	if err != nil {
		s.Log.Debug("scan: SSDP socket", "err", err)
		return
	}
	defer conn.Close()
	deadline := time.Now().Add(listen)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	if _, err := conn.WriteToUDP([]byte(ssdpSearch), dst); err != nil {
		s.Log.Debug("scan: SSDP search not sent", "err", err)
		return
	}
	resend := time.AfterFunc(listen/2, func() { conn.WriteToUDP([]byte(ssdpSearch), dst) })
	defer resend.Stop()
	buf := make([]byte, 4096)
	sent := map[string]bool{}
	for {
		n, _, err := conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(buf[:n])), nil)
		if err != nil {
			continue
		}
		resp.Body.Close()
		server := resp.Header.Get("Server")
		if !strings.Contains(server, "FRITZ!Box") && !strings.Contains(server, "AVM") {
			continue
		}
		loc, err := url.Parse(resp.Header.Get("Location"))
		if err != nil || loc.Hostname() == "" {
			continue
		}
		ip, err := netip.ParseAddr(loc.Hostname())
		if err != nil || !Local(ip.Unmap()) {
			continue
		}
		port, _ := strconv.Atoi(loc.Port())
		for _, p := range []int{80, port} {
			base := baseURL(ip.String(), p)
			if base == "" || sent[base] {
				continue
			}
			sent[base] = true
			select {
			case found <- candidate{base: base, via: "ssdp", hint: "fritzbox", model: fritzModel(server)}:
			case <-ctx.Done():
				return
			}
		}
	}
}

// fritzModel takes "FRITZ!Box 7590" out of a SERVER header like
// "FRITZ!Box 7590 UPnP/1.0 AVM FRITZ!Box 7590 154.08.02".
func fritzModel(server string) string {
	i := strings.LastIndex(server, "FRITZ!Box")
	if i < 0 {
		return ""
	}
	f := strings.Fields(server[i:])
	if len(f) >= 2 {
		return f[0] + " " + f[1]
	}
	return f[0]
}
