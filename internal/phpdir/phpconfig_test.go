package phpdir

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/household"
	"github.com/powermeter/powermeter/internal/reading"
)

// An ESP-Epever charge controller's data folder and its PHP config:
// PanelP, BatteryV, BatteryI, PanelV, PanelI (PROTOCOLS.md §6).
const epeverPHP = `<?php
$device = 'epever'; $host = '192.168.178.60';
$unit1 = 'W'; $unit1_label = 'Erzeugung';
$unit2 = 'V';
$unit2_label = "Batterie";
$unit3 = 'A'; $unit3_label = 'Batteriestrom';
$unit4 = 'V'; $unit4_label = 'Panel';
$unit5 = 'A'; $unit5_label = 'Panelstrom';
$power_threshold = 2;
$rounding_precision = 1;
`

func TestImportEpeverWithPHPConfig(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.inc.php")
	data := filepath.Join(dir, "data")
	os.Mkdir(data, 0o755)
	os.WriteFile(cfgPath, []byte(epeverPHP), 0o644)
	lines := "04.12.2026,12:00:00,85.2,13.45,5.1,18.2,4.68\n04.12.2026,12:00:10,1.5,13.4,0.1,12.1,0.12\n"
	os.WriteFile(filepath.Join(data, "2026-12-04.csv"), []byte(lines), 0o644)

	php, err := ReadPHPConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if !php.Production || php.Threshold != 2 || php.Fields.Second() != household.Voltage || php.Fields[2].Unit != "A" || php.Fields[3].Label != "Panel" {
		t.Fatalf("php config %+v", php)
	}
	if toml := php.TOML(); !strings.Contains(toml, `role = "pv"`) || !strings.Contains(toml, `quantity = "voltage"`) {
		t.Errorf("config lines:\n%s", toml)
	}
	st := openStore(t)
	ctx := context.Background()
	res, err := Import(ctx, st, data, ImportOptions{Source: "home", Zone: berlin, Fields: php.Fields, Threshold: php.Threshold})
	if err != nil || res.Imported != 2 {
		t.Fatalf("import %+v %v", res, err)
	}
	var got []reading.Reading
	st.Range(ctx, "home", time.Date(2026, 12, 4, 0, 0, 0, 0, berlin), time.Date(2026, 12, 5, 0, 0, 0, 0, berlin), func(r reading.Reading) error {
		got = append(got, r)
		return nil
	})
	if len(got) != 2 {
		t.Fatalf("stored %+v", got)
	}
	r := got[0]
	if r.Power != 85.2 || r.Temperature != nil || r.Voltage == nil || *r.Voltage != 13.45 || len(r.Phases) != 3 || r.Phases[0] != 5.1 {
		t.Errorf("stored %+v: want the battery voltage as voltage, no temperature", r)
	}
	if got[1].Power != 0 {
		t.Errorf("1.5 W below the threshold stored as %v", got[1].Power)
	}
	vals := php.Fields.Values(r)
	if len(vals) != 4 || vals[0].Unit != "V" || vals[0].Value != 13.45 || vals[1].Unit != "A" || vals[3].Label != "Panelstrom" {
		t.Errorf("values with units %+v", vals)
	}
	// and back out as the PHP app stored it
	out := t.TempDir()
	if _, err := Export(ctx, st, out, ExportOptions{Source: "home", Device: "legacy", Zone: berlin, Fields: php.Fields}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(out, "2026-12-04.csv"))
	if first := strings.SplitN(string(b), "\n", 2)[0]; first != "04.12.2026,12:00:00,85.20,13.45,5.10,18.20,4.68" {
		t.Errorf("exported %q", first)
	}
}

func TestSingleMPPTAhoyFields(t *testing.T) {
	// AhoyDTU with one MPPT: power, temperature, DC voltage, DC current
	m, err := household.FieldMap{{Quantity: household.Power}, {Quantity: household.Temperature}, {Quantity: household.Voltage, Label: "DC"}, {Quantity: household.Current, Label: "DC"}}.Check()
	if err != nil {
		t.Fatal(err)
	}
	r := reading.Reading{Device: "legacy", Power: 312.4, Temperature: reading.F(31.2), Phases: []float64{33.1, 9.44}}
	m.Place(&r)
	if r.Temperature == nil || *r.Temperature != 31.2 || r.Voltage != nil {
		t.Errorf("placed %+v", r)
	}
	vals := m.Values(r)
	if len(vals) != 3 || vals[0].Unit != "°C" || vals[1].Unit != "V" || vals[1].Value != 33.1 || vals[2].Unit != "A" {
		t.Errorf("values %+v", vals)
	}
}
