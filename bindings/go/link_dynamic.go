//go:build ordq_dynamic

package ordq

// Dynamic linking (build tag ordq_dynamic): links libordq.so from
// target/release with an rpath pointing there. As in link_static.go, the
// #error turns the linker's "cannot find -lordq" into the advice to build
// the library.

/*
#cgo CFLAGS: -I${SRCDIR}/../../include
#cgo LDFLAGS: -L${SRCDIR}/../../target/release -lordq -Wl,-rpath,${SRCDIR}/../../target/release
#if !__has_include("../../target/release/libordq.so")
#error "libordq.so is not built: run `make build` in the ordq repository (or cargo build --release -p ordq-ffi-lib)"
#endif
*/
import "C"
