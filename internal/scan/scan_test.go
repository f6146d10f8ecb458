package scan

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/powermeter/powermeter/internal/emulate"
	"github.com/powermeter/powermeter/internal/meter/fritzdect"

	_ "github.com/powermeter/powermeter/internal/meter/all" // the emulators
)

type announced struct {
	instance, service string
	ip                string
	port              int
}

// mdnsResponder answers DNS-SD PTR queries on 127.0.0.1 with the given
// instances (PTR in answers, SRV, TXT and A in the additional section), as
// a device's mDNS responder answers a legacy unicast query.
func mdnsResponder(t testing.TB, hosts []announced) string {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := conn.ReadFromUDP(buf)
			if err != nil {
				return
			}
			var p dnsmessage.Parser
			h, err := p.Start(buf[:n])
			if err != nil || h.Response {
				continue
			}
			qs, err := p.AllQuestions()
			if err != nil {
				continue
			}
			asked := map[string]bool{}
			for _, q := range qs {
				if q.Type == dnsmessage.TypePTR {
					asked[strings.ToLower(q.Name.String())] = true
				}
			}
			b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true})
			b.StartAnswers()
			var extra []announced
			for _, a := range hosts {
				if !asked[a.service] {
					continue
				}
				svc := dnsmessage.MustNewName(a.service)
				inst := dnsmessage.MustNewName(a.instance + "." + a.service)
				b.PTRResource(dnsmessage.ResourceHeader{Name: svc, Class: dnsmessage.ClassINET, TTL: 120}, dnsmessage.PTRResource{PTR: inst})
				extra = append(extra, a)
			}
			b.StartAdditionals()
			for _, a := range extra {
				inst := dnsmessage.MustNewName(a.instance + "." + a.service)
				target := dnsmessage.MustNewName(a.instance + ".local.")
				b.SRVResource(dnsmessage.ResourceHeader{Name: inst, Class: dnsmessage.ClassINET, TTL: 120}, dnsmessage.SRVResource{Target: target, Port: uint16(a.port)})
				b.TXTResource(dnsmessage.ResourceHeader{Name: inst, Class: dnsmessage.ClassINET, TTL: 120}, dnsmessage.TXTResource{TXT: []string{"gen=2"}})
				ip := net.ParseIP(a.ip).To4()
				b.AResource(dnsmessage.ResourceHeader{Name: target, Class: dnsmessage.ClassINET, TTL: 120}, dnsmessage.AResource{A: [4]byte(ip)})
			}
			msg, err := b.Finish()
			if err == nil {
				conn.WriteToUDP(msg, from)
			}
		}
	}()
	return conn.LocalAddr().String()
}

// ssdpResponder answers an M-SEARCH on 127.0.0.1 as a FRITZ!Box and as a
// media player (which the scan must ignore).
func ssdpResponder(t testing.TB, fritzLocation string) string {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := conn.ReadFromUDP(buf)
			if err != nil {
				return
			}
			if !strings.HasPrefix(string(buf[:n]), "M-SEARCH * HTTP/1.1") || !strings.Contains(string(buf[:n]), "ssdp:discover") {
				continue
			}
			for _, r := range []string{
				"HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=1800\r\nLOCATION: " + fritzLocation + "\r\nSERVER: FRITZ!Box 7590 UPnP/1.0 AVM FRITZ!Box 7590 154.08.02\r\nST: upnp:rootdevice\r\nUSN: uuid:75802409-bccb-40e7-8e6c-3810D5AAAAAA::upnp:rootdevice\r\n\r\n",
				"HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=1800\r\nLOCATION: http://127.0.0.1:1400/xml/device_description.xml\r\nSERVER: Linux UPnP/1.0 Sonos/70.3-35220 (ZPS1)\r\nST: upnp:rootdevice\r\nUSN: uuid:RINCON_000::upnp:rootdevice\r\n\r\n",
			} {
				conn.WriteToUDP([]byte(r), from)
			}
		}
	}()
	return conn.LocalAddr().String()
}

func serve(t testing.TB, h http.Handler) (string, int) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	_, p, _ := net.SplitHostPort(srv.Listener.Addr().String())
	port, _ := strconv.Atoi(p)
	return srv.URL, port
}

