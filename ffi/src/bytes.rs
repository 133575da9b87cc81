//! `ordq_bytes`: an owned byte buffer handed to the caller.

use crate::base::boundary_value;

/// An owned byte buffer returned by ordq (JSON documents today). `ptr[len]`
/// is always a NUL byte (not counted in `len`), so JSON can be printed as a
/// C string. Free it with `ordq_bytes_free`. A zeroed `ordq_bytes`
/// (`{NULL, 0}`) is valid to free.
#[repr(C)]
#[derive(Debug)]
pub struct ordq_bytes {
    /// First byte; never NULL for a buffer ordq returned.
    pub ptr: *mut u8,
    /// Number of bytes, not counting the trailing NUL.
    pub len: usize,
}

impl ordq_bytes {
    /// Hands `v` to the caller, with a trailing NUL.
    pub(crate) fn from_vec(mut v: Vec<u8>) -> ordq_bytes {
        let len = v.len();
        v.push(0);
        let ptr = Box::into_raw(v.into_boxed_slice()).cast::<u8>();
        ordq_bytes { ptr, len }
    }
}

/// Frees the buffer `bytes` owns and resets it to `{NULL, 0}`, so freeing
/// it twice is harmless. NULL, and a buffer whose `ptr` is NULL, are no-ops.
///
/// # Safety
/// `bytes` is NULL or points to an `ordq_bytes` that is zeroed or was
/// filled by ordq and not modified since.
#[no_mangle]
pub unsafe extern "C" fn ordq_bytes_free(bytes: *mut ordq_bytes) {
    boundary_value((), || {
        // SAFETY: the caller passes NULL or a valid `ordq_bytes`.
        let Some(b) = (unsafe { bytes.as_mut() }) else {
            return;
        };
        if !b.ptr.is_null() {
            let whole = std::ptr::slice_from_raw_parts_mut(b.ptr, b.len + 1);
            // SAFETY: `ptr`/`len` came from `from_vec`, which leaked a boxed
            // slice of exactly `len + 1` bytes; it is freed once because we
            // reset the struct below.
            drop(unsafe { Box::from_raw(whole) });
        }
        b.ptr = std::ptr::null_mut();
        b.len = 0;
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_with_trailing_nul_and_double_free() {
        let mut b = ordq_bytes::from_vec(b"{}".to_vec());
        assert_eq!(b.len, 2);
        // SAFETY: `b` was filled by `from_vec`; index `len` is the NUL.
        unsafe {
            assert_eq!(*b.ptr.add(2), 0);
            ordq_bytes_free(&mut b);
            assert!(b.ptr.is_null());
            ordq_bytes_free(&mut b);
            ordq_bytes_free(std::ptr::null_mut());
        }
        let mut e = ordq_bytes::from_vec(Vec::new());
        assert!(!e.ptr.is_null());
        // SAFETY: as above.
        unsafe { ordq_bytes_free(&mut e) };
    }
}
