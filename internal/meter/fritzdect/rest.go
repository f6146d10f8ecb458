package fritzdect

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/powermeter/powermeter/internal/meter"
)

// The smart-home REST API of FRITZ!OS 8.2 (AVM: "SmarthomeRestApiFRITZOS82"):
// JSON under /api/v0/smarthome/, authorised with the SID of the same
// login_sid.lua login, sent as "Authorization: AVM-SID <sid>".
const (
	restDevices = "/api/v0/smarthome/overview/devices"
	restUnits   = "/api/v0/smarthome/overview/units/"
)

// restState is what we know of a box's REST API.
type restState int

const (
	restUnknown restState = iota
	restYes
	restNo
)

// restDevice is one entry of overview/devices.
type restDevice struct {
	UID             string   `json:"UID"`
	AIN             string   `json:"ain"`
	Name            string   `json:"name"`
	ProductName     string   `json:"productName"`
	ProductCategory string   `json:"productCategory"`
	IsConnected     bool     `json:"isConnected"`
	UnitUids        []string `json:"unitUids"`
}

// restUnit is the answer of overview/units/{uid}: values in W, V, A, Wh, °C.
type restUnit struct {
	UID         string `json:"UID"`
	IsConnected bool   `json:"isConnected"`
	UnitType    string `json:"unitType"`
	Interfaces  struct {
		Multimeter *struct {
			Power   *float64 `json:"power"`
			Voltage *float64 `json:"voltage"`
			Current *float64 `json:"current"`
			Energy  *float64 `json:"energy"`
		} `json:"multimeterInterface"`
		Temperature *struct {
			Celsius *float64 `json:"celsius"`
		} `json:"temperatureInterface"`
	} `json:"interfaces"`
}

// restNotOffered reports an answer that says the box has no REST API: 404
// or 400 (FRITZ!OS before 8.2), or the HTML page older boxes answer with.
func restNotOffered(err error, body []byte) bool {
	c := statusOf(err)
	return c == http.StatusNotFound || c == http.StatusBadRequest || (err == nil && looksHTML(body))
}

// restGet fetches a REST path with the session (logging in when there is
// none, and once more on 401/403 as command does). Called with b.mu held.
func (b *box) restGet(ctx context.Context, path string) ([]byte, error) {
	return b.withSession(ctx, func(sid string) ([]byte, error) {
		return b.doHeader(ctx, http.MethodGet, path, "AVM-SID "+sid)
	})
}

// restList reads every device and the units with values through the REST
// API and returns them as a deviceList. Which units of a device carry a
// multimeter or a temperature is learnt on the first round; later rounds
// ask only those. Called with b.mu held.
func (b *box) restList(ctx context.Context) (*deviceList, []byte, error) {
	body, err := b.restGet(ctx, restDevices)
	if err != nil || looksHTML(body) {
		return nil, body, err
	}
	var devs []restDevice
	if err := json.Unmarshal(body, &devs); err != nil {
		return nil, nil, b.restBad(body, err, "overview/devices")
	}
	if b.restUnits == nil {
		b.restUnits = map[string][]string{}
	}
	dl := &deviceList{fromREST: true}
	for _, rd := range devs {
		d := device{AIN: strings.TrimSpace(rd.AIN), Name: strings.TrimSpace(rd.Name), Product: strings.TrimSpace(rd.ProductName), Present: rd.IsConnected}
		if d.AIN == "" {
			continue // a group or template: no AIN to name it by
		}
		units, known := b.restUnits[rd.UID]
		if !known {
			units = rd.UnitUids
		}
		var useful []string
		sawMeter := false
		for _, uid := range units {
			ub, err := b.restGet(ctx, restUnits+url.PathEscape(uid))
			if statusOf(err) == http.StatusNotFound && known {
				// the device was re-paired or changed: learn its units anew
				delete(b.restUnits, rd.UID)
				b.log.Info("fritzdect: a unit the box listed before is gone; asking the device's units again", "box", b.host(), "unit", uid)
				continue
			}
			if err != nil {
				return nil, nil, err
			}
			var u restUnit
			if err := json.Unmarshal(ub, &u); err != nil {
				return nil, nil, b.restBad(ub, err, "overview/units/"+uid)
			}
			mm, tmp := u.Interfaces.Multimeter, u.Interfaces.Temperature
			if mm == nil && tmp == nil {
				continue
			}
			useful = append(useful, uid)
			if mm != nil && !sawMeter {
				sawMeter = true
				d.Bitmask |= bitEnergyMeter | bitSwitch
				if !u.IsConnected {
					d.Present = false
				}
				if d.Present {
					d.Power, d.Energy, d.Voltage = mm.Power, mm.Energy, mm.Voltage
				}
			}
			if tmp != nil && d.Temp == nil {
				d.Bitmask |= bitTempSensor
				if d.Present && u.IsConnected {
					d.Temp = tmp.Celsius
				}
			}
		}
		if !sawMeter {
			useful = nil // a thermostat or alarm: not read again
		}
		if _, stillKnown := b.restUnits[rd.UID]; stillKnown || !known {
			b.restUnits[rd.UID] = useful
		}
		dl.parsed = append(dl.parsed, d)
	}
	return dl, nil, nil
}

func (b *box) restBad(body []byte, err error, what string) error {
	if looksHTML(body) {
		return meter.Errorf(meter.BadAnswer, nil, "FRITZ!Box at %s answered HTML, not JSON, to %s (is the URL a FRITZ!Box?)", b.host(), what)
	}
	return meter.Errorf(meter.BadAnswer, err, "FRITZ!Box at %s sent an answer to %s we cannot read", b.host(), what)
}

// doHeader is do for a GET with an Authorization header.
func (b *box) doHeader(ctx context.Context, method, path, auth string) ([]byte, error) {
	return b.doReq(ctx, method, path, nil, nil, map[string]string{"Authorization": auth})
}

// restDeviceList is deviceList's REST half: it returns handled = false
// when the AHA interface is to be used. Called with b.mu held.
func (b *box) restDeviceList(ctx context.Context) (dl *deviceList, at time.Time, handled bool, err error) {
	if b.api == "aha" || b.rest == restNo {
		return nil, time.Time{}, false, nil
	}
	dl, body, err := b.restList(ctx)
	if b.rest == restUnknown && restNotOffered(err, body) {
		if b.api == "rest" {
			return nil, time.Time{}, true, meter.Errorf(meter.Config, nil, "FRITZ!Box at %s has no smart-home REST API (FRITZ!OS 8.2 or later): set api = \"aha\" or leave api out", b.host())
		}
		b.rest = restNo
		// a session made for the probe counts as fresh for the AHA request
		// that follows (a 403 there means missing rights, not expiry)
		b.keepFresh = b.sidFresh
		b.log.Info("fritzdect: the box has no REST API (FRITZ!OS before 8.2); using AHA-HTTP", "box", b.host())
		return nil, time.Time{}, false, nil
	}
	if err == nil && dl == nil {
		err = b.restBad(body, nil, "overview/devices")
	}
	if err != nil {
		return nil, time.Time{}, true, err
	}
	if b.rest == restUnknown {
		b.rest = restYes
		b.log.Info("fritzdect: reading through the FRITZ!OS 8.2 REST API", "box", b.host())
	}
	return dl, b.now(), true, nil
}