func emu(t testing.TB, kind string, o emulate.Options) (string, int) {
	t.Helper()
	e, err := emulate.New(kind, o)
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, e)
}

// loopbackOnly is a Dial that refuses (and reports) anything but 127.0.0.1.
type loopbackOnly struct {
	t    *testing.T
	mu   sync.Mutex
	bad  []string
	dial net.Dialer
}

func (l *loopbackOnly) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, _ := net.SplitHostPort(addr)
	if host != "127.0.0.1" {
		l.mu.Lock()
		l.bad = append(l.bad, addr)
		l.mu.Unlock()
		return nil, fmt.Errorf("test: %s is outside 127.0.0.1", addr)
	}
	return l.dial.DialContext(ctx, network, addr)
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestScanFindsEachKindAndNothingElse(t *testing.T) {
	zone := time.FixedZone("sunny", (13-time.Now().UTC().Hour())*3600)
	_, shelly2 := emu(t, "shelly-gen2", emulate.Options{Password: "pw"})
	_, shelly1 := emu(t, "shelly-gen1", emulate.Options{})
	_, tas := emu(t, "tasmota", emulate.Options{Profile: "sml"})
	_, tasPW := emu(t, "tasmota", emulate.Options{Password: "pw"})
	_, dtu := emu(t, "opendtu", emulate.Options{Zone: zone})
	_, dtuPW := emu(t, "opendtu", emulate.Options{Zone: zone, Username: "admin", Password: "pw"})
	_, ahoy := emu(t, "ahoydtu", emulate.Options{Zone: zone})
	_, epever := emu(t, "epever", emulate.Options{})
	boxURL, _ := serve(t, fritzdect.NewEmulator(fritzdect.EmulatorOptions{Username: "u", Password: "p", FritzOS82: true}))
	// things that answer but are no meter: a web server and a printer page
	_, plain := serve(t, http.NotFoundHandler())
	_, printer := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, "<html><body>Printer</body></html>")
	}))
	mdns := mdnsResponder(t, []announced{
		{"shellyplusplugs-aabbccddeeff", "_shelly._tcp.local.", "127.0.0.1", shelly2},
		{"shellyplug-s-112233", "_http._tcp.local.", "127.0.0.1", shelly1},
		{"tasmota-hichi-4711", "_http._tcp.local.", "127.0.0.1", tas},
		{"tasmota-plug-0815", "_http._tcp.local.", "127.0.0.1", tasPW},
		{"opendtu-123456", "_http._tcp.local.", "127.0.0.1", dtu},
		{"opendtu-654321", "_http._tcp.local.", "127.0.0.1", dtuPW},
		{"ahoy-dtu", "_http._tcp.local.", "127.0.0.1", ahoy},
		{"esp-epever", "_http._tcp.local.", "127.0.0.1", epever},
		{"nas", "_http._tcp.local.", "127.0.0.1", plain},
		{"printer", "_http._tcp.local.", "127.0.0.1", printer},
		{"cloud-thing", "_http._tcp.local.", "93.184.216.34", 80},   // not local: never probed
		{"other-service", "_ipp._tcp.local.", "127.0.0.1", printer}, // not asked for
	})
	ssdp := ssdpResponder(t, boxURL+"/igddesc.xml")
	guard := &loopbackOnly{t: t}
	s := &Scanner{MDNS: mdns, SSDP: ssdp, Timeout: 2 * time.Second, Log: quiet, Dial: guard.Dial,
		Names: []string{"fritz.box"},
		// fritz.box resolving outside the local network is not probed
		Resolve: func(ctx context.Context, host string) ([]string, error) { return []string{"203.0.113.7"}, nil },
	}
	ds, err := s.Scan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	byURL := map[string]Device{}
	for _, d := range ds {
		byURL[d.URL] = d
	}
	u := func(port int) string { return "http://127.0.0.1:" + strconv.Itoa(port) }
	want := map[string]struct {
		kind, model string
		pw          bool
	}{
		u(shelly2): {"shelly", "SNPL-00112EU", true},
		u(shelly1): {"shelly", "SHPLG-S", false},
		u(tas):     {"tasmota", "Tasmota read head", false},
		u(tasPW):   {"tasmota", "Tasmota", true},
		u(dtu):     {"opendtu", "OpenDTU", false},
		u(dtuPW):   {"opendtu", "OpenDTU", true},
		u(ahoy):    {"ahoydtu", "AhoyDTU", false},
		u(epever):  {"epever", "ESP-Epever", false},
		boxURL:     {"fritzbox", "FRITZ!Box 7590", true},
	}
	for url, w := range want {
		d, ok := byURL[url]
		if !ok {
			t.Errorf("%s (%s) not found; found %+v", url, w.kind, ds)
			continue
		}
		if d.Kind != w.kind || d.Model != w.model || d.Password != w.pw {
			t.Errorf("%s: %+v, want %+v", url, d, w)
		}
	}
	if len(ds) != len(want) {
		t.Errorf("found %d devices, want %d (nothing else): %+v", len(ds), len(want), ds)
	}
	if d := byURL[boxURL]; !strings.Contains(d.Note, "REST") || d.Via != "ssdp" {
		t.Errorf("box: %+v", d)
	}
	if d := byURL[u(tas)]; d.Name != "tasmota-hichi-4711" || d.Via != "mdns" {
		t.Errorf("read head: %+v", d)
	}
	if len(guard.bad) > 0 {
		t.Errorf("contacted outside 127.0.0.1: %v", guard.bad)
	}
}

