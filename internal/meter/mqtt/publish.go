package mqtt

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/powermeter/powermeter/internal/mqttc"
)

// PublishKinds are the emulators that can publish over MQTT, with the
// default topic of each (what the device uses out of the box).
var PublishKinds = map[string]string{
	"tasmota":     "tasmota_emulated", // tele/<topic>/SENSOR
	"shelly-gen2": "shellyplusplugs-emulated",
	"opendtu":     "solar",    // solar/<serial>/…
	"ahoydtu":     "inverter", // inverter/<name>/…
}

// Publisher publishes what an emulated device (its HTTP handler) reports,
// on the topics and in the payloads the real device uses over MQTT.
type Publisher struct {
	Kind  string
	Topic string
	// Device is the emulator; it is asked in process, like the HTTP meters
	// ask a device.
	Device http.Handler
	Client *mqttc.Client
}

// Will is the last will the device sets (its offline marker), for
// mqttc.Options.
func Will(kind, topic string) *mqttc.Message {
	switch kind {
	case "tasmota":
		return &mqttc.Message{Topic: "tele/" + topic + "/LWT", Payload: []byte("Offline"), QoS: 1, Retain: true}
	case "shelly-gen2":
		return &mqttc.Message{Topic: topic + "/online", Payload: []byte("false"), QoS: 1, Retain: true}
	}
	return nil
}

// Online publishes the device's online marker (retained).
func (p *Publisher) Online(ctx context.Context) error {
	switch p.Kind {
	case "tasmota":
		return p.Client.Publish(ctx, mqttc.Message{Topic: "tele/" + p.Topic + "/LWT", Payload: []byte("Online"), QoS: 1, Retain: true})
	case "shelly-gen2":
		return p.Client.Publish(ctx, mqttc.Message{Topic: p.Topic + "/online", Payload: []byte("true"), QoS: 1, Retain: true})
	}
	return nil
}

