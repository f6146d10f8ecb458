package fritzdect

import (
	"encoding/json"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/powermeter/powermeter/internal/emulate"
)

// The emulated FRITZ!OS 8.2 REST API. Every device has one unit
// "<UID>-1" carrying its interfaces (a socket: onOff, multimeter and
// temperature; the thermostat: temperature and thermostat). Faults: inval
// and disconnected report every unit as not connected, without values.

func (d *emuDevice) uid() string { return "AVM-" + normAIN(d.ain) }

func (d *emuDevice) category() string {
	switch {
	case d.bitmask&bitEnergyMeter != 0:
		return "SOCKET"
	case d.bitmask&(1<<6) != 0:
		return "THERMOSTAT"
	}
	return "OTHER"
}

// restAuth checks "Authorization: AVM-SID <sid>": a missing or invalid
// session is 401, a user without the Smart Home right 403.
func (e *Emulator) restAuth(w http.ResponseWriter, r *http.Request) bool {
	if !e.opts.FritzOS82 {
		http.NotFound(w, r)
		return false
	}
	sid, ok := strings.CutPrefix(r.Header.Get("Authorization"), "AVM-SID ")
	if !ok || !e.validSID(strings.TrimSpace(sid), e.opts.Now()) {
		e.stats.Forbidden++
		writeJSONStatus(w, http.StatusUnauthorized, map[string]any{"errors": []map[string]any{{"code": 401, "message": "unauthorized"}}})
		return false
	}
	if !e.homeAuto {
		e.stats.Forbidden++
		writeJSONStatus(w, http.StatusForbidden, map[string]any{"errors": []map[string]any{{"code": 403, "message": "missing right: smart home"}}})
		return false
	}
	return true
}

func writeJSONStatus(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func (e *Emulator) serveRESTDevices(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.restAuth(w, r) {
		return
	}
	e.stats.Commands["rest:devices"]++
	out := make([]map[string]any, 0, len(e.devices))
	for _, d := range e.devices {
		out = append(out, map[string]any{
			"UID": d.uid(), "ain": d.ain, "name": d.name, "productName": d.product,
			"productCategory": d.category(), "manufacturer": "AVM", "firmwareVersion": d.fw,
			"isConnected": d.present, "unitUids": []string{d.uid() + "-1"},
		})
	}
	writeJSONStatus(w, http.StatusOK, out)
}

func (e *Emulator) serveRESTUnit(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.restAuth(w, r) {
		return
	}
	e.stats.Commands["rest:unit"]++
	uid := r.PathValue("uid")
	var d *emuDevice
	for _, x := range e.devices {
		if x.uid()+"-1" == uid {
			d = x
		}
	}
	if d == nil {
		writeJSONStatus(w, http.StatusNotFound, map[string]any{"errors": []map[string]any{{"code": 404, "message": "unit not found"}}})
		return
	}
	fault := e.faults.Active()
	connected := d.present && fault != emulate.Inval && fault != emulate.Disconnected
	t := e.opts.Now().Truncate(10 * time.Second)
	ifaces := map[string]any{}
	unitType := "SOCKET"
	if d.bitmask&bitEnergyMeter != 0 {
		mm := map[string]any{}
		if connected {
			p := d.load(t)
			wh := d.counter.At(t, p)
			v := (230000 + float64(int64(2500*math.Sin(float64(t.Unix())/300)))) / 1000
			mm["power"] = math.Round(p*1000) / 1000
			mm["voltage"] = v
			mm["current"] = math.Round(p/v*1000) / 1000
			mm["energy"] = math.Floor(wh)
		}
		ifaces["multimeterInterface"] = mm
		ifaces["onOffInterface"] = map[string]any{"active": connected}
	} else if d.bitmask&(1<<6) != 0 {
		unitType = "THERMOSTAT"
		ifaces["thermostatInterface"] = map[string]any{"setPointTemperature": 21}
	}
	if d.bitmask&bitTempSensor != 0 {
		tmp := map[string]any{}
		if connected {
			tmp["celsius"] = math.Round(d.tempC(t)*10) / 10
		}
		ifaces["temperatureInterface"] = tmp
	}
	writeJSONStatus(w, http.StatusOK, map[string]any{
		"UID": uid, "ain": d.ain, "isConnected": connected, "unitType": unitType,
		"interfaces": ifaces,
		"statistics": map[string]any{},
	})
}
