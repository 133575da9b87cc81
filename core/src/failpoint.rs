//! Failpoints for crash tests (feature `failpoints`, the `fail` crate):
//! named places in the log's and the writer's critical steps where a test
//! can kill the process or make the step fail. Without the feature they
//! compile to nothing.
//!
//! | name | where |
//! |---|---|
//! | `wal-mid-group` | half of a commit group written, the rest not |
//! | `wal-before-sync` | a group written, its `fdatasync` not yet called |
//! | `wal-roll` | a new segment created, no group in it yet |
//! | `writer-after-sync` | a group synced, its callers not yet answered |
//! | `checkpoint-mid` | a state checkpoint's log sync done, its redb commit not |
//! | `writer-apply` | applying a batch (a `return` action fails it with `IO`) |

/// Evaluates failpoint `$name` (see the module table). With a second
/// argument, a `return` action returns `Err(Error::Io)` from the caller.
macro_rules! failpoint {
    ($name:literal) => {
        #[cfg(feature = "failpoints")]
        fail::fail_point!($name);
    };
    ($name:literal, error) => {
        #[cfg(feature = "failpoints")]
        fail::fail_point!($name, |_| Err($crate::error::Error::Io(format!(
            "failpoint {}",
            $name
        ))));
    };
}
