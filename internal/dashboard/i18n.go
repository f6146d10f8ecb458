package dashboard

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// lang is a page language: German (the original's) or English.
type lang string

const (
	langDE lang = "de"
	langEN lang = "en"
)

// pickLang chooses from an Accept-Language header: the first of de / en by
// preference; English when neither is named.
func pickLang(header string) lang {
	best, bestQ := langEN, -1.0
	for _, part := range strings.Split(header, ",") {
		tag, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				q = f
			}
		}
		primary, _, _ := strings.Cut(strings.ToLower(tag), "-")
		var l lang
		switch primary {
		case "de":
			l = langDE
		case "en":
			l = langEN
		default:
			continue
		}
		// equal weights: the earlier entry wins
		if q > bestQ {
			best, bestQ = l, q
		}
	}
	if bestQ <= 0 {
		return langEN
	}
	return best
}

var messages = map[string][2]string{ // key: {de, en}
	"sources":         {"Quellen", "Sources"},
	"no_sources":      {"Noch keine Quellen. Sobald ein Logger Messwerte sendet, erscheinen sie hier.", "No sources yet. They appear here as soon as a logger sends readings."},
	"live":            {"Aktuell", "Live"},
	"day":             {"Tag", "Day"},
	"overview":        {"Übersicht", "Overview"},
	"power":           {"Leistung", "Power"},
	"now":             {"Jetzt", "Now"},
	"temperature":     {"Temperatur", "Temperature"},
	"voltage":         {"Spannung", "Voltage"},
	"device":          {"Gerät", "Device"},
	"devices":         {"Geräte", "Devices"},
	"phases":          {"Phasen / Kanäle", "Phases / channels"},
	"counter_in":      {"Zähler Bezug", "Import counter"},
	"counter_out":     {"Zähler Einspeisung", "Export counter"},
	"reading_time":    {"Messzeit", "Reading time"},
	"stale":           {"veraltet", "stale"},
	"no_readings":     {"Keine Messwerte.", "No readings."},
	"fullscreen":      {"Vollbild", "Full screen"},
	"exit_fullscreen": {"Vollbild beenden", "Leave full screen"},
	"last_reading":    {"Letzter Messwert", "Last reading"},
	"readings":        {"Messwerte", "readings"},
	"today":           {"Heute", "Today"},
	"yesterday":       {"Gestern", "Yesterday"},
	"prev_day":        {"Vortag", "Previous day"},
	"next_day":        {"Folgetag", "Next day"},
	"show":            {"Anzeigen", "Show"},
	"date":            {"Datum", "Date"},
	"energy_in":       {"Bezug", "Consumption"},
	"energy_out":      {"Einspeisung", "Feed-in"},
	"peak":            {"Spitze", "Peak"},
	"peak_at":         {"Spitze um", "Peak at"},
	"feed_peak":       {"Höchste Einspeisung", "Highest feed-in"},
	"first_feed":      {"Erste Einspeisung", "First feed-in"},
	"last_feed":       {"Letzte Einspeisung", "Last feed-in"},
	"min_max_temp":    {"Temperatur min / max", "Temperature min / max"},
	"covered":         {"Erfasst", "Covered"},
	"bands":           {"Leistungsstufen", "Power bands"},
	"band_above":      {"über", "above"},
	"band_time":       {"Dauer", "Time"},
	"band_energy":     {"Energie", "Energy"},
	"feed_bands":      {"Einspeisestufen", "Feed-in bands"},
	"method":          {"Quelle der Energie", "Energy from"},
	"m_counter":       {"Zähler", "counter"},
	"m_power":         {"Leistung integriert", "integrated power"},
	"m_mixed":         {"Zähler und Leistung", "counter and power"},
	"m_minutes":       {"reduzierte Minuten", "reduced minutes"},
	"resets":          {"Zählerrücksetzungen", "Counter resets"},
	"years":           {"Jahre", "Years"},
	"months":          {"Monate", "Months"},
	"days":            {"Tage", "Days"},
	"year":            {"Jahr", "Year"},
	"month":           {"Monat", "Month"},
	"total":           {"Summe", "Total"},
	"days_with_data":  {"Tage mit Daten", "Days with data"},
	"imported_days":   {"davon nur Tagessumme (ohne Messwerte)", "of them a day summary only (no raw readings)"},
	"imported_short":  {"nur Summe", "summary only"},
	"imported_day":    {"Aus chart_stats.csv der PHP-App übernommen: Tagessumme ohne Messwerte", "Imported from the PHP app's chart_stats.csv: a day summary without raw readings"},
	"export":          {"CSV-Export", "CSV export"},
	"from":            {"Von", "From"},
	"to":              {"Bis", "To"},
	"format":          {"Format", "Format"},
	"format_php":      {"PHP-Format (Ortszeit)", "PHP layout (local time)"},
	"format_utc":      {"UTC mit Kopfzeile", "UTC with header"},
	"download":        {"Herunterladen", "Download"},
	"not_found":       {"Nicht gefunden", "Not found"},
	"unknown_source":  {"Diese Quelle gibt es nicht.", "There is no such source."},
	"error":           {"Fehler", "Error"},
	"server_error":    {"Die Daten konnten nicht gelesen werden. Details stehen im Server-Log.", "The data could not be read. The server log has the details."},
	"bad_date":        {"Ungültiges Datum (JJJJ-MM-TT).", "Invalid date (YYYY-MM-DD)."},
	"zone":            {"Zeitzone", "Time zone"},
	"chart_title":     {"Leistung im Tagesverlauf", "Power over the day"},
	"day_hours":       {"Stunden", "hours"},
	"source":          {"Quelle", "Source"},
	"no_feed":         {"keine", "none"},
	"feed_note":       {"negative Leistung", "negative power"},
	"kwh_note":        {"Energie in kWh", "Energy in kWh"},
	"open_day":        {"Tag anzeigen", "Open day"},
	"unauthorized":    {"Anmeldung erforderlich", "Sign-in required"},
	"blocked":         {"Zu viele falsche Anmeldungen von dieser Adresse – bitte später erneut versuchen.", "Too many wrong sign-ins from this address: try again later."},
	"as_of":           {"Stand", "As of"},
	"power_total":     {"Leistung gesamt", "Total power"},
	"bad_month":       {"Ungültiger Monat (JJJJ-MM).", "Invalid month (YYYY-MM)."},
	"bad_year":        {"Ungültiges Jahr (JJJJ).", "Invalid year (YYYY)."},
	"flow_prod":       {"Erzeugung", "Production"},
	"flow_home":       {"Verbrauch Haus", "Home consumption"},
	"running_energy":  {"Bezug kumuliert", "Running consumption"},
	"bad_view":        {"Ungültige Ansicht:", "Invalid view:"},
	"view_from":       {"Von", "From"},
	"view_to":         {"Bis", "To"},
	"resolution":      {"Auflösung", "Resolution"},
	"res_raw":         {"alle Messwerte", "every reading"},
	"y_max":           {"Skala bis (W)", "Axis up to (W)"},
	"active_hours":    {"Aktive Stunden", "Active hours"},
	"whole_day":       {"Ganzer Tag", "Whole day"},
	"all_devices":     {"alle Geräte", "all devices"},
	"prev_month":      {"Vormonat", "Previous month"},
	"next_month":      {"Folgemonat", "Next month"},
	"prev_year":       {"Vorjahr", "Previous year"},
	"next_year":       {"Folgejahr", "Next year"},
	"production":      {"Erzeugung", "Production"},
	"first_prod":      {"Erste Erzeugung", "First production"},
	"last_prod":       {"Letzte Erzeugung", "Last production"},
	"zoom_hint":       {"Ziehen oder zwei Finger zum Zoomen · Pfeiltasten: Tage", "Drag or pinch to zoom · arrow keys: days"},
	"legend_hint":     {"Antippen blendet aus", "Tap to hide"},
	"computing":       {"Tageswerte werden berechnet", "Summarizing days"},
	"computing_left":  {"Tage ausstehend", "days still to do"},
	"computing_note":  {"Die Summen unten sind noch unvollständig; die Seite lädt sich neu.", "The totals below are still incomplete; the page reloads itself."},
	"csv":             {"CSV", "CSV"},
	"sort_hint":       {"Spaltenkopf sortiert", "Click a heading to sort"},
	// the home (roles, flows, money)
	"home_consumption": {"Hausverbrauch", "Home consumption"},
	"flow_now":         {"Energiefluss jetzt", "Energy flow now"},
	"flow_solar_home":  {"Solar → Haus", "Solar → home"},
	"flow_grid_home":   {"Netz → Haus", "Grid → home"},
	"flow_export":      {"Haus → Netz", "Home → grid"},
	"flow_battery":     {"Batterie → Haus", "Battery → home"},
	"flow_charge":      {"→ Batterie", "→ battery"},
	"appliances":       {"Geräte", "Appliances"},
	"rest_of_home":     {"Rest des Hauses", "Rest of the home"},
	"flow_import":      {"Bezug", "Import"},
	"flow_exp":         {"Einspeisung", "Export"},
	"self_consumption": {"Eigenverbrauch", "Self-consumption"},
	"autarky":          {"Autarkie", "Autarky"},
	"cost":             {"Kosten", "Cost"},
	"revenue":          {"Vergütung", "Revenue"},
	"savings":          {"Ersparnis", "Savings"},
	"payback":          {"Amortisation", "Payback"},
	"investment":       {"Investition", "Investment"},
	"earned":           {"erwirtschaftet", "earned"},
	"per_year":         {"pro Jahr", "per year"},
	"paid_back":        {"amortisiert", "paid back"},
	"paid_back_by":     {"voraussichtlich amortisiert am", "projected to pay back on"},
	"no_payback":       {"beim jetzigen Tempo nicht absehbar", "not in sight at the current pace"},
	"no_grid_meter":    {"Ohne Netzzähler sind Hausverbrauch, Eigenverbrauch und Autarkie unbekannt.", "Without a grid meter, home consumption, self-consumption and autarky are unknown."},
}