func TestScanByNameAndNothingThere(t *testing.T) {
	boxURL, boxPort := serve(t, fritzdect.NewEmulator(fritzdect.EmulatorOptions{Username: "u", Password: "p"}))
	guard := &loopbackOnly{t: t}
	s := &Scanner{Timeout: time.Second, Log: quiet, Dial: guard.Dial,
		Names:   []string{"fritz.box:" + strconv.Itoa(boxPort)},
		Resolve: func(ctx context.Context, host string) ([]string, error) { return []string{"127.0.0.1"}, nil },
	}
	ds, err := s.Scan(context.Background())
	if err != nil || len(ds) != 1 || ds[0].URL != boxURL || ds[0].Kind != "fritzbox" || ds[0].Name != "fritz.box" || !strings.Contains(ds[0].Note, "AHA-HTTP") {
		t.Errorf("by name: %+v %v", ds, err)
	}
	// a network where nobody answers: an empty list within the timeout
	silent, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	s = &Scanner{MDNS: silent.LocalAddr().String(), SSDP: silent.LocalAddr().String(), Timeout: 500 * time.Millisecond, Log: quiet, Dial: guard.Dial}
	ds, err = s.Scan(context.Background())
	if err != nil || len(ds) != 0 {
		t.Errorf("silent network: %+v %v", ds, err)
	}
	if len(guard.bad) > 0 {
		t.Errorf("contacted outside 127.0.0.1: %v", guard.bad)
	}
}

// BenchmarkScan is the wall time of `discover --scan` with its default
// 3 s timeout over 8 emulated devices answering on 127.0.0.1: the listening
// window (60 % of the timeout) plus the probes.
func BenchmarkScan(b *testing.B) {
	zone := time.FixedZone("sunny", (13-time.Now().UTC().Hour())*3600)
	var hosts []announced
	for i, kind := range []string{"shelly-gen2", "shelly-gen1", "tasmota", "tasmota", "opendtu", "ahoydtu", "epever", "shelly-pro3em"} {
		_, port := emu(b, kind, emulate.Options{Zone: zone})
		svc := "_http._tcp.local."
		if kind == "shelly-gen2" || kind == "shelly-pro3em" {
			svc = "_shelly._tcp.local."
		}
		hosts = append(hosts, announced{fmt.Sprintf("dev-%d", i), svc, "127.0.0.1", port})
	}
	boxURL, _ := serve(b, fritzdect.NewEmulator(fritzdect.EmulatorOptions{Username: "u", Password: "p", FritzOS82: true}))
	mdns := mdnsResponder(b, hosts)
	ssdp := ssdpResponder(b, boxURL+"/igddesc.xml")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s := &Scanner{MDNS: mdns, SSDP: ssdp, Timeout: 3 * time.Second, Log: quiet}
		ds, err := s.Scan(context.Background())
		if err != nil || len(ds) != 9 {
			b.Fatalf("found %d: %v", len(ds), err)
		}
	}
}
