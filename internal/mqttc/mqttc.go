// Package mqttc is powermeter's one MQTT client wrapper, shared by the MQTT
// uplink, the Home Assistant discovery and the MQTT meter family. It wraps
// github.com/eclipse/paho.mqtt.golang with what all of them need: mqtt:// and
// mqtts:// URLs (verified TLS, an optional CA file), background connecting
// with exponential back-off, subscriptions that come back after a
// reconnect, a last will, context-aware publishing that waits for the
// broker's PUBACK, and a connection state a caller can show.
package mqttc

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// Message is a will or a message to publish.
type Message struct {
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool
}

// Options configure a Client.
type Options struct {
	// URL is mqtt://host[:1883] or mqtts://host[:8883].
	URL      string
	Username string
	Password string
	// ClientID identifies the client at the broker (default
	// "powermeter-" and random hex). Two clients with one id throw each
	// other off.
	ClientID string
	// CAFile is an extra trusted root (PEM) for mqtts://; Insecure skips
	// the certificate checks.
	CAFile   string
	Insecure bool
	// Will is published by the broker when the connection is lost.
	Will *Message
	// OnConnect runs after every successful (re)connect, after the
	// subscriptions are restored, in its own goroutine.
	OnConnect func(c *Client)
	// BackoffMax bounds the delay between connection attempts (default
	// 1 min); attempts start at 1 s and double.
	BackoffMax time.Duration
	// Timeout bounds connecting and writing (default 10 s).
	Timeout time.Duration
	// KeepAlive is the MQTT keep-alive (default 30 s).
	KeepAlive time.Duration
	Log       *slog.Logger
}

// Handler receives a message of a subscription. It runs on the client's
// delivery goroutine, in order: it must not block (no Publish+wait).
type Handler func(topic string, payload []byte)

type sub struct {
	filter string
	qos    byte
	h      Handler
}

// Client is a connection to one broker that reconnects by itself.
type Client struct {
	pc   paho.Client
	opts Options
	log  *slog.Logger
	// addr is the broker's address without credentials, for messages.
	addr string

	mu        sync.Mutex
	subs      []sub
	connected bool
	lastErr   error
	since     time.Time
	connects  int
	closed    bool
	// session is closed when the current connection ends
	session chan struct{}
	// barrier markers in flight, and the barrier topics subscribed
	barrier    map[string]chan struct{}
	barrierSub map[string]bool
}

// ParseURL checks a broker URL and returns paho's form of it (tcp:// or
// ssl://, with the default port) and whether it uses TLS.
func ParseURL(raw string) (broker string, useTLS bool, err error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "", false, fmt.Errorf("%q: want mqtt://host:1883 or mqtts://host:8883", raw)
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" {
		return "", false, fmt.Errorf("%q: a broker URL has no path or query (want mqtt://host:1883)", raw)
	}
	port := u.Port()
	switch u.Scheme {
	case "mqtt", "tcp":
		if port == "" {
			port = "1883"
		}
		return "tcp://" + hostPort(u.Hostname(), port), false, nil
	case "mqtts", "ssl", "tls":
		if port == "" {
			port = "8883"
		}
		return "ssl://" + hostPort(u.Hostname(), port), true, nil
	}
	return "", false, fmt.Errorf("%q: want mqtt://host:1883 or mqtts://host:8883", raw)
}

func hostPort(h, p string) string {
	if strings.Contains(h, ":") {
		return "[" + h + "]:" + p
	}
	return h + ":" + p
}

// RandomID returns prefix and 8 random hex digits (a client id).
func RandomID(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// New builds a client and starts connecting in the background: it returns
// at once, also when the broker is down (it keeps trying, with back-off).
// A bad URL or CA file is an error.
func New(o Options) (*Client, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = time.Minute
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.KeepAlive <= 0 {
		o.KeepAlive = 30 * time.Second
	}
	if o.ClientID == "" {
		o.ClientID = RandomID("powermeter-")
	}
	broker, useTLS, err := ParseURL(o.URL)
	if err != nil {
		return nil, err
	}
	c := &Client{opts: o, log: o.Log, addr: broker, session: make(chan struct{})}
	close(c.session)
	po := paho.NewClientOptions()
	po.AddBroker(broker)
	po.SetClientID(o.ClientID)
	po.SetUsername(o.Username)
	po.SetPassword(o.Password)
	po.SetCleanSession(true)
	po.SetOrderMatters(true)
	po.SetAutoReconnect(true)
	po.SetConnectRetry(true)
	po.SetConnectRetryInterval(time.Second)
	po.SetMaxReconnectInterval(o.BackoffMax)
	po.SetConnectTimeout(o.Timeout)
	po.SetWriteTimeout(o.Timeout)
	po.SetKeepAlive(o.KeepAlive)
	po.SetPingTimeout(o.Timeout)
	po.SetMessageChannelDepth(1024)
	// The caller resends what was not acknowledged (the outbox): paho
	// must not resend it too after a reconnect, or it would arrive twice.
	po.SetStore(noStore{})
	if useTLS {
		tc, err := tlsConfig(o.CAFile, o.Insecure)
		if err != nil {
			return nil, err
		}
		po.SetTLSConfig(tc)
	}
	if o.Will != nil {
		po.SetBinaryWill(o.Will.Topic, o.Will.Payload, o.Will.QoS, o.Will.Retain)
	}
	po.SetOnConnectHandler(func(paho.Client) { c.onConnect() })
	po.SetConnectionLostHandler(func(_ paho.Client, err error) { c.onLost(err) })
	po.SetConnectionAttemptHandler(func(_ *url.URL, tc *tls.Config) *tls.Config { return tc })
	po.SetConnectionNotificationHandler(func(_ paho.Client, n paho.ConnectionNotification) {
		if f, ok := n.(paho.ConnectionNotificationFailed); ok {
			c.failed(f.Reason)
		}
		if f, ok := n.(paho.ConnectionNotificationBrokerFailed); ok {
			c.failed(f.Reason)
		}
	})
	c.pc = paho.NewClient(po)
	c.pc.Connect() // with ConnectRetry it keeps trying in the background
	return c, nil
}

func tlsConfig(caFile string, insecure bool) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: insecure}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: cannot read: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file: %s holds no PEM certificate", caFile)
		}
		tc.RootCAs = pool
	}
	return tc, nil
}

