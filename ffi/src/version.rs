//! ABI and library versions.

use crate::base::boundary_value;
use std::ffi::c_char;

/// ABI major version: a binding built for another major must refuse to
/// load the library (while it is 0, the minor version too).
pub const ORDQ_ABI_VERSION_MAJOR: u32 = 0;
/// ABI minor version: additions only (within a non-zero major).
pub const ORDQ_ABI_VERSION_MINOR: u32 = 5;
/// ABI patch version: no interface change.
pub const ORDQ_ABI_VERSION_PATCH: u32 = 0;
/// The ABI version this header describes, packed as
/// `major << 16 | minor << 8 | patch`; compare with `ordq_abi_version()`.
pub const ORDQ_ABI_VERSION: u32 =
    (ORDQ_ABI_VERSION_MAJOR << 16) | (ORDQ_ABI_VERSION_MINOR << 8) | ORDQ_ABI_VERSION_PATCH;

/// The ABI version of the loaded library, packed as
/// `major << 16 | minor << 8 | patch` (see `ORDQ_ABI_VERSION`).
#[no_mangle]
pub extern "C" fn ordq_abi_version() -> u32 {
    boundary_value(ORDQ_ABI_VERSION, || ORDQ_ABI_VERSION)
}

/// The library's version string (e.g. `"0.1.0"`); static, never free it.
#[no_mangle]
pub extern "C" fn ordq_version_string() -> *const c_char {
    const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");
    boundary_value(VERSION.as_ptr().cast(), || VERSION.as_ptr().cast())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn cargo(v: &str) -> u32 {
        v.parse().unwrap()
    }

    #[test]
    fn abi_version_follows_cargo_metadata() {
        assert_eq!(
            ORDQ_ABI_VERSION_MAJOR,
            cargo(env!("CARGO_PKG_VERSION_MAJOR"))
        );
        assert_eq!(
            ORDQ_ABI_VERSION_MINOR,
            cargo(env!("CARGO_PKG_VERSION_MINOR"))
        );
        assert_eq!(
            ORDQ_ABI_VERSION_PATCH,
            cargo(env!("CARGO_PKG_VERSION_PATCH"))
        );
        assert_eq!(ordq_abi_version() >> 16, ORDQ_ABI_VERSION_MAJOR);
        assert_eq!((ordq_abi_version() >> 8) & 0xff, ORDQ_ABI_VERSION_MINOR);
        assert_eq!(ordq_abi_version() & 0xff, ORDQ_ABI_VERSION_PATCH);
        // SAFETY: a static NUL-terminated string.
        let v = unsafe { CStr::from_ptr(ordq_version_string()) };
        assert_eq!(v.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
    }
}
