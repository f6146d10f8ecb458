package uplink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/hass"
	"github.com/powermeter/powermeter/internal/household"
	"github.com/powermeter/powermeter/internal/mqttc"
	"github.com/powermeter/powermeter/internal/outbox"
	"github.com/powermeter/powermeter/internal/reading"
)

// Payload is the JSON of a reading on MQTT: the native API's reading plus
// the meter that took it.
type Payload struct {
	reading.Reading
	Meter string `json:"meter"`
}

// MQTT topics under an uplink's topic_prefix.
const (
	// StatusLevel is the availability topic: "online", or "offline" (the
	// last will and the clean shutdown).
	StatusLevel = "status"
	// StateLevel (retained) holds a device's newest reading.
	StateLevel = "state"
	// ReadingsLevel carries every reading, QoS 1, not retained.
	ReadingsLevel = "readings"
)

// TopicLevel makes a device name usable as one topic level: '/', '+', '#'
// and control characters become '_'.
func TopicLevel(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '+' || r == '#' || r < 0x20 || r == 0x7f {
			return '_'
		}
		return r
	}, s)
}

// mqttSender publishes to an MQTT broker: each reading on
// <prefix>/<device>/readings (QoS 1), the newest one retained on
// <prefix>/<device>/state, availability on <prefix>/status, and Home
// Assistant discovery configs.
type mqttSender struct {
	cfg    config.Uplink
	opts   Options
	c      *mqttc.Client
	disc   *hass.Discovery
	want   func(string) bool
	prefix string
	stop   context.CancelFunc

	// ready is false after a (re)connect until the retained states are
	// known and discovery has cleared removed meters.
	ready atomic.Bool

	mu sync.Mutex
	// stateTime is the time of the newest state published (or found
	// retained) per device: an older reading never replaces it.
	stateTime map[string]time.Time
}

func newMQTT(cfg config.Uplink, index int, o Options) (*mqttSender, error) {
	s := &mqttSender{
		cfg: cfg, opts: o, want: forMeters(cfg.Meters), prefix: cfg.TopicPrefix,
		stateTime: map[string]time.Time{},
	}
	if s.prefix == "" {
		s.prefix = "powermeter/" + o.Source
	}
	clientID := cfg.ClientID
	if clientID == "" {
		clientID = mqttc.RandomID("powermeter-" + TopicLevel(o.Source) + "-")
	}
	ctx, stop := context.WithCancel(context.Background())
	s.stop = stop
	c, err := mqttc.New(mqttc.Options{
		URL: cfg.URL, Username: cfg.Username, Password: cfg.Password, ClientID: clientID,
		CAFile: cfg.CAFile, Insecure: cfg.Insecure, Timeout: cfg.Timeout.Duration,
		Will:      &mqttc.Message{Topic: s.statusTopic(), Payload: []byte("offline"), QoS: 1, Retain: true},
		OnConnect: func(c *mqttc.Client) { s.connected(ctx, c) },
		Log:       o.Log.With("uplink", cfg.Name),
	})
	if err != nil {
		stop()
		return nil, &config.Error{File: o.File, Key: fmt.Sprintf("uplinks[%d].url", index), Msg: err.Error()}
	}
	s.c = c
	if cfg.Discovery() {
		meters := map[string]string{}
		for _, m := range o.MeterOrder {
			meters[m] = o.MeterTypes[m]
		}
		s.disc = hass.New(c, hass.Options{
			Prefix: cfg.DiscoveryPrefix, Source: o.Source, StateTopic: s.stateTopic,
			Availability: s.statusTopic(), ExpireAfter: expireAfter(o.Interval),
			Meters: meters, Version: o.Version, Log: o.Log.With("uplink", cfg.Name),
		})
		go s.disc.Run(ctx)
	}
	// Retained states of earlier runs: a replay must not replace them.
	_ = c.Subscribe(ctx, s.prefix+"/+/"+StateLevel, 1, s.retainedState)
	return s, nil
}

// expireAfter is when HA shows a sensor unavailable without new states:
// six intervals (a minute at 10 s), at least a minute.
func expireAfter(interval time.Duration) time.Duration {
	if interval <= 0 {
		interval = 10 * time.Second
	}
	return max(6*interval, time.Minute)
}

func (s *mqttSender) statusTopic() string { return s.prefix + "/" + StatusLevel }
func (s *mqttSender) stateTopic(device string) string {
	return s.prefix + "/" + TopicLevel(device) + "/" + StateLevel
}
func (s *mqttSender) readingsTopic(device string) string {
	return s.prefix + "/" + TopicLevel(device) + "/" + ReadingsLevel
}

// connected runs after every (re)connect: availability online, and the
// sender waits for retained states before publishing new ones.
func (s *mqttSender) connected(ctx context.Context, c *mqttc.Client) {
	s.ready.Store(false)
	pctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout.Duration)
	defer cancel()
	if err := c.Publish(pctx, mqttc.Message{Topic: s.statusTopic(), Payload: []byte("online"), QoS: 1, Retain: true}); err != nil {
		s.opts.Log.Warn("mqtt uplink: publishing availability", "uplink", s.cfg.Name, "err", err)
	}
}

