// Package scan finds energy meters on the local network for `powermeter
// discover --scan`: it asks mDNS (DNS-SD: _shelly._tcp, _http._tcp) and
// SSDP (a FRITZ!Box's UPnP root device) who is there, adds fritz.box when
// that name resolves to a local address, and probes each answering host
// over HTTP to tell what it is (Shelly, FRITZ!Box, Tasmota, OpenDTU,
// AhoyDTU, ESP-Epever), its model, and whether it needs a password.
//
// Everything is bounded by one timeout, and only private, link-local or
// loopback addresses are ever probed: the scan stays in the local network.
package scan

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"strconv"
	"sync"
	"time"
)

// Default multicast groups (IPv4).
const (
	MDNSAddr = "224.0.0.251:5353"
	SSDPAddr = "239.255.255.250:1900"
)

// Device is one device found.
type Device struct {
	Kind     string `json:"kind"` // shelly, fritzbox, tasmota, opendtu, ahoydtu, epever
	URL      string `json:"url"`
	Model    string `json:"model,omitempty"`
	Name     string `json:"name,omitempty"` // the name it announced (mDNS instance, hostname)
	Password bool   `json:"password"`       // a password is needed to read it
	Note     string `json:"note,omitempty"`
	Via      string `json:"via"` // mdns, ssdp, name
}

// Scanner holds where to ask; the zero value is not useful, see New.
type Scanner struct {
	// MDNS and SSDP are the addresses queries go to (the multicast groups;
	// tests point them at responders on 127.0.0.1). "" skips that way.
	MDNS, SSDP string
	// Names are host names probed directly when they resolve to a local
	// address ("fritz.box").
	Names []string
	// Timeout bounds the whole scan (listening and probing).
	Timeout time.Duration
	// ProbeTimeout bounds one HTTP probe request (default 1.5 s).
	ProbeTimeout time.Duration
	Log          *slog.Logger
	// Resolve looks up a name (default net.DefaultResolver).
	Resolve func(ctx context.Context, host string) ([]string, error)
	// Dial opens the probes' connections (default a net.Dialer); tests use
	// it to prove nothing outside 127.0.0.1 is contacted.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	hc   *http.Client
}

// New is a scanner of the local network: the multicast groups and
// fritz.box, 3 s.
func New() *Scanner {
	return &Scanner{MDNS: MDNSAddr, SSDP: SSDPAddr, Names: []string{"fritz.box"}, Timeout: 3 * time.Second}
}

// candidate is a host to probe.
type candidate struct {
	base  string // http://host:port
	name  string
	via   string
	hint  string // kind suggested by the announcement ("shelly", "fritzbox")
	model string // from the announcement (SSDP SERVER)
}

// Local reports whether ip is in the local network: private (RFC 1918,
// fc00::/7), link-local or loopback.
func Local(ip netip.Addr) bool {
	return ip.IsPrivate() || ip.IsLoopback() || ip.IsLinkLocalUnicast()
}

// Scan listens for answers and probes what answered; the devices come
// sorted by URL. Only a context error ends it early.
func (s *Scanner) Scan(ctx context.Context) ([]Device, error) {
	if s.Timeout <= 0 {
		s.Timeout = 3 * time.Second
	}
	if s.ProbeTimeout <= 0 {
		s.ProbeTimeout = 1500 * time.Millisecond
	}
	if s.Log == nil {
		s.Log = slog.Default()
	}
	if s.Resolve == nil {
		s.Resolve = net.DefaultResolver.LookupHost
	}
	if s.Dial == nil {
		s.Dial = (&net.Dialer{Timeout: s.ProbeTimeout}).DialContext
	}
	s.hc = &http.Client{
		Timeout: s.ProbeTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
		Transport: &http.Transport{Proxy: nil, DialContext: s.Dial, MaxIdleConnsPerHost: 2},
	}
	defer s.hc.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	// Listening gets 60 % of the time, probing the rest.
	listenFor := s.Timeout * 6 / 10

	found := make(chan candidate, 64)
	var wg sync.WaitGroup
	if s.MDNS != "" {
		wg.Add(1)
		go func() { defer wg.Done(); s.mdns(ctx, listenFor, found) }()
	}
	if s.SSDP != "" {
		wg.Add(1)
		go func() { defer wg.Done(); s.ssdp(ctx, listenFor, found) }()
	}
	for _, n := range s.Names {
		wg.Add(1)
		go func() { defer wg.Done(); s.name(ctx, n, found) }()
	}
	go func() { wg.Wait(); close(found) }()

	var (
		mu   sync.Mutex
		out  []Device
		pwg  sync.WaitGroup
		seen = map[string]bool{}
	)
	for c := range found {
		if seen[c.base] {
			continue
		}
		seen[c.base] = true
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			if d, ok := s.probe(ctx, c); ok {
				mu.Lock()
				out = append(out, d)
				mu.Unlock()
			}
		}()
	}
	pwg.Wait()
	if err := ctx.Err(); err != nil && err != context.DeadlineExceeded {
		return nil, err
	}
	// the same device found under two addresses (name and IP): keep one
	sort.Slice(out, func(i, j int) bool {
		if out[i].Via != out[j].Via {
			return out[i].Via < out[j].Via // mdns < name < ssdp
		}
		return out[i].URL < out[j].URL
	})
	return dedupe(out), nil
}

// dedupe drops a device found a second time under another name for the
// same address and port.
func dedupe(ds []Device) []Device {
	seen := map[string]bool{}
	var out []Device
	for _, d := range ds {
		if seen[d.URL] {
			continue
		}
		seen[d.URL] = true
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].URL < out[j].URL })
	return out
}

// baseURL builds http://ip:port, or "" when ip is not local.
func baseURL(ip string, port int) string {
	a, err := netip.ParseAddr(ip)
	if err != nil || !Local(a.Unmap()) {
		return ""
	}
	host := a.Unmap().String()
	if port == 80 || port == 0 {
		return "http://" + hostPort(host, "")
	}
	return "http://" + hostPort(host, strconv.Itoa(port))
}

func hostPort(host, port string) string {
	if port == "" {
		if a, err := netip.ParseAddr(host); err == nil && a.Is6() {
			return "[" + host + "]"
		}
		return host
	}
	return net.JoinHostPort(host, port)
}

// name probes a host name when it resolves to local addresses only.
func (s *Scanner) name(ctx context.Context, n string, found chan<- candidate) {
	host, port, err := net.SplitHostPort(n)
	if err != nil {
		host, port = n, ""
	}
	addrs, err := s.Resolve(ctx, host)
	if err != nil || len(addrs) == 0 {
		s.Log.Debug("scan: name does not resolve", "name", host, "err", err)
		return
	}
	for _, a := range addrs {
		ip, err := netip.ParseAddr(a)
		if err != nil || !Local(ip.Unmap()) {
			s.Log.Debug("scan: name resolves outside the local network; not probed", "name", host, "addr", a)
			return
		}
	}
	hint := ""
	if host == "fritz.box" {
		hint = "fritzbox"
	}
	p, _ := strconv.Atoi(port)
	// by address, so that the box found over SSDP too is listed once
	select {
	case found <- candidate{base: baseURL(addrs[0], p), name: host, via: "name", hint: hint}:
	case <-ctx.Done():
	}
}
