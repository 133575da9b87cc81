//! Helpers shared by the test files: fresh temporary databases.
#![allow(dead_code)]

use ordq::{Db, Durability, Options, QueueConfig};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// A fresh directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "ordq-rs-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// A database path inside the directory, as the `&str` URI `Db::open` takes.
    pub fn uri(&self, name: &str) -> String {
        self.join(name).to_str().unwrap().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Fast options for tests: no fsync.
pub fn fast() -> Options {
    Options::new().durability(Durability::None)
}

/// An open database in its own directory (the directory outlives the `Db`:
/// fields drop in declaration order).
pub struct TestDb {
    pub db: Db,
    pub dir: TempDir,
    pub uri: String,
}

impl TestDb {
    pub fn new(tag: &str) -> TestDb {
        TestDb::with(tag, &fast())
    }

    pub fn with(tag: &str, opts: &Options) -> TestDb {
        let dir = TempDir::new(tag);
        let uri = dir.uri("t.ordq");
        let db = Db::open(&uri, opts).unwrap();
        TestDb { db, dir, uri }
    }

    /// A database with one queue `q` of `cfg`.
    pub fn queue(tag: &str, cfg: &QueueConfig) -> TestDb {
        let t = TestDb::new(tag);
        t.db.create_queue("q", cfg).unwrap();
        t
    }
}

impl std::ops::Deref for TestDb {
    type Target = Db;
    fn deref(&self) -> &Db {
        &self.db
    }
}

/// `a` and `b` are within `tol` of each other.
pub fn close_to(a: SystemTime, b: SystemTime, tol: Duration) -> bool {
    let d = a.duration_since(b).unwrap_or_else(|e| e.duration());
    d <= tol
}