// retainedState learns the time of a state found on the broker.
func (s *mqttSender) retainedState(topic string, payload []byte) {
	var p struct {
		Device string    `json:"device"`
		Time   time.Time `json:"time"`
	}
	if len(payload) == 0 || json.Unmarshal(payload, &p) != nil || p.Device == "" || s.stateTopic(p.Device) != topic {
		return
	}
	s.mu.Lock()
	if p.Time.After(s.stateTime[p.Device]) {
		s.stateTime[p.Device] = p.Time
	}
	s.mu.Unlock()
}

// Ready reports whether the connection is up (for benchmarks and tools).
func (s *mqttSender) Ready() bool { return s.c.Connected() }

func (s *mqttSender) Name() string  { return s.cfg.Name }
func (s *mqttSender) MaxBatch() int { return 1000 }

// prepare makes the connection ready for publishing: retained states read,
// removed meters' entities cleared.
func (s *mqttSender) prepare(ctx context.Context) error {
	if s.ready.Load() {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout.Duration)
	defer cancel()
	if err := s.c.Barrier(ctx, s.prefix); err != nil {
		return fmt.Errorf("uplink %s: %w", s.cfg.Name, err)
	}
	if s.disc != nil {
		if err := s.disc.Connected(ctx); err != nil {
			return fmt.Errorf("uplink %s: home assistant discovery: %w", s.cfg.Name, err)
		}
	}
	s.ready.Store(true)
	return nil
}

func (s *mqttSender) Send(ctx context.Context, items []outbox.Item, _ func() time.Time, _ func(int) error) (int, error) {
	if !s.c.Connected() {
		return 0, fmt.Errorf("uplink %s: %w", s.cfg.Name, s.c.NotConnected())
	}
	if err := s.prepare(ctx); err != nil {
		return 0, err
	}
	return sendFiltered(items, s.want, s.opts.OnReject, func(batch []outbox.Item) (int, error) {
		return s.deliver(ctx, batch)
	})
}

// deliver publishes b and returns how many from the front the broker has
// acknowledged. What was not acknowledged when the connection ended is
// published again by the next Send (the outbox cursor did not move).
func (s *mqttSender) deliver(ctx context.Context, b []outbox.Item) (int, error) {
	session := s.c.Session()
	tokens := make([]mqttc.Token, len(b))
	payloads := make([][]byte, len(b)) // the retained state reuses its reading's payload
	newest := map[string]int{}         // device → index of its newest reading in b
	var order []string
	for i, it := range b {
		data, err := json.Marshal(Payload{Reading: it.Reading, Meter: it.Meter})
		if err != nil {
			return i, fmt.Errorf("uplink %s: encoding a reading: %w", s.cfg.Name, err)
		}
		payloads[i] = data
		tokens[i] = s.c.PublishAsync(mqttc.Message{Topic: s.readingsTopic(it.Reading.Device), Payload: data, QoS: 1})
		d := it.Reading.Device
		if j, ok := newest[d]; !ok || !it.Reading.Time.Before(b[j].Reading.Time) {
			if !ok {
				order = append(order, d)
			}
			newest[d] = i
		}
	}
	var stateTokens []mqttc.Token
	var stateErr error
	for _, d := range order {
		i := newest[d]
		it := b[i]
		s.mu.Lock()
		newer := it.Reading.Time.After(s.stateTime[d])
		s.mu.Unlock()
		if !newer {
			continue // a replay: the retained state is newer
		}
		if s.disc != nil && s.c.Connected() {
			dctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout.Duration)
			err := s.disc.Seen(dctx, hass.Device{Meter: it.Meter, MeterType: s.opts.MeterTypes[it.Meter], Name: d,
				Role: household.Role(s.opts.MeterRoles[it.Meter]), Inverted: s.opts.MeterInverted[it.Meter]}, it.Reading)
			cancel()
			if err != nil {
				stateErr = errors.Join(stateErr, err)
			}
		}
		stateTokens = append(stateTokens, s.c.PublishAsync(mqttc.Message{Topic: s.stateTopic(d), Payload: payloads[i], QoS: 1, Retain: true}))
		s.mu.Lock()
		s.stateTime[d] = it.Reading.Time
		s.mu.Unlock()
	}
	wctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout.Duration)
	defer cancel()
	n := 0
	var err error
	for _, t := range tokens {
		if err = mqttc.WaitSession(wctx, t, session, "publishing a reading"); err != nil {
			break
		}
		n++
	}
	for _, t := range stateTokens {
		if werr := mqttc.WaitSession(wctx, t, session, "publishing a state"); werr != nil {
			stateErr = errors.Join(stateErr, werr)
			break
		}
	}
	if err == nil && stateErr != nil {
		err = stateErr
	}
	if err != nil {
		if !s.c.Connected() {
			err = fmt.Errorf("%w (%d readings waiting for the broker's acknowledgement)", s.c.NotConnected(), len(b)-n)
		}
		return n, fmt.Errorf("uplink %s: %w", s.cfg.Name, err)
	}
	return n, nil
}

// Close publishes "offline" on the availability topic and disconnects.
func (s *mqttSender) Close(ctx context.Context) error {
	s.stop()
	return s.c.Close(ctx, &mqttc.Message{Topic: s.statusTopic(), Payload: []byte("offline"), QoS: 1, Retain: true})
}