func (c *Client) onConnect() {
	c.mu.Lock()
	first := c.connects == 0
	c.connects++
	c.connected, c.lastErr, c.since = true, nil, time.Now()
	c.session = make(chan struct{})
	subs := append([]sub(nil), c.subs...)
	c.mu.Unlock()
	if first {
		c.log.Info("mqtt: connected", "broker", c.addr, "client_id", c.opts.ClientID)
	} else {
		c.log.Info("mqtt: connected again", "broker", c.addr)
	}
	// A clean session forgets subscriptions: restore them.
	for _, s := range subs {
		t := c.pc.Subscribe(s.filter, s.qos, wrap(s.h))
		if !t.WaitTimeout(c.opts.Timeout) || t.Error() != nil {
			c.log.Warn("mqtt: restoring a subscription failed", "filter", s.filter, "err", tokenErr(t, "subscribe"))
		}
	}
	if c.opts.OnConnect != nil {
		c.opts.OnConnect(c)
	}
}

func (c *Client) onLost(err error) {
	c.mu.Lock()
	c.connected, c.lastErr, c.since = false, err, time.Now()
	select {
	case <-c.session:
	default:
		close(c.session)
	}
	closed := c.closed
	c.mu.Unlock()
	if !closed {
		c.log.Warn("mqtt: connection to the broker lost; reconnecting with back-off", "broker", c.addr, "err", err)
	}
}

func (c *Client) failed(err error) {
	c.mu.Lock()
	first := c.lastErr == nil || c.lastErr.Error() != err.Error()
	c.lastErr = err
	c.mu.Unlock()
	if first {
		c.log.Warn("mqtt: cannot connect to the broker; trying again with back-off", "broker", c.addr, "err", err)
	}
}

func wrap(h Handler) paho.MessageHandler {
	return func(_ paho.Client, m paho.Message) { h(m.Topic(), m.Payload()) }
}

// Session returns a channel that is closed when the current connection
// ends (closed already while there is none). A QoS 1 message whose
// acknowledgement has not come when it closes was perhaps not received:
// the client does not send it again by itself.
func (c *Client) Session() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.session
}

// Connected reports whether the connection is up now.
func (c *Client) Connected() bool { return c.pc.IsConnectionOpen() }

// State is the connection's state for messages and status pages.
type State struct {
	Connected bool
	Since     time.Time
	// Err is why the connection is down (nil while connected).
	Err error
}

// State returns the connection's state.
func (c *Client) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return State{Connected: c.connected && c.pc.IsConnectionOpen(), Since: c.since, Err: c.lastErr}
}

// EverConnected reports whether a connection was ever made.
func (c *Client) EverConnected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.connects > 0
}

// Broker is the broker's address (without credentials).
func (c *Client) Broker() string { return c.addr }

// ClientID is the id the client connects with.
func (c *Client) ClientID() string { return c.opts.ClientID }

// ErrNotConnected is returned while the broker cannot be reached.
var ErrNotConnected = errors.New("not connected to the MQTT broker")

// NotConnected returns ErrNotConnected with why the connection is down.
func (c *Client) NotConnected() error {
	st := c.State()
	if st.Err != nil {
		return fmt.Errorf("%w %s: %v", ErrNotConnected, c.addr, st.Err)
	}
	return fmt.Errorf("%w %s", ErrNotConnected, c.addr)
}

// Token is a publish in flight.
type Token = paho.Token

