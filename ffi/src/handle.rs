//! `ordq_db`: the database handle, its open options and its backend.
//!
//! The handle wraps a `Backend` enum: a local file ([`Db`]) or a broker
//! connection ([`Client`], remote mode). Every export reaches the engine
//! through the [`Engine`] trait, so both behave alike behind one handle
//! type.

use crate::base::ordq_status;
use crate::base::{
    boundary, boundary_value, obj, opt_obj, opt_str_in, slice_in, str_in, usize_from_u64, Out,
};
use crate::base::{ordq_error, Failure, FfiResult};
use ordq_core::{Db, Durability, Engine, Options};
use ordq_wire::client::{Client, ClientOptions};
use std::ffi::c_char;
use std::path::PathBuf;
use std::time::Duration;

/// `ordq_options.durability`: a call returns after its batch is fsynced.
pub const ORDQ_DURABILITY_IMMEDIATE: i32 = 0;
/// `ordq_options.durability`: a call returns after its batch is committed
/// in memory (a power loss can lose the last moments, never corrupt).
pub const ORDQ_DURABILITY_NONE: i32 = 1;

/// An open database. Opaque; create with `ordq_open`, release with
/// `ordq_db_free`. Thread-safe: every call taking a `const ordq_db *` may
/// run concurrently from any thread; only `ordq_db_free` needs the handle
/// to be otherwise unused.
pub struct ordq_db {
    backend: Backend,
}

/// Where a handle's engine lives.
enum Backend {
    /// The engine runs in this process on a local file.
    Local(Db),
    /// The engine runs in a broker; calls go over its connection.
    Remote(Client),
}

impl ordq_db {
    /// The engine behind the handle.
    pub(crate) fn engine(&self) -> &dyn Engine {
        match &self.backend {
            Backend::Local(db) => db,
            Backend::Remote(c) => c,
        }
    }
}

/// Options for `ordq_open`. Fill with `ordq_options_init`, then change
/// fields. Values are taken as given, except that 0 means "default" for
/// `max_batch`, `cache_size` and `timeout_ms`. The local-file fields
/// (`durability` to `cache_size`) are ignored in remote mode (the broker's
/// own options apply); the remote fields (`token` to `runtime_len`) are
/// ignored for a file.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ordq_options {
    /// `ORDQ_DURABILITY_IMMEDIATE` (default) or `ORDQ_DURABILITY_NONE`.
    pub durability: i32,
    /// Largest payload accepted by enqueue, bytes (default 1 MiB).
    pub max_payload: u64,
    /// Largest result accepted by complete, bytes (default 1 MiB).
    pub max_result: u64,
    /// Largest task key or idempotency key, bytes (default 1024).
    pub max_key: u64,
    /// Largest total size of a task's header names and values, bytes
    /// (default 64 KiB).
    pub max_headers: u64,
    /// How long payloads, results and idempotency keys of done tasks are
    /// kept, ms (default 24 h).
    pub retain_done_ms: u64,
    /// Most operations applied in one transaction (default 8192; 0 = default).
    pub max_batch: u64,
    /// Page cache size, bytes (default 64 MiB; 0 = default).
    pub cache_size: u64,
    /// Remote mode: the broker's access token, `token_len` bytes of UTF-8.
    /// NULL (default) reads the `ORDQ_TOKEN` environment variable (unset
    /// or empty: no token); non-NULL with length 0 sends no token.
    pub token: *const c_char,
    /// Length of `token` in bytes (0 when NULL).
    pub token_len: usize,
    /// Remote mode: deadline of every call, ms (default 30000; 0 =
    /// default). A claim adds its `wait_ms`. A call not answered in time
    /// fails with `ORDQ_UNAVAILABLE`.
    pub timeout_ms: u64,
    /// Remote mode: client library name sent to the broker, `client_len`
    /// bytes of UTF-8 (NULL = `"ordq-ffi/<version>"`), e.g. `"ordq-go/0.2.0"`.
    pub client: *const c_char,
    /// Length of `client` in bytes (0 when NULL).
    pub client_len: usize,
    /// Remote mode: runtime sent to the broker, `runtime_len` bytes of
    /// UTF-8 (NULL = `"c"`), e.g. `"go1.22.1"`.
    pub runtime: *const c_char,
    /// Length of `runtime` in bytes (0 when NULL).
    pub runtime_len: usize,
    /// A missing file is `ORDQ_NOT_FOUND` instead of a new database
    /// (default false: created crash-atomically). Ignored in remote mode.
    pub must_exist: bool,
    /// Ed25519 signing key (its 32-byte seed) for checkpoint records, or
    /// NULL (default: checkpoints unsigned). Copied at open. Ignored in
    /// remote mode (the broker's key signs).
    pub signing_key: *const u8,
    /// Length of `signing_key` in bytes: 32, or 0 when NULL.
    pub signing_key_len: usize,
}

