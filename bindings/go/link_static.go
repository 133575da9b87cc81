//go:build !ordq_dynamic

package ordq

// Static linking (the default): the Go binary embeds libordq.a and needs no
// shared library at run time. Build the library first with
// `cargo build --release -p ordq-ffi-lib` (or `make build`).

/*
#cgo CFLAGS: -I${SRCDIR}/../../include
#cgo LDFLAGS: ${SRCDIR}/../../target/release/libordq.a -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
*/
import "C"
