//go:build !unix

package sqlite

func lockShared(string) (func(), error)    { return func() {}, nil }
func lockExclusive(string) (func(), error) { return func() {}, nil }
