//! Shared helpers for the integration tests: self-removing temporary
//! directories and databases opened with a [`ManualClock`].
#![allow(dead_code)]

use ordq_core::{Db, ManualClock, Options};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Where every manual clock starts, ms since the epoch (2023-11-14).
pub const T0: u64 = 1_700_000_000_000;

/// A fresh directory under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates a unique directory whose name contains `tag`.
    pub fn new(tag: &str) -> TempDir {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "ordq-test-{tag}-{}-{}-{nanos}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A path inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Default options with a manual clock standing at [`T0`].
pub fn manual_options() -> (Options, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(T0));
    let opts = Options {
        clock: clock.clone(),
        ..Options::default()
    };
    (opts, clock)
}

/// A database in its own temporary directory, driven by a manual clock.
/// Derefs to [`Db`].
pub struct TestDb {
    /// The open handle.
    pub db: Db,
    /// The clock every timestamp reads.
    pub clock: Arc<ManualClock>,
    /// The options the database was opened with (reused by `reopen`).
    pub opts: Options,
    /// The database file.
    pub path: PathBuf,
    /// Owns the directory; declared last so it is removed after `db` drops.
    pub dir: TempDir,
}

impl TestDb {
    /// A new database with default options and a manual clock.
    pub fn new() -> TestDb {
        TestDb::with(|_| {})
    }

    /// A new database whose options `tune` may adjust (the clock is set).
    pub fn with(tune: impl FnOnce(&mut Options)) -> TestDb {
        let dir = TempDir::new("db");
        let (mut opts, clock) = manual_options();
        tune(&mut opts);
        let path = dir.join("test.ordq");
        let db = Db::open(&path, opts.clone()).expect("open test db");
        TestDb {
            db,
            clock,
            opts,
            path,
            dir,
        }
    }

    /// Closes the handle and opens the file again with the same options.
    pub fn reopen(&mut self) {
        self.db.close();
        self.db = Db::open(&self.path, self.opts.clone()).expect("reopen test db");
    }
}

impl Default for TestDb {
    fn default() -> TestDb {
        TestDb::new()
    }
}

impl std::ops::Deref for TestDb {
    type Target = Db;
    fn deref(&self) -> &Db {
        &self.db
    }
}