impl Default for ordq_options {
    fn default() -> Self {
        let d = Options::default();
        ordq_options {
            durability: ORDQ_DURABILITY_IMMEDIATE,
            max_payload: d.max_payload as u64,
            max_result: d.max_result as u64,
            max_key: d.max_key as u64,
            max_headers: d.max_headers as u64,
            retain_done_ms: ordq_core::clock::millis(d.retain_done),
            max_batch: d.max_batch as u64,
            cache_size: d.cache_size as u64,
            token: std::ptr::null(),
            token_len: 0,
            timeout_ms: 0,
            client: std::ptr::null(),
            client_len: 0,
            runtime: std::ptr::null(),
            runtime_len: 0,
            must_exist: false,
            signing_key: std::ptr::null(),
            signing_key_len: 0,
        }
    }
}

impl ordq_options {
    /// The engine's options; rejects unknown enum values and a signing
    /// key that is not 32 bytes.
    ///
    /// # Safety
    /// `signing_key` follows the input rules of the header.
    unsafe fn to_core(self) -> FfiResult<Options> {
        let d = Options::default();
        let durability = match self.durability {
            ORDQ_DURABILITY_IMMEDIATE => Durability::Immediate,
            ORDQ_DURABILITY_NONE => Durability::None,
            v => {
                return Err(Failure::invalid(format!(
                    "options.durability {v} is not ORDQ_DURABILITY_IMMEDIATE (0) or ORDQ_DURABILITY_NONE (1)"
                )))
            }
        };
        let or_default = |v: u64, d: usize| if v == 0 { d } else { usize_from_u64(v) };
        let signing_key = if self.signing_key.is_null() && self.signing_key_len == 0 {
            None
        } else {
            // SAFETY: forwarded caller contract for `signing_key`.
            let key =
                unsafe { slice_in(self.signing_key, self.signing_key_len, "opts.signing_key")? };
            Some(<[u8; 32]>::try_from(key).map_err(|_| {
                Failure::invalid(format!(
                    "opts.signing_key is {} bytes; an Ed25519 seed is 32",
                    key.len()
                ))
            })?)
        };
        Ok(Options {
            durability,
            max_payload: usize_from_u64(self.max_payload),
            max_result: usize_from_u64(self.max_result),
            max_key: usize_from_u64(self.max_key),
            max_headers: usize_from_u64(self.max_headers),
            retain_done: Duration::from_millis(self.retain_done_ms),
            max_batch: or_default(self.max_batch, d.max_batch),
            cache_size: or_default(self.cache_size, d.cache_size),
            must_exist: self.must_exist,
            signing_key,
            ..d
        })
    }

