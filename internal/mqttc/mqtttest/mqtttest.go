// Package mqtttest gives tests a real Mosquitto broker: the shared one on
// 127.0.0.1:1883 (scripts/test.sh starts it), or a process of the test's
// own on a free port that the test may stop and start again. With CI=true
// a missing broker fails the test instead of skipping it.
package mqtttest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// SharedAddr is the shared broker's address.
const SharedAddr = "127.0.0.1:1883"

func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (CI=true: the broker must be there; scripts/test.sh starts it)", msg)
	}
	t.Skipf("%s; run scripts/test.sh to start one", msg)
}

// Shared returns mqtt://127.0.0.1:1883 when a broker listens there.
func Shared(t testing.TB) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", SharedAddr, 2*time.Second)
	if err != nil {
		missing(t, "no MQTT broker on %s: %v", SharedAddr, err)
	}
	c.Close()
	return "mqtt://" + SharedAddr
}

// Prefix is a topic prefix unique to the test (topics on the shared
// broker must not meet those of other tests).
func Prefix(t testing.TB) string {
	name := strings.NewReplacer("/", "_", " ", "_", "#", "_", "+", "_").Replace(t.Name())
	return fmt.Sprintf("pmtest/%s_%d_%d", name, os.Getpid(), time.Now().UnixNano()%1e9)
}

// Mosquitto is a broker process of the test's own.
type Mosquitto struct {
	URL  string
	Addr string
	bin  string
	conf string
	cmd  *exec.Cmd
	done chan struct{}
}

// Start starts mosquitto on a free port of 127.0.0.1 with persistence in a
// temporary folder (sessions and retained messages survive a restart);
// it is stopped when the test ends.
func Start(t testing.TB) *Mosquitto {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/mosquitto"); serr == nil {
			bin = "/usr/sbin/mosquitto"
		} else {
			missing(t, "mosquitto is not installed (apt-get install mosquitto)")
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	dir := t.TempDir()
	conf := filepath.Join(dir, "mosquitto.conf")
	text := ""
	if os.Geteuid() == 0 {
		// mosquitto started as root changes to user mosquitto, who cannot
		// write the persistence file into the test's folder
		text = "user root\n"
	}
	text += fmt.Sprintf(`listener %s 127.0.0.1
allow_anonymous true
persistence true
persistence_location %s/
max_queued_messages 0
log_dest none
`, port, dir)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	m := &Mosquitto{URL: "mqtt://" + addr, Addr: addr, bin: bin, conf: conf}
	m.Begin(t)
	t.Cleanup(func() { m.Stop(t) })
	return m
}

// Begin starts the process (again) and waits until it accepts connections.
func (m *Mosquitto) Begin(t testing.TB) {
	t.Helper()
	if m.cmd != nil {
		t.Fatal("mosquitto is running already")
	}
	cmd := exec.Command(m.bin, "-c", m.conf)
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting mosquitto: %v", err)
	}
	m.cmd = cmd
	m.done = make(chan struct{})
	go func() { _ = cmd.Wait(); close(m.done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", m.Addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-m.done:
			t.Fatalf("mosquitto exited at start (%s)", m.conf)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("mosquitto does not listen on %s: %v", m.Addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop ends the process (SIGTERM: it saves its persistence file) and
// waits for it.
func (m *Mosquitto) Stop(t testing.TB) {
	t.Helper()
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(10 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.done
	}
	m.cmd = nil
}

// Message is one message a Collector received.
type Message struct {
	Topic    string
	Payload  string
	Retained bool
	// Duplicate is the DUP flag: the broker sends it again.
	Duplicate bool
}

// Collector is a subscriber that records what arrives.
type Collector struct {
	c    paho.Client
	mu   sync.Mutex
	msgs []Message
	ch   chan struct{}
}

// Collect subscribes to filter on broker (mqtt://host:port) with QoS 1.
// With persistent, the session outlives a broker restart (clean session
// off, a fixed client id): nothing published meanwhile is missed.
func Collect(t testing.TB, broker, filter string, persistent bool) *Collector {
	t.Helper()
	col := &Collector{ch: make(chan struct{}, 1)}
	o := paho.NewClientOptions().AddBroker(strings.Replace(broker, "mqtt://", "tcp://", 1))
	o.SetClientID(fmt.Sprintf("col-%d-%d", os.Getpid(), time.Now().UnixNano()%1e12))
	o.SetCleanSession(!persistent)
	o.SetAutoReconnect(true)
	o.SetConnectRetry(true)
	o.SetConnectRetryInterval(100 * time.Millisecond)
	o.SetMaxReconnectInterval(200 * time.Millisecond)
	o.SetResumeSubs(true)
	h := func(_ paho.Client, msg paho.Message) {
		col.mu.Lock()
		col.msgs = append(col.msgs, Message{Topic: msg.Topic(), Payload: string(msg.Payload()), Retained: msg.Retained(), Duplicate: msg.Duplicate()})
		col.mu.Unlock()
		select {
		case col.ch <- struct{}{}:
		default:
		}
	}
	var connects int
	var cmu sync.Mutex
	o.SetOnConnectHandler(func(c paho.Client) {
		cmu.Lock()
		connects++
		again := connects > 1
		cmu.Unlock()
		if again && !persistent {
			c.Subscribe(filter, 1, h) // a clean session forgot it
		}
	})
	o.SetDefaultPublishHandler(h)
	col.c = paho.NewClient(o)
	if tk := col.c.Connect(); !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
		t.Fatalf("collector: connecting to %s: %v", broker, tk.Error())
	}
	if tk := col.c.Subscribe(filter, 1, h); !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
		t.Fatalf("collector: subscribing: %v", tk.Error())
	}
	t.Cleanup(func() { col.c.Disconnect(100) })
	return col
}

// Messages returns a copy of what arrived so far.
func (c *Collector) Messages() []Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Message(nil), c.msgs...)
}

// WaitFor waits until ok(messages) holds or timeout passes.
func (c *Collector) WaitFor(t testing.TB, timeout time.Duration, what string, ok func([]Message) bool) []Message {
	t.Helper()
	deadline := time.After(timeout)
	for {
		msgs := c.Messages()
		if ok(msgs) {
			return msgs
		}
		select {
		case <-c.ch:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("timed out waiting for %s; got %d messages", what, len(msgs))
		}
	}
}

// Publish publishes with the collector's connection and waits for it.
func (c *Collector) Publish(t testing.TB, topic string, retain bool, payload string) {
	t.Helper()
	tk := c.c.Publish(topic, 1, retain, payload)
	if !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
		t.Fatalf("publishing %s: %v", topic, tk.Error())
	}
}
