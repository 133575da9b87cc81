//go:build debug

package ordq

import "runtime"

// gcStress runs a full collection before every handle access when built
// with -tags debug, so a missing runtime.KeepAlive frees a handle while C
// still uses it and the tests crash instead of passing by luck.
func gcStress() { runtime.GC() }
