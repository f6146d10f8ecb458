package scan

import (
	"context"
	"net"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// Services asked for over DNS-SD: Shelly Gen2+ announce _shelly._tcp;
// Shelly Gen1, Tasmota, OpenDTU, AhoyDTU and ESP-Epever announce (at most)
// _http._tcp.
var Services = []string{"_shelly._tcp.local.", "_http._tcp.local."}

// mdnsQuery is a DNS-SD PTR query for every service, sent as a "legacy
// unicast" query (RFC 6762 §6.7: from an ephemeral port, so responders
// answer to that port) with the QU bit asking for a unicast answer.
func mdnsQuery() ([]byte, error) {
	b := dnsmessage.NewBuilder(make([]byte, 0, 512), dnsmessage.Header{})
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	for _, svc := range Services {
		n, err := dnsmessage.NewName(svc)
		if err != nil {
			return nil, err
		}
		// the top bit of the class is the QU ("unicast response") bit
		if err := b.Question(dnsmessage.Question{Name: n, Type: dnsmessage.TypePTR, Class: dnsmessage.ClassINET | 1<<15}); err != nil {
			return nil, err
		}
	}
	return b.Finish()
}

// mdnsHost is what the answers say about one announced instance.
type mdnsHost struct {
	instance string // "shellyplusplugs-aabbcc._shelly._tcp.local."
	target   string // "shellyplusplugs-aabbcc.local."
	port     int
	service  string
	txt      []string
}

// mdns asks the group once (and again halfway) and hands every announced
// local host on as a candidate.
func (s *Scanner) mdns(ctx context.Context, listen time.Duration, found chan<- candidate) {
	dst, err := net.ResolveUDPAddr("udp4", s.MDNS)
	if err != nil {
		s.Log.Debug("scan: mDNS address", "err", err)
		return
	}
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4zero})
	if err != nil {
		s.Log.Debug("scan: mDNS socket", "err", err)
		return
	}
	defer conn.Close()
	q, err := mdnsQuery()
	if err != nil {
		return
	}
	deadline := time.Now().Add(listen)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	if _, err := conn.WriteToUDP(q, dst); err != nil {
		s.Log.Debug("scan: mDNS query not sent", "err", err)
		return
	}
	// a second query halfway: multicast over Wi-Fi loses packets
	resend := time.AfterFunc(listen/2, func() { conn.WriteToUDP(q, dst) })
	defer resend.Stop()

	hosts := map[string]*mdnsHost{} // by instance
	addrs := map[string][]string{}  // target → IPv4 addresses
	sent := map[string]bool{}
	buf := make([]byte, 9000)
	for {
		n, from, err := conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		s.parseMDNS(buf[:n], hosts, addrs)
		for _, h := range hosts {
			if h.target == "" || h.port == 0 {
				continue
			}
			ips := addrs[strings.ToLower(h.target)]
			if len(ips) == 0 && from != nil {
				ips = []string{from.IP.String()} // the responder itself
			}
			for _, ip := range ips {
				base := baseURL(ip, h.port)
				if base == "" || sent[base] {
					continue
				}
				sent[base] = true
				hint := ""
				if h.service == "_shelly._tcp.local." {
					hint = "shelly"
				}
				c := candidate{base: base, name: instanceName(h.instance), via: "mdns", hint: hint}
				select {
				case found <- c:
				case <-ctx.Done():
					return
				}
			}
		}
	}
}

// parseMDNS reads PTR, SRV, TXT and A records of an answer, from every
// section (responders put SRV and A into the additional section).
func (s *Scanner) parseMDNS(msg []byte, hosts map[string]*mdnsHost, addrs map[string][]string) {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil || !h.Response {
		return
	}
	if err := p.SkipAllQuestions(); err != nil {
		return
	}
	host := func(inst string) *mdnsHost {
		inst = strings.ToLower(inst)
		if hosts[inst] == nil {
			hosts[inst] = &mdnsHost{instance: inst}
		}
		return hosts[inst]
	}
	wanted := func(svc string) bool {
		for _, w := range Services {
			if strings.EqualFold(svc, w) {
				return true
			}
		}
		return false
	}
	ans, err := p.AllAnswers()
	if err != nil {
		return
	}
	auth, _ := p.AllAuthorities()
	add, _ := p.AllAdditionals()
	all := append(append(ans, auth...), add...)
	// PTRs first: they say which instances belong to a wanted service
	for _, r := range all {
		if b, ok := r.Body.(*dnsmessage.PTRResource); ok && wanted(r.Header.Name.String()) {
			host(b.PTR.String()).service = strings.ToLower(r.Header.Name.String())
		}
	}
	for _, r := range all {
		name := r.Header.Name.String()
		switch b := r.Body.(type) {
		case *dnsmessage.SRVResource:
			h := host(name)
			h.target, h.port = strings.ToLower(b.Target.String()), int(b.Port)
			if h.service == "" {
				if i := strings.Index(strings.ToLower(name), "._"); i >= 0 {
					h.service = strings.ToLower(name[i+1:])
				}
			}
		case *dnsmessage.TXTResource:
			host(name).txt = b.TXT
		case *dnsmessage.AResource:
			k := strings.ToLower(name)
			addrs[k] = append(addrs[k], net.IP(b.A[:]).String())
		}
	}
	// instances of services we did not ask for are dropped
	for k, h := range hosts {
		if !wanted(h.service) {
			delete(hosts, k)
		}
	}
}

// instanceName is the first label of an instance ("shellyplusplugs-aabbcc").
func instanceName(inst string) string {
	if i := strings.Index(inst, "._"); i >= 0 {
		inst = inst[:i]
	}
	return strings.ReplaceAll(inst, `\ `, " ")
}
