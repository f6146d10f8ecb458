package logger

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
)

// LED drives a Linux LED class device (/sys/class/leds/NAME) with the timer
// trigger, blinking at the rate of the logger's state.
type LED struct {
	dir  string
	mu   sync.Mutex
	rate int
}

// NewLED returns the LED at dir (a folder with trigger, delay_on, delay_off).
func NewLED(dir string) *LED { return &LED{dir: dir} }

// Blink sets the LED to blink perSecond times a second, half on, half off.
func (l *LED) Blink(perSecond int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if perSecond <= 0 || perSecond == l.rate {
		return nil
	}
	half := 500 / perSecond
	if err := l.write("trigger", "timer"); err != nil {
		return err
	}
	if err := l.write("delay_on", strconv.Itoa(half)); err != nil {
		return err
	}
	if err := l.write("delay_off", strconv.Itoa(half)); err != nil {
		return err
	}
	l.rate = perSecond
	return nil
}

// write writes an attribute; sysfs attributes exist already, so the file is
// not created.
func (l *LED) write(name, value string) error {
	p := filepath.Join(l.dir, name)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return fmt.Errorf("status LED: %w", err)
	}
	if _, err := f.WriteString(value); err != nil {
		f.Close()
		return fmt.Errorf("status LED: write %s: %w", p, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("status LED: write %s: %w", p, err)
	}
	return nil
}