// Run publishes every interval until ctx ends (the first at once).
func (p *Publisher) Run(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if p.Client.Connected() {
			if err := p.Once(ctx); err != nil && ctx.Err() == nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// recorder keeps an in-process answer of the emulated device (what
// net/http/httptest's recorder does, without pulling a test package into
// the logger's build).
type recorder struct {
	h    http.Header
	code int
	body bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.h }

func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(b)
}

// get asks the emulated device.
func (p *Publisher) get(path string, v any) error {
	req, err := http.NewRequest(http.MethodGet, path, nil)
	if err != nil {
		return fmt.Errorf("emulated %s: %s: %w", p.Kind, path, err)
	}
	req.RemoteAddr = "127.0.0.1:1"
	rec := &recorder{h: http.Header{}}
	p.Device.ServeHTTP(rec, req)
	if rec.code == 0 {
		rec.code = http.StatusOK
	}
	if rec.code != http.StatusOK {
		return fmt.Errorf("emulated %s answered %d to %s", p.Kind, rec.code, path)
	}
	if err := json.Unmarshal(rec.body.Bytes(), v); err != nil {
		return fmt.Errorf("emulated %s: %s: %w", p.Kind, path, err)
	}
	return nil
}

func (p *Publisher) pub(ctx context.Context, topic string, retain bool, payload []byte) error {
	return p.Client.Publish(ctx, mqttc.Message{Topic: topic, Payload: payload, QoS: 0, Retain: retain})
}

// Once publishes the device's current values once.
func (p *Publisher) Once(ctx context.Context) error {
	switch p.Kind {
	case "tasmota":
		var st struct {
			SNS json.RawMessage `json:"StatusSNS"`
		}
		if err := p.get("/cm?cmnd=Status%2010", &st); err != nil {
			return err
		}
		return p.pub(ctx, "tele/"+p.Topic+"/SENSOR", false, st.SNS)
	case "shelly-gen2":
		var st map[string]json.RawMessage
		if err := p.get("/rpc/Shelly.GetStatus", &st); err != nil {
			return err
		}
		params := map[string]json.RawMessage{"ts": json.RawMessage(strconv.FormatInt(time.Now().Unix(), 10))}
		for comp, raw := range st {
			if !strings.Contains(comp, ":") {
				continue
			}
			// with "generic status update" on, each component on its topic
			if err := p.pub(ctx, p.Topic+"/status/"+comp, false, raw); err != nil {
				return err
			}
			params[comp] = raw
		}
		ev, _ := json.Marshal(map[string]any{"src": p.Topic, "dst": p.Topic + "/events", "method": "NotifyStatus", "params": params})
		return p.pub(ctx, p.Topic+"/events/rpc", false, ev)
	case "opendtu":
		return p.openDTU(ctx)
	case "ahoydtu":
		return p.ahoyDTU(ctx)
	}
	return fmt.Errorf("emulator %q cannot publish over MQTT (can: tasmota, shelly-gen2, opendtu, ahoydtu)", p.Kind)
}

type dtuValue struct {
	V float64 `json:"v"`
}

func num(f float64) []byte { return []byte(strconv.FormatFloat(f, 'f', -1, 64)) }

func (p *Publisher) openDTU(ctx context.Context) error {
	var list struct {
		Inverters []struct {
			Serial    string `json:"serial"`
			Reachable bool   `json:"reachable"`
			Producing bool   `json:"producing"`
		} `json:"inverters"`
		Total struct {
			Power dtuValue `json:"Power"`
		} `json:"total"`
	}
	if err := p.get("/api/livedata/status", &list); err != nil {
		return err
	}
	b := func(v bool) []byte {
		if v {
			return []byte("1")
		}
		return []byte("0")
	}
	for _, inv := range list.Inverters {
		var ld struct {
			Inverters []struct {
				AC  map[string]map[string]dtuValue `json:"AC"`
				DC  map[string]map[string]dtuValue `json:"DC"`
				INV map[string]map[string]dtuValue `json:"INV"`
			} `json:"inverters"`
		}
		if err := p.get("/api/livedata/status?inv="+inv.Serial, &ld); err != nil {
			return err
		}
		base := p.Topic + "/" + inv.Serial
		msgs := map[string][]byte{"status/reachable": b(inv.Reachable), "status/producing": b(inv.Producing)}
		if len(ld.Inverters) > 0 {
			d := ld.Inverters[0]
			ac := d.AC["0"]
			msgs["0/power"] = num(ac["Power"].V)
			msgs["0/voltage"] = num(ac["Voltage"].V)
			msgs["0/yieldtotal"] = num(ac["YieldTotal"].V)
			msgs["0/yieldday"] = num(ac["YieldDay"].V)
			msgs["0/temperature"] = num(d.INV["0"]["Temperature"].V)
			for k, ch := range d.DC {
				n, _ := strconv.Atoi(k)
				msgs[fmt.Sprintf("%d/power", n+1)] = num(ch["Power"].V)
			}
		}
		for k, v := range msgs {
			if err := p.pub(ctx, base+"/"+k, strings.HasPrefix(k, "status/"), v); err != nil {
				return err
			}
		}
	}
	return p.pub(ctx, p.Topic+"/ac/power", false, num(list.Total.Power.V))
}

func (p *Publisher) ahoyDTU(ctx context.Context) error {
	var list struct {
		Inverter []struct {
			ID   int    `json:"id"`
			Name string `json:"name"`
		} `json:"inverter"`
	}
	if err := p.get("/api/inverter/list", &list); err != nil {
		return err
	}
	for _, inv := range list.Inverter {
		var d struct {
			TS int64       `json:"ts_last_success"`
			Ch [][]float64 `json:"ch"`
		}
		if err := p.get(fmt.Sprintf("/api/inverter/id/%d", inv.ID), &d); err != nil {
			return err
		}
		base := p.Topic + "/" + inv.Name
		avail := "0"
		if d.TS > 0 && time.Since(time.Unix(d.TS, 0)) < 5*time.Minute {
			avail = "2"
		}
		msgs := map[string][]byte{"available": []byte(avail)}
		if len(d.Ch) > 0 && len(d.Ch[0]) > 6 {
			ac := d.Ch[0] // U, I, P, F, PF, Temp, YieldTotal, YieldDay …
			msgs["ch0/U_AC"], msgs["ch0/P_AC"], msgs["ch0/Temp"], msgs["ch0/YieldTotal"] = num(ac[0]), num(ac[2]), num(ac[5]), num(ac[6])
		}
		for i, dc := range d.Ch[min(1, len(d.Ch)):] {
			if len(dc) > 2 {
				msgs[fmt.Sprintf("ch%d/P_DC", i+1)] = num(dc[2])
			}
		}
		for k, v := range msgs {
			if err := p.pub(ctx, base+"/"+k, k == "available", v); err != nil {
				return err
			}
		}
	}
	return nil
}
