package server

import (
	"net"
	"testing"
)

type fakeAddr string

func (a fakeAddr) Network() string { return "tcp" }
func (a fakeAddr) String() string  { return string(a) }

func TestExposed(t *testing.T) {
	for addr, want := range map[net.Addr]bool{
		&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080}:  false,
		&net.TCPAddr{IP: net.IPv6loopback, Port: 8080}:        false,
		&net.TCPAddr{IP: net.IPv4(127, 1, 2, 3), Port: 80}:    false,
		fakeAddr("localhost:8080"):                            false,
		&net.TCPAddr{IP: net.IPv4zero, Port: 8080}:            true,
		&net.TCPAddr{IP: net.IPv6unspecified, Port: 8080}:     true,
		&net.TCPAddr{IP: net.IPv4(192, 168, 1, 10), Port: 80}: true,
		fakeAddr(":8080"):          true,
		fakeAddr("example.org:80"): true,
	} {
		if got := exposed(addr); got != want {
			t.Errorf("exposed(%s) = %v, want %v", addr, got, want)
		}
	}
}
