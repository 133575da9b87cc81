//go:build ordq_dynamic

package ordq

// Dynamic linking (build tag ordq_dynamic): links libordq.so from
// target/release with an rpath pointing there.

/*
#cgo CFLAGS: -I${SRCDIR}/../../include
#cgo LDFLAGS: -L${SRCDIR}/../../target/release -lordq -Wl,-rpath,${SRCDIR}/../../target/release
*/
import "C"
