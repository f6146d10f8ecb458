package meter

import "testing"

func TestSlug(t *testing.T) {
	for in, want := range map[string]string{
		"Kühlschrank":         "kuehlschrank",
		"Balkon Süd #2":       "balkon-sued-2",
		"  Waschmaschine  ":   "waschmaschine",
		"Straße/Garage (alt)": "strasse-garage-alt",
		"€€€":                 "",
		"TV & Hi-Fi":          "tv-hi-fi",
		"Çay":                 "ay",
		"Kühlschrank Kühlschrank Kühlschrank Kühlschrank": "kuehlschrank-kuehlschrank-kuehlschrank-kuehlschr",
	} {
		if got := Slug(in); got != want {
			t.Errorf("Slug(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDeviceSlugsCollisionsAndStability(t *testing.T) {
	devs := []NamedDevice{
		{"087610000434", "Kühlschrank"},
		{"087610000435", "Lampe"},
		{"087610000436", "lampe"},
		{"087610000437", ""},
		{"087610000438", "€"},
	}
	got := DeviceSlugs(devs)
	want := map[string]string{
		"087610000434": "kuehlschrank",
		"087610000435": "lampe-087610000435",
		"087610000436": "lampe-087610000436",
		"087610000437": "087610000437",
		"087610000438": "087610000438",
	}
	for id, w := range want {
		if got[id] != w {
			t.Errorf("%s: %q, want %q", id, got[id], w)
		}
	}
	// order does not matter, and a new device does not rename the others
	rev := append([]NamedDevice{{"099990000001", "Trockner"}}, devs[4], devs[3], devs[2], devs[1], devs[0])
	got2 := DeviceSlugs(rev)
	for id, w := range want {
		if got2[id] != w {
			t.Errorf("reordered %s: %q, want %q", id, got2[id], w)
		}
	}
	if got2["099990000001"] != "trockner" {
		t.Errorf("new device %q", got2["099990000001"])
	}
}