    /// The client's options, with the token from `ORDQ_TOKEN` when
    /// `token` is NULL.
    ///
    /// # Safety
    /// The string fields follow the input rules of the header.
    unsafe fn to_client(self) -> FfiResult<ClientOptions> {
        // SAFETY: forwarded caller contract for the string fields.
        let (token, client, runtime) = unsafe {
            (
                opt_str_in(self.token, self.token_len, "opts.token")?,
                opt_str_in(self.client, self.client_len, "opts.client")?,
                opt_str_in(self.runtime, self.runtime_len, "opts.runtime")?,
            )
        };
        let token = match token {
            Some("") => None,
            Some(t) => Some(t.to_string()),
            None => env_token()?,
        };
        let d = ClientOptions::default();
        Ok(ClientOptions {
            token,
            timeout: match self.timeout_ms {
                0 => d.timeout,
                ms => Duration::from_millis(ms),
            },
            client: client.map_or_else(
                || concat!("ordq-ffi/", env!("CARGO_PKG_VERSION")).to_string(),
                str::to_string,
            ),
            runtime: runtime.unwrap_or("c").to_string(),
        })
    }
}

/// The token in `ORDQ_TOKEN`: `None` when unset or empty.
fn env_token() -> FfiResult<Option<String>> {
    match std::env::var("ORDQ_TOKEN") {
        Ok(t) if t.is_empty() => Ok(None),
        Ok(t) => Ok(Some(t)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(Failure::invalid(
            "the ORDQ_TOKEN environment variable is not valid UTF-8",
        )),
    }
}

/// Fills `opts` with the defaults. NULL is a no-op.
///
/// # Safety
/// `opts` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ordq_options_init(opts: *mut ordq_options) {
    boundary_value((), || {
        // SAFETY: the caller passes NULL or writable storage.
        if let Ok(out) = unsafe { Out::new(opts, "opts") } {
            out.write(ordq_options::default());
        }
    })
}

/// What an `ordq_open` URI names.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    /// A database file.
    File(PathBuf),
    /// A broker address (`unix://…` or `tcp://…`), checked by the client.
    Remote,
}

fn parse_uri(uri: &str) -> FfiResult<Target> {
    if uri.is_empty() {
        return Err(Failure::invalid("uri must not be empty"));
    }
    if uri.contains('\0') {
        return Err(Failure::invalid("uri must not contain NUL bytes"));
    }
    if let Some(path) = uri.strip_prefix("file://") {
        if path.is_empty() {
            return Err(Failure::invalid("uri \"file://\" names no file"));
        }
        return Ok(Target::File(PathBuf::from(path)));
    }
    if uri.starts_with("unix://") || uri.starts_with("tcp://") {
        return Ok(Target::Remote);
    }
    if let Some(i) = uri.find("://") {
        let scheme = &uri[..i];
        let looks_like_scheme = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if looks_like_scheme {
            return Err(Failure::invalid(format!(
                "unsupported uri scheme {scheme:?}: use a file path, file://, unix:// or tcp://"
            )));
        }
    }
    Ok(Target::File(PathBuf::from(uri)))
}

/// Opens a database. `uri` (`uri_len` bytes of UTF-8, not NUL-terminated)
/// is a file path or `file://PATH` (created crash-atomically if missing),
/// or a broker address `unix:///path/to/ordq.sock` or `tcp://host:port`
/// (remote mode: the same handle, every call goes to the broker). `opts`
/// may be NULL for defaults. On success `*db_out` receives a handle to
/// free with `ordq_db_free`. A file held by another handle or process
/// gives `ORDQ_ALREADY_OPEN`; a broker that cannot be reached within the
/// timeout gives `ORDQ_UNAVAILABLE`.
///
/// # Safety
/// Pointer arguments follow the rules at the top of this header.
#[no_mangle]
pub unsafe extern "C" fn ordq_open(
    uri: *const c_char,
    uri_len: usize,
    opts: *const ordq_options,
    db_out: *mut *mut ordq_db,
    err_out: *mut *mut ordq_error,
) -> ordq_status {
    boundary(err_out, || {
        // SAFETY: caller contract for every pointer argument.
        let (uri, opts, out) = unsafe {
            (
                str_in(uri, uri_len, "uri")?,
                opt_obj(opts, "opts")?.copied().unwrap_or_default(),
                Out::new(db_out, "db_out")?,
            )
        };
        let backend = match parse_uri(uri)? {
            // SAFETY: caller contract for the option struct's signing key.
            Target::File(path) => Backend::Local(Db::open(path, unsafe { opts.to_core() }?)?),
            // SAFETY: caller contract for the option struct's strings.
            Target::Remote => Backend::Remote(Client::connect(uri, unsafe { opts.to_client() }?)?),
        };
        out.write(Box::into_raw(Box::new(ordq_db { backend })));
        Ok(())
    })
}

