//go:build !ordq_dynamic

package ordq

// Static linking (the default): the Go binary embeds libordq.a and needs no
// shared library at run time. Build the library first with
// `cargo build --release -p ordq-ffi-lib` (or `make build`). The #error
// below turns the linker's "cannot find libordq.a" into that advice: the
// go command runs the C compiler in this directory with -I for it, so the
// quoted relative name is this package's ../../target/release/libordq.a.
// (A package already in the build cache is not compiled again: a library
// deleted after a successful build still fails at link time.)

/*
#cgo CFLAGS: -I${SRCDIR}/../../include
#cgo LDFLAGS: ${SRCDIR}/../../target/release/libordq.a -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
#if !__has_include("../../target/release/libordq.a")
#error "libordq.a is not built: run `make build` in the ordq repository (or cargo build --release -p ordq-ffi-lib)"
#endif
*/
import "C"