// T translates a message key.
func (l lang) T(key string) string {
	m, ok := messages[key]
	if !ok {
		return key
	}
	if l == langDE {
		return m[0]
	}
	return m[1]
}

// num formats v with dec decimals and the language's separators.
func (l lang) num(v float64, dec int) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "–"
	}
	s := strconv.FormatFloat(v, 'f', dec, 64)
	if strings.TrimLeft(s, "-0.") == "" {
		s = strings.TrimPrefix(s, "-")
	}
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	ip, frac, _ := strings.Cut(s, ".")
	thou, dot := ",", "."
	if l == langDE {
		thou, dot = ".", ","
	}
	var b strings.Builder
	if neg {
		b.WriteString("−") // a real minus sign
	}
	for i, c := range ip {
		if i > 0 && (len(ip)-i)%3 == 0 {
			b.WriteString(thou)
		}
		b.WriteRune(c)
	}
	if frac != "" {
		b.WriteString(dot)
		b.WriteString(frac)
	}
	return b.String()
}

// W formats a power in W: one decimal below 100 W.
func (l lang) W(v float64) string { return l.WNum(v) + " W" }

// WNum is W without the unit (the live page sets the unit smaller).
func (l lang) WNum(v float64) string {
	if math.Abs(v) < 100 {
		return l.num(v, 1)
	}
	return l.num(v, 0)
}