/// Closes the handle: finishes queued work, makes it durable and releases
/// the file (remote mode: waits for calls in flight, then closes the
/// connection; leases stay with the broker). Idempotent; every later call on the handle (other than
/// `ordq_db_close` and `ordq_db_free`) returns `ORDQ_CLOSED`. The handle
/// must still be freed with `ordq_db_free`.
///
/// # Safety
/// Pointer arguments follow the rules at the top of this header.
#[no_mangle]
pub unsafe extern "C" fn ordq_db_close(
    db: *const ordq_db,
    err_out: *mut *mut ordq_error,
) -> ordq_status {
    boundary(err_out, || {
        // SAFETY: caller contract.
        let db = unsafe { obj(db, "db") }?;
        Ok(db.engine().close()?)
    })
}

/// Closes (if still open) and frees a handle. NULL is a no-op. No other
/// call may use the handle concurrently or afterwards.
///
/// # Safety
/// `db` is NULL or a handle from `ordq_open` not yet freed.
#[no_mangle]
pub unsafe extern "C" fn ordq_db_free(db: *mut ordq_db) {
    boundary_value((), || {
        if db.is_null() {
            return;
        }
        // SAFETY: `db` came from `Box::into_raw` in `ordq_open` and is freed
        // once, with no concurrent users (caller contract).
        let db = unsafe { Box::from_raw(db) };
        let _ = db.engine().close();
    })
}