// PublishAsync hands a message to the client and returns its token: with
// QoS 1 it completes on the broker's PUBACK. A message in flight when the
// connection ends is not sent again (see Session).
func (c *Client) PublishAsync(m Message) Token {
	return c.pc.Publish(m.Topic, m.QoS, m.Retain, m.Payload)
}

// Publish sends one message and waits for the broker's acknowledgement
// (QoS 1) or for the write (QoS 0), until ctx ends.
func (c *Client) Publish(ctx context.Context, m Message) error {
	if !c.Connected() {
		return c.NotConnected()
	}
	return Wait(ctx, c.PublishAsync(m), "publishing to "+m.Topic)
}

// Wait waits for t until ctx ends.
func Wait(ctx context.Context, t Token, what string) error {
	return WaitSession(ctx, t, nil, what)
}

// ErrConnectionLost is returned by WaitSession when the connection ended
// before the broker acknowledged.
var ErrConnectionLost = errors.New("the connection to the broker ended before it acknowledged")

// WaitSession waits for t until ctx ends or session (from Session) closes.
func WaitSession(ctx context.Context, t Token, session <-chan struct{}, what string) error {
	select {
	case <-t.Done():
		if err := t.Error(); err != nil {
			return fmt.Errorf("mqtt: %s: %w", what, err)
		}
		return nil
	default:
	}
	select {
	case <-session:
		return fmt.Errorf("mqtt: %s: %w", what, ErrConnectionLost)
	case <-t.Done():
		if err := t.Error(); err != nil {
			return fmt.Errorf("mqtt: %s: %w", what, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("mqtt: %s: no answer from the broker: %w", what, ctx.Err())
	}
}

func tokenErr(t Token, what string) error {
	if err := t.Error(); err != nil {
		return err
	}
	return fmt.Errorf("%s: no answer from the broker", what)
}

// Subscribe subscribes to filter and keeps the subscription across
// reconnects. While the broker is down it is only remembered (and made
// on connect); the error then says so.
func (c *Client) Subscribe(ctx context.Context, filter string, qos byte, h Handler) error {
	c.mu.Lock()
	c.subs = append(c.subs, sub{filter: filter, qos: qos, h: h})
	c.mu.Unlock()
	if !c.Connected() {
		return c.NotConnected()
	}
	return Wait(ctx, c.pc.Subscribe(filter, qos, wrap(h)), "subscribing to "+filter)
}

// Close publishes last (if not nil, e.g. an "offline" availability) and
// disconnects, waiting at most until ctx ends.
func (c *Client) Close(ctx context.Context, last *Message) error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	var err error
	if last != nil && c.Connected() {
		err = c.Publish(ctx, *last)
	}
	wait := uint(250)
	if dl, ok := ctx.Deadline(); ok {
		wait = uint(max(0, min(time.Until(dl), time.Second)) / time.Millisecond)
	}
	c.pc.Disconnect(wait)
	return err
}

// Barrier returns once every message the broker had queued for this
// client before the call was delivered to the handlers (e.g. the retained
// messages of a subscription just made): it publishes a marker to a topic
// of its own under base and waits for it to come back.
func (c *Client) Barrier(ctx context.Context, base string) error {
	topic := base + "/sync/" + c.opts.ClientID
	c.mu.Lock()
	if c.barrier == nil {
		c.barrier = map[string]chan struct{}{}
	}
	subscribed := c.barrierSub[topic]
	if c.barrierSub == nil {
		c.barrierSub = map[string]bool{}
	}
	c.barrierSub[topic] = true
	c.mu.Unlock()
	if !subscribed {
		err := c.Subscribe(ctx, topic, 1, func(_ string, payload []byte) {
			c.mu.Lock()
			ch := c.barrier[string(payload)]
			delete(c.barrier, string(payload))
			c.mu.Unlock()
			if ch != nil {
				close(ch)
			}
		})
		if err != nil {
			return err
		}
	}
	marker := RandomID("")
	ch := make(chan struct{})
	c.mu.Lock()
	c.barrier[marker] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.barrier, marker)
		c.mu.Unlock()
	}()
	// Just after a reconnect the subscription may not be restored yet on
	// the broker, and a marker published then never comes back: publish
	// it again now and then until one does (each is the same marker).
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		// a publish that fails while the connection is down is tried
		// again at the next tick
		if err := c.Publish(ctx, Message{Topic: topic, Payload: []byte(marker), QoS: 1}); err != nil && (ctx.Err() != nil || c.Connected()) {
			return err
		}
		select {
		case <-ch:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("mqtt: waiting for the broker to deliver what it had queued: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// noStore keeps nothing: messages in flight are not resent by paho.
type noStore struct{}

func (noStore) Open()                             {}
func (noStore) Put(string, packets.ControlPacket) {}
func (noStore) Get(string) packets.ControlPacket  { return nil }
func (noStore) All() []string                     { return nil }
func (noStore) Del(string)                        {}
func (noStore) Close()                            {}
func (noStore) Reset()                            {}
