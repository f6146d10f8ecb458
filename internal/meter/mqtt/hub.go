package mqtt

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/mqttc"
)

// Linger is how long a broker connection (and what it has received) is
// kept after its last meter closed: the logger re-creates a failing meter
// (Close, then New), and a Tasmota that publishes every 5 minutes must not
// lose its last value then.
var Linger = 2 * time.Minute

// hub shares one connection per broker (URL, user, client id) among the
// meters, and keeps the received values per device topic.
var hub = struct {
	mu    sync.Mutex
	conns map[string]*conn
}{conns: map[string]*conn{}}

type conn struct {
	key   string
	c     *mqttc.Client
	refs  int
	timer *time.Timer

	mu     sync.Mutex
	feeds  map[string]*feed           // by format + topic
	routes map[string][]mqttc.Handler // by filter
}

// acquire returns the connection for cfg's broker, made on first use.
func acquire(cfg config.Meter, log *slog.Logger) (*conn, error) {
	key := strings.Join([]string{cfg.URL, cfg.Username, cfg.Password, cfg.ClientID, cfg.CAFile}, "\x00")
	hub.mu.Lock()
	defer hub.mu.Unlock()
	if cn := hub.conns[key]; cn != nil {
		cn.refs++
		if cn.timer != nil {
			cn.timer.Stop()
			cn.timer = nil
		}
		return cn, nil
	}
	c, err := mqttc.New(mqttc.Options{
		URL: cfg.URL, Username: cfg.Username, Password: cfg.Password, ClientID: cfg.ClientID,
		CAFile: cfg.CAFile, Insecure: cfg.Insecure, Timeout: cfg.Timeout.Duration,
		Log: log.With("broker_of", "mqtt meters"),
	})
	if err != nil {
		return nil, err
	}
	cn := &conn{key: key, c: c, refs: 1, feeds: map[string]*feed{}, routes: map[string][]mqttc.Handler{}}
	hub.conns[key] = cn
	return cn, nil
}

// release drops a meter's hold; the last one closes the connection after
// Linger.
func (cn *conn) release() {
	hub.mu.Lock()
	defer hub.mu.Unlock()
	cn.refs--
	if cn.refs > 0 {
		return
	}
	cn.timer = time.AfterFunc(Linger, func() {
		hub.mu.Lock()
		if cn.refs > 0 || hub.conns[cn.key] != cn {
			hub.mu.Unlock()
			return
		}
		delete(hub.conns, cn.key)
		hub.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = cn.c.Close(ctx, nil)
	})
}

// feed returns the values received for key, subscribing with sub when the
// feed is new.
func (cn *conn) feed(key string, sub func(*feed)) *feed {
	cn.mu.Lock()
	f := cn.feeds[key]
	if f == nil {
		f = &feed{values: map[string]value{}, created: time.Now(), got: make(chan struct{})}
		cn.feeds[key] = f
	}
	fresh := !f.subscribed
	f.subscribed = true
	cn.mu.Unlock()
	if fresh {
		sub(f)
	}
	return f
}

// subscribe routes messages matching filter to h; one broker subscription
// per filter, however many feeds want it.
func (cn *conn) subscribe(filter string, h mqttc.Handler) {
	cn.mu.Lock()
	first := len(cn.routes[filter]) == 0
	cn.routes[filter] = append(cn.routes[filter], h)
	cn.mu.Unlock()
	if !first {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// While the broker is down the subscription is made on connect.
	_ = cn.c.Subscribe(ctx, filter, 1, func(topic string, payload []byte) {
		cn.mu.Lock()
		hs := cn.routes[filter]
		cn.mu.Unlock()
		for _, h := range hs {
			h(topic, payload)
		}
	})
}

// value is one received payload and when it arrived.
type value struct {
	data []byte
	at   time.Time
}

// feed holds what arrived for one device topic.
type feed struct {
	subscribed bool
	created    time.Time
	got        chan struct{} // closed when the first value arrives
	gotOnce    sync.Once

	mu     sync.Mutex
	values map[string]value // by topic below the device's base
	// offline is set by a last will / online / available topic.
	offline   bool
	offlineAt time.Time
	// bad is the last payload that could not be used (for the error).
	bad error
}

func (f *feed) set(key string, data []byte, at time.Time) {
	f.mu.Lock()
	f.values[key] = value{data: append([]byte(nil), data...), at: at}
	f.mu.Unlock()
	f.arrived()
}

// arrived marks that something came (wakes a first Read waiting for it).
func (f *feed) arrived() { f.gotOnce.Do(func() { close(f.got) }) }

func (f *feed) setOnline(on bool, at time.Time) {
	f.mu.Lock()
	if f.offline == on || f.offlineAt.IsZero() {
		f.offlineAt = at
	}
	f.offline = !on
	f.mu.Unlock()
}

// snapshot copies the values.
func (f *feed) snapshot() (map[string]value, bool, time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]value, len(f.values))
	for k, v := range f.values {
		out[k] = v
	}
	return out, f.offline, f.offlineAt
}
