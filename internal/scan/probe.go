package scan

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// probe asks the host what it is, one path at a time in an order that
// suits the hint, and stops at the first answer that identifies a device.
// An answer identifies only by its shape (the JSON keys or XML root a
// device family sends), never by a status alone.
func (s *Scanner) probe(ctx context.Context, c candidate) (Device, bool) {
	order := []func(context.Context, candidate) (Device, bool){s.shelly, s.fritz, s.opendtu, s.ahoy, s.tasmota, s.epever}
	if c.hint == "fritzbox" {
		order = []func(context.Context, candidate) (Device, bool){s.fritz}
	}
	for _, p := range order {
		if ctx.Err() != nil {
			return Device{}, false
		}
		if d, ok := p(ctx, c); ok {
			d.URL, d.Via = c.base, c.via
			if d.Name == "" {
				d.Name = c.name
			}
			return d, true
		}
	}
	s.Log.Debug("scan: host answered but is no known device", "url", c.base)
	return Device{}, false
}

// get fetches base+path; the status and at most 64 kB of the body.
func (s *Scanner) get(ctx context.Context, base, path string, hdr map[string]string) (int, []byte, bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		return 0, nil, false
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return 0, nil, false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, b, true
}

func jsonObject(b []byte, v any) bool {
	b = bytes.TrimSpace(b)
	return len(b) > 0 && b[0] == '{' && json.Unmarshal(b, v) == nil
}

func (s *Scanner) shelly(ctx context.Context, c candidate) (Device, bool) {
	code, b, ok := s.get(ctx, c.base, "/shelly", nil)
	if !ok || code != http.StatusOK {
		return Device{}, false
	}
	var info struct {
		Gen    int    `json:"gen"`
		Type   string `json:"type"`
		Model  string `json:"model"`
		ID     string `json:"id"`
		MAC    string `json:"mac"`
		Auth   bool   `json:"auth"`
		AuthEn bool   `json:"auth_en"`
		Name   string `json:"name"`
	}
	if !jsonObject(b, &info) || info.MAC == "" && info.ID == "" || info.Type == "" && info.Model == "" {
		return Device{}, false
	}
	d := Device{Kind: "shelly", Model: info.Model, Password: info.AuthEn, Name: info.Name}
	if info.Gen == 0 {
		d.Model, d.Password, d.Note = info.Type, info.Auth, "Gen1"
	} else {
		d.Note = fmt.Sprintf("Gen%d", info.Gen)
	}
	if d.Name == "" {
		d.Name = info.ID
	}
	return d, true
}

func (s *Scanner) fritz(ctx context.Context, c candidate) (Device, bool) {
	code, b, ok := s.get(ctx, c.base, "/login_sid.lua", nil)
	if !ok || code != http.StatusOK || !bytes.Contains(b, []byte("<SessionInfo>")) || !bytes.Contains(b, []byte("<SID>")) {
		return Device{}, false
	}
	// a box without login protection hands out a session to anyone
	d := Device{Kind: "fritzbox", Model: c.model, Password: bytes.Contains(b, []byte("<SID>0000000000000000</SID>"))}
	if d.Model == "" {
		d.Model = "FRITZ!Box"
	}
	// The REST API answers 401 without a session on FRITZ!OS 8.2, 404 before.
	if code, _, ok := s.get(ctx, c.base, "/api/v0/smarthome/overview/devices", nil); ok && (code == http.StatusUnauthorized || code == http.StatusForbidden) {
		d.Note = "FRITZ!OS 8.2+ (REST API)"
	} else {
		d.Note = "AHA-HTTP"
	}
	d.Note += "; needs a user with the Smart Home right"
	return d, true
}

func (s *Scanner) opendtu(ctx context.Context, c candidate) (Device, bool) {
	code, b, ok := s.get(ctx, c.base, "/api/livedata/status", nil)
	if !ok {
		return Device{}, false
	}
	var ld struct {
		Inverters []struct {
			Serial string `json:"serial"`
			Name   string `json:"name"`
		} `json:"inverters"`
		Total map[string]json.RawMessage `json:"total"`
	}
	if code == http.StatusOK && jsonObject(b, &ld) && ld.Inverters != nil && ld.Total != nil {
		names := make([]string, len(ld.Inverters))
		for i, inv := range ld.Inverters {
			names[i] = inv.Name
		}
		return Device{Kind: "opendtu", Model: "OpenDTU", Note: fmt.Sprintf("%d inverter(s): %s", len(ld.Inverters), strings.Join(names, ", "))}, true
	}
	// With "allow read-only access" off the API wants a login, but the web
	// interface's start page (titled OpenDTU) is public: tell it by both,
	// since other devices (a Tasmota with a password) answer 401 anywhere.
	if code == http.StatusUnauthorized {
		if code, b, ok := s.get(ctx, c.base, "/", nil); ok && code == http.StatusOK && bytes.Contains(b, []byte("<title>OpenDTU</title>")) {
			return Device{Kind: "opendtu", Model: "OpenDTU", Password: true, Note: "the API needs a login: set username and password"}, true
		}
	}
	return Device{}, false
}

func (s *Scanner) ahoy(ctx context.Context, c candidate) (Device, bool) {
	code, b, ok := s.get(ctx, c.base, "/api/inverter/list", nil)
	if !ok || code != http.StatusOK {
		return Device{}, false
	}
	var l struct {
		Inverter []struct {
			Name string `json:"name"`
		} `json:"inverter"`
	}
	if !jsonObject(b, &l) || l.Inverter == nil {
		return Device{}, false
	}
	names := make([]string, len(l.Inverter))
	for i, inv := range l.Inverter {
		names[i] = inv.Name
	}
	return Device{Kind: "ahoydtu", Model: "AhoyDTU", Note: fmt.Sprintf("%d inverter(s): %s", len(l.Inverter), strings.Join(names, ", "))}, true
}

func (s *Scanner) tasmota(ctx context.Context, c candidate) (Device, bool) {
	code, b, ok := s.get(ctx, c.base, "/cm?cmnd=Status%2010", nil)
	if !ok {
		return Device{}, false
	}
	var st struct {
		Warning string                     `json:"WARNING"`
		SNS     map[string]json.RawMessage `json:"StatusSNS"`
	}
	if !jsonObject(b, &st) {
		return Device{}, false
	}
	switch {
	case strings.HasPrefix(st.Warning, "Need user="):
		return Device{Kind: "tasmota", Model: "Tasmota", Password: true}, true
	case code == http.StatusOK && st.SNS != nil:
		d := Device{Kind: "tasmota", Model: "Tasmota"}
		if _, ok := st.SNS["ENERGY"]; ok {
			d.Note = "energy monitoring"
		} else if _, ok := st.SNS["SML"]; ok {
			d.Model, d.Note = "Tasmota read head", "smart meter (SML)"
		} else {
			d.Note = "no ENERGY section"
		}
		return d, true
	}
	return Device{}, false
}

func (s *Scanner) epever(ctx context.Context, c candidate) (Device, bool) {
	code, b, ok := s.get(ctx, c.base, "/AllJsonData", nil)
	if !ok {
		return Device{}, false
	}
	var v map[string]json.RawMessage
	if code == http.StatusOK && jsonObject(b, &v) && v["PanelP"] != nil && v["BatteryV"] != nil {
		return Device{Kind: "epever", Model: "ESP-Epever"}, true
	}
	return Device{}, false
}
