package dashboard

import (
	"bytes"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// The web app manifest and its PNG icons, so the dashboard installs on a
// phone's home screen and opens full screen. The PNGs are drawn here (the
// bolt of icon.svg on the brand colour) on first request, so the repository
// holds no binary images.

var iconSizes = []int{180, 192, 512}

type manifestIcon struct {
	Src     string `json:"src"`
	Sizes   string `json:"sizes"`
	Type    string `json:"type"`
	Purpose string `json:"purpose,omitempty"`
}

type webManifest struct {
	Name            string         `json:"name"`
	ShortName       string         `json:"short_name"`
	Description     string         `json:"description"`
	StartURL        string         `json:"start_url"`
	Scope           string         `json:"scope"`
	Display         string         `json:"display"`
	DisplayOverride []string       `json:"display_override"`
	BackgroundColor string         `json:"background_color"`
	ThemeColor      string         `json:"theme_color"`
	Icons           []manifestIcon `json:"icons"`
}

func (d *Dashboard) manifest(w http.ResponseWriter, r *http.Request) {
	base := d.o.BasePath + "/"
	m := webManifest{
		Name: "powermeter", ShortName: "powermeter",
		Description: "Live power, day charts and energy of your meters",
		StartURL:    base, Scope: base,
		Display: "fullscreen", DisplayOverride: []string{"fullscreen", "standalone"},
		BackgroundColor: "#101317", ThemeColor: brandHex,
		Icons: []manifestIcon{{Src: d.o.BasePath + "/static/icon.svg?v=" + d.assetV, Sizes: "any", Type: "image/svg+xml"}},
	}
	for _, n := range iconSizes[1:] {
		s := strconv.Itoa(n)
		m.Icons = append(m.Icons, manifestIcon{Src: d.o.BasePath + "/icons/" + s + ".png", Sizes: s + "x" + s, Type: "image/png", Purpose: "any"})
	}
	m.Icons = append(m.Icons, manifestIcon{Src: d.o.BasePath + "/icons/maskable-512.png", Sizes: "512x512", Type: "image/png", Purpose: "maskable"})
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/manifest+json")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, _ = w.Write(b)
}

const brandHex = "#e8590c"

var (
	iconOnce sync.Once
	iconPNG  map[string][]byte
)

// icon serves /icons/192.png, /icons/512.png, /icons/180.png (Apple touch)
// and /icons/maskable-512.png (the bolt smaller, inside the safe zone).
func (d *Dashboard) icon(w http.ResponseWriter, r *http.Request) {
	iconOnce.Do(func() {
		iconPNG = map[string][]byte{}
		for _, n := range iconSizes {
			iconPNG[strconv.Itoa(n)] = drawIcon(n, 0.8, true)
		}
		iconPNG["maskable-512"] = drawIcon(512, 0.55, false)
	})
	b, ok := iconPNG[strings.TrimSuffix(r.PathValue("name"), ".png")]
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Cache-Control", "public, max-age=86400")
	_, _ = w.Write(b)
}

// bolt is icon.svg's path, in a 24×24 box.
var bolt = [][2]float64{{13, 3}, {5, 14}, {11, 14}, {10, 21}, {18, 10}, {12, 10}}

// drawIcon draws the bolt (scaled to scale of the square) in white on the
// brand colour, 4×4 samples per pixel; rounded corners unless it is a
// maskable icon (the platform cuts its own shape).
func drawIcon(n int, scale float64, rounded bool) []byte {
	img := image.NewNRGBA(image.Rect(0, 0, n, n))
	bg := color.NRGBA{0xe8, 0x59, 0x0c, 0xff}
	fn := float64(n)
	rad := fn * 5 / 24
	inRect := func(x, y float64) bool {
		if !rounded {
			return true
		}
		cx, cy := min(max(x, rad), fn-rad), min(max(y, rad), fn-rad)
		return (x-cx)*(x-cx)+(y-cy)*(y-cy) <= rad*rad
	}
	pts := make([][2]float64, len(bolt))
	for i, p := range bolt {
		pts[i] = [2]float64{fn/2 + (p[0]-12)/24*fn*scale/0.8, fn/2 + (p[1]-12)/24*fn*scale/0.8}
	}
	inBolt := func(x, y float64) bool {
		in := false
		for i, j := 0, len(pts)-1; i < len(pts); j, i = i, i+1 {
			a, b := pts[i], pts[j]
			if (a[1] > y) != (b[1] > y) && x < (b[0]-a[0])*(y-a[1])/(b[1]-a[1])+a[0] {
				in = !in
			}
		}
		return in
	}
	const ss = 4
	for py := 0; py < n; py++ {
		for px := 0; px < n; px++ {
			var cov, white int
			for sy := 0; sy < ss; sy++ {
				for sx := 0; sx < ss; sx++ {
					x, y := float64(px)+(float64(sx)+.5)/ss, float64(py)+(float64(sy)+.5)/ss
					if !inRect(x, y) {
						continue
					}
					cov++
					if inBolt(x, y) {
						white++
					}
				}
			}
			if cov == 0 {
				continue
			}
			// white over the brand colour, by the share of samples
			f := float64(white) / float64(cov)
			mix := func(c uint8) uint8 { return uint8(float64(c)*(1-f) + 255*f + .5) }
			img.SetNRGBA(px, py, color.NRGBA{mix(bg.R), mix(bg.G), mix(bg.B), uint8(255 * cov / (ss * ss))})
		}
	}
	var buf bytes.Buffer
	_ = png.Encode(&buf, img)
	return buf.Bytes()
}
