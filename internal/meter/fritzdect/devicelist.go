package fritzdect

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Function bits of <device functionbitmask>.
const (
	bitEnergyMeter = 1 << 7 // 128
	bitTempSensor  = 1 << 8 // 256
	bitSwitch      = 1 << 9 // 512
)

// deviceList is the answer of getdevicelistinfos.
type deviceList struct {
	FWVersion string      `xml:"fwversion,attr"`
	Devices   []xmlDevice `xml:"device"`
	// parsed holds the devices read through the REST API (fromREST), in SI
	// units already.
	parsed   []device
	fromREST bool
}

// parsedDevice is one device of a list, or why it could not be read.
type parsedDevice struct {
	d   device
	err error
}

// all returns every device of the list, parsed.
func (dl *deviceList) all() []parsedDevice {
	if dl.fromREST {
		out := make([]parsedDevice, len(dl.parsed))
		for i, d := range dl.parsed {
			out[i] = parsedDevice{d: d}
		}
		return out
	}
	out := make([]parsedDevice, len(dl.Devices))
	for i := range dl.Devices {
		d, err := parseDevice(&dl.Devices[i])
		out[i] = parsedDevice{d, err}
	}
	return out
}

// xmlDevice keeps every value as text: not-present devices send empty
// elements and some firmware sends "inval".
type xmlDevice struct {
	Identifier   string `xml:"identifier,attr"`
	Bitmask      string `xml:"functionbitmask,attr"`
	FWVersion    string `xml:"fwversion,attr"`
	Manufacturer string `xml:"manufacturer,attr"`
	Product      string `xml:"productname,attr"`
	Present      string `xml:"present"`
	Name         string `xml:"name"`
	PowerMeter   *struct {
		Power   string `xml:"power"`
		Energy  string `xml:"energy"`
		Voltage string `xml:"voltage"`
	} `xml:"powermeter"`
	Temperature *struct {
		Celsius string `xml:"celsius"`
	} `xml:"temperature"`
}

// device is a parsed <device> with values in SI units; nil = no value.
type device struct {
	AIN     string // as the box writes it ("08761 0000434")
	Name    string
	Product string
	Bitmask int
	Present bool
	Power   *float64 // W
	Energy  *float64 // Wh
	Voltage *float64 // V
	Temp    *float64 // °C
}

func (d *device) isMeter() bool { return d.Bitmask&bitEnergyMeter != 0 }

func (d *device) label() string {
	if d.Name != "" {
		return fmt.Sprintf("%q (%s)", d.Name, d.AIN)
	}
	return d.AIN
}

func parseDeviceList(b []byte) (*deviceList, error) {
	var dl struct {
		XMLName xml.Name `xml:"devicelist"`
		deviceList
	}
	if err := decodeXML(b, &dl); err != nil {
		return nil, err
	}
	return &dl.deviceList, nil
}

// parseDevice converts the XML text values. A value that is neither empty
// nor "inval" nor a number is an error: the answer is broken.
func parseDevice(x *xmlDevice) (device, error) {
	d := device{
		AIN:     strings.TrimSpace(x.Identifier),
		Name:    strings.TrimSpace(x.Name),
		Product: strings.TrimSpace(x.Product),
		Present: strings.TrimSpace(x.Present) == "1",
	}
	if d.AIN == "" {
		return d, errors.New("device without identifier")
	}
	if m := strings.TrimSpace(x.Bitmask); m != "" {
		n, err := strconv.Atoi(m)
		if err != nil || n < 0 {
			return d, fmt.Errorf("device %s: functionbitmask %q is not a number", d.AIN, m)
		}
		d.Bitmask = n
	}
	var err error
	if pm := x.PowerMeter; pm != nil {
		if d.Power, err = scaled(pm.Power, 1000); err != nil {
			return d, fmt.Errorf("device %s: power: %w", d.AIN, err)
		}
		if d.Energy, err = scaled(pm.Energy, 1); err != nil {
			return d, fmt.Errorf("device %s: energy: %w", d.AIN, err)
		}
		if d.Voltage, err = scaled(pm.Voltage, 1000); err != nil {
			return d, fmt.Errorf("device %s: voltage: %w", d.AIN, err)
		}
	}
	if t := x.Temperature; t != nil {
		if d.Temp, err = scaled(t.Celsius, 10); err != nil {
			return d, fmt.Errorf("device %s: temperature: %w", d.AIN, err)
		}
	}
	return d, nil
}

// scaled parses an AHA whole number and divides it by div (1000 for mW →
// W). "" and "inval" give nil.
func scaled(s string, div float64) (*float64, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "inval" {
		return nil, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%q is not a whole number", s)
	}
	v := float64(n) / div
	return &v, nil
}

// normAIN is the AIN without spaces, for comparing.
func normAIN(s string) string { return strings.ReplaceAll(strings.TrimSpace(s), " ", "") }

// decodeXML decodes an answer leniently: HTML entities and ISO-8859-1 are
// accepted, as some firmware sends them.
func decodeXML(b []byte, v any) error {
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Entity = xml.HTMLEntity
	d.CharsetReader = func(charset string, in io.Reader) (io.Reader, error) {
		switch strings.ToLower(charset) {
		case "utf-8", "utf8", "us-ascii":
			return in, nil
		case "iso-8859-1", "latin1", "latin-1", "windows-1252":
			return latin1Reader(in)
		}
		return nil, fmt.Errorf("unsupported charset %q", charset)
	}
	return d.Decode(v)
}

func latin1Reader(in io.Reader) (io.Reader, error) {
	raw, err := io.ReadAll(in)
	if err != nil {
		return nil, err
	}
	out := make([]rune, len(raw))
	for i, c := range raw {
		out[i] = rune(c)
	}
	return strings.NewReader(string(out)), nil
}
