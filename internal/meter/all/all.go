// Package all links in every meter family (and its emulator): import it for
// its side effects where the registry must know all of them (the CLI).
package all

import (
	_ "github.com/powermeter/powermeter/internal/meter/ahoydtu"   // AhoyDTU
	_ "github.com/powermeter/powermeter/internal/meter/epever"    // ESP-Epever solar charge controller
	_ "github.com/powermeter/powermeter/internal/meter/fritzdect" // FRITZ!DECT via FRITZ!Box
	_ "github.com/powermeter/powermeter/internal/meter/mqtt"      // devices that push over MQTT
	_ "github.com/powermeter/powermeter/internal/meter/opendtu"   // OpenDTU
	_ "github.com/powermeter/powermeter/internal/meter/shelly"    // Shelly Gen1 and Gen2+
	_ "github.com/powermeter/powermeter/internal/meter/tasmota"   // Tasmota
)
