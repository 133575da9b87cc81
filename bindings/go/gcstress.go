//go:build !debug

package ordq

// gcStress is a no-op outside -tags debug builds (see gcstress_debug.go).
func gcStress() {}