// Wh formats an energy: Wh below 1 kWh, kWh above.
func (l lang) Wh(v float64) string {
	if math.Abs(v) < 1000 {
		return l.num(v, 0) + " Wh"
	}
	return l.num(v/1000, 2) + " kWh"
}

// Money formats an amount with two decimals and the currency.
func (l lang) Money(v float64, currency string) string {
	sym := map[string]string{"EUR": "€", "USD": "$", "GBP": "£", "CHF": "CHF"}[currency]
	if sym == "" {
		sym = currency
	}
	if l == langDE || currency == "CHF" {
		return l.num(v, 2) + " " + sym
	}
	return sym + l.num(v, 2)
}

// Unit formats a value of a legacy line with its unit (two decimals).
func (l lang) Unit(v float64, unit string) string {
	if unit == "W" {
		return l.W(v)
	}
	return l.num(v, 2) + " " + unit
}

// Pct formats a share (0…1) as a percentage; ok false gives "–".
func (l lang) Pct(v float64, ok bool) string {
	if !ok {
		return "–"
	}
	return l.num(v*100, 0) + " %"
}

// KWh formats an energy in kWh with 2 decimals (tables).
func (l lang) KWh(v float64) string { return l.num(v/1000, 2) + " kWh" }

// C formats a temperature.
func (l lang) C(v float64) string { return l.num(v, 1) + " °C" }

// V formats a voltage.
func (l lang) V(v float64) string { return l.num(v, 1) + " V" }

// Dur formats a duration in hours and minutes (seconds below a minute).
func (l lang) Dur(secs float64) string {
	d := time.Duration(math.Round(secs)) * time.Second
	h, m, s := int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60
	switch {
	case h > 0:
		return strconv.Itoa(h) + " h " + strconv.Itoa(m) + " min"
	case m > 0:
		return strconv.Itoa(m) + " min " + strconv.Itoa(s) + " s"
	}
	return strconv.Itoa(s) + " s"
}

// longDate formats a day for headings.
func (l lang) longDate(t time.Time) string {
	if l == langDE {
		return weekdaysDE[t.Weekday()] + ", " + t.Format("02.01.2006")
	}
	return t.Format("Monday, 2 January 2006")
}

// monthName names a month ("2026-03").
func (l lang) monthName(key string) string {
	t, err := time.Parse("2006-01", key)
	if err != nil {
		return key
	}
	if l == langDE {
		return monthsDE[t.Month()-1] + " " + t.Format("2006")
	}
	return t.Format("January 2006")
}

// shortDate formats a day for tables.
func (l lang) shortDate(day string) string {
	t, err := time.Parse("2006-01-02", day)
	if err != nil {
		return day
	}
	if l == langDE {
		return weekdaysDE[t.Weekday()][:2] + " " + t.Format("02.01.")
	}
	return t.Format("Mon 2 Jan")
}

var weekdaysDE = [...]string{"Sonntag", "Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag"}
var monthsDE = [...]string{"Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September", "Oktober", "November", "Dezember"}
