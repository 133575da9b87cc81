//! The ordq C library: `libordq.so` and `libordq.a`. Every exported
//! `ordq_*` symbol is defined in `ordq-ffi` (`ffi/src`); this crate only
//! links it into the C library artifacts, so that the Rust binding crate
//! `ordq` and the C library `ordq` do not share an output filename
//! (cargo#6313).
pub use ordq_ffi::*;