/// Waits until everything sent before is committed, and runs due timers
/// (lease expiry, retry readiness) and retention now.
///
/// # Safety
/// Pointer arguments follow the rules at the top of this header.
#[no_mangle]
pub unsafe extern "C" fn ordq_db_sync(
    db: *const ordq_db,
    err_out: *mut *mut ordq_error,
) -> ordq_status {
    boundary(err_out, || {
        // SAFETY: caller contract.
        let db = unsafe { obj(db, "db") }?;
        Ok(db.engine().sync()?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_forms() {
        assert_eq!(
            parse_uri("jobs.ordq").unwrap(),
            Target::File("jobs.ordq".into())
        );
        assert_eq!(
            parse_uri("file:///tmp/j.ordq").unwrap(),
            Target::File("/tmp/j.ordq".into())
        );
        assert_eq!(parse_uri("unix:///run/ordq.sock").unwrap(), Target::Remote);
        assert_eq!(parse_uri("tcp://127.0.0.1:7000").unwrap(), Target::Remote);
        assert_eq!(
            parse_uri("http://x").unwrap_err().code,
            ordq_status::ORDQ_INVALID_ARGUMENT
        );
        assert_eq!(
            parse_uri("").unwrap_err().code,
            ordq_status::ORDQ_INVALID_ARGUMENT
        );
        assert_eq!(
            parse_uri("file://").unwrap_err().code,
            ordq_status::ORDQ_INVALID_ARGUMENT
        );
        assert_eq!(
            parse_uri("dir/a://b").unwrap(),
            Target::File("dir/a://b".into())
        );
    }

    /// `to_core` of options whose pointers are NULL or point into the test.
    fn core(o: ordq_options) -> FfiResult<Options> {
        // SAFETY: every pointer field is NULL or borrowed from a live local.
        unsafe { o.to_core() }
    }

    #[test]
    fn options_defaults_match_core_and_enums_are_checked() {
        let o = ordq_options::default();
        let c = core(o).unwrap();
        let d = Options::default();
        assert_eq!(c.max_payload, d.max_payload);
        assert_eq!(c.retain_done, d.retain_done);
        assert_eq!(c.durability, d.durability);
        let zero = ordq_options {
            max_batch: 0,
            cache_size: 0,
            ..o
        };
        let z = core(zero).unwrap();
        assert_eq!((z.max_batch, z.cache_size), (d.max_batch, d.cache_size));
        let bad = ordq_options { durability: 7, ..o };
        assert_eq!(
            core(bad).unwrap_err().code,
            ordq_status::ORDQ_INVALID_ARGUMENT
        );
        assert!(!c.must_exist && c.signing_key.is_none());
        let seed = [7u8; 32];
        let keyed = ordq_options {
            must_exist: true,
            signing_key: seed.as_ptr(),
            signing_key_len: 32,
            ..o
        };
        let k = core(keyed).unwrap();
        assert!(k.must_exist);
        assert_eq!(k.signing_key, Some(seed));
        let short = ordq_options {
            signing_key: seed.as_ptr(),
            signing_key_len: 31,
            ..o
        };
        let e = core(short).unwrap_err();
        assert_eq!(e.code, ordq_status::ORDQ_INVALID_ARGUMENT);
        assert!(e.message.contains("31 bytes"), "{}", e.message);
        let null = ordq_options {
            signing_key_len: 32,
            ..o
        };
        assert_eq!(core(null).unwrap_err().code, ordq_status::ORDQ_NULL_POINTER);
    }

    #[test]
    fn remote_options_convert_and_check_their_strings() {
        let (tok, cl, rt) = ("s3cret", "ordq-test/1", "test9");
        let o = ordq_options {
            token: tok.as_ptr().cast(),
            token_len: tok.len(),
            timeout_ms: 1500,
            client: cl.as_ptr().cast(),
            client_len: cl.len(),
            runtime: rt.as_ptr().cast(),
            runtime_len: rt.len(),
            ..ordq_options::default()
        };
        // SAFETY: the strings outlive the calls below.
        let c = unsafe { o.to_client() }.unwrap();
        assert_eq!(c.token.as_deref(), Some(tok));
        assert_eq!(c.timeout, Duration::from_millis(1500));
        assert_eq!((c.client.as_str(), c.runtime.as_str()), (cl, rt));
        // An empty, non-NULL token means "no token" (the environment is not read).
        let none = ordq_options {
            token_len: 0,
            timeout_ms: 0,
            client: std::ptr::null(),
            client_len: 0,
            runtime: std::ptr::null(),
            runtime_len: 0,
            ..o
        };
        // SAFETY: as above.
        let c = unsafe { none.to_client() }.unwrap();
        assert_eq!(c.token, None);
        assert_eq!(c.timeout, ClientOptions::default().timeout);
        assert!(c.client.starts_with("ordq-ffi/"), "{}", c.client);
        assert_eq!(c.runtime, "c");
        let bad_utf8 = [0x61u8, 0xff];
        let bad = ordq_options {
            runtime: bad_utf8.as_ptr().cast(),
            runtime_len: 2,
            ..o
        };
        // SAFETY: as above.
        let e = unsafe { bad.to_client() }.unwrap_err();
        assert_eq!(e.code, ordq_status::ORDQ_INVALID_ARGUMENT);
        assert!(e.message.contains("opts.runtime"), "{}", e.message);
        let null_with_len = ordq_options {
            token: std::ptr::null(),
            token_len: 3,
            ..o
        };
        // SAFETY: as above.
        let e = unsafe { null_with_len.to_client() }.unwrap_err();
        assert!(e.message.contains("opts.token"), "{}", e.message);
    }
}
