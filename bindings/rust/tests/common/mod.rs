//! Helpers shared by the test files: fresh temporary databases.
//!
//! With `ORDQ_TEST_MODE=broker`, every [`TestDb`] is served by its own
//! `ordq serve` (binary from `ORDQ_BIN`, default target/release/ordq, else
//! target/debug/ordq) on a Unix socket and opened by that address, so the
//! same tests cover remote mode.
#![allow(dead_code)]

use ordq::{Db, Durability, Options, QueueConfig};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
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

/// True when `ORDQ_TEST_MODE=broker`.
pub fn broker_mode() -> bool {
    match std::env::var("ORDQ_TEST_MODE").as_deref() {
        Ok("broker") => true,
        Ok("embedded") | Err(_) => false,
        Ok(m) => panic!("ORDQ_TEST_MODE must be embedded or broker, not {m:?}"),
    }
}

/// In broker mode, notes that the calling test (about the local database
/// file) is skipped and returns true: the test then returns early.
pub fn skip_in_broker_mode(test: &str, why: &str) -> bool {
    if broker_mode() {
        eprintln!("skipped in broker mode: {test}: embedded mode only: {why}");
    }
    broker_mode()
}

/// The ordq binary: `ORDQ_BIN`, else the release or debug build.
fn ordq_bin() -> PathBuf {
    if let Some(b) = std::env::var_os("ORDQ_BIN") {
        return PathBuf::from(b);
    }
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target");
    ["release", "debug"]
        .iter()
        .map(|b| target.join(b).join("ordq"))
        .find(|p| p.exists())
        .expect("no ordq binary: run `cargo build -p ordq-cli` or set ORDQ_BIN")
}

/// An `ordq serve` child serving `<dir>/q.ordq` on `<dir>/s.sock`. Drop
/// SIGTERMs it and asserts exit status 0.
pub struct Broker {
    child: Child,
    /// The `unix://` address.
    pub uri: String,
}

impl Broker {
    /// Starts a broker in `dir` (made 0700: the broker refuses
    /// group/world-writable directories) and waits until it accepts.
    pub fn start(dir: &Path) -> Broker {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let sock = dir.join("s.sock");
        let uri = format!("unix://{}", sock.display());
        let mut child = Command::new(ordq_bin())
            .arg("--db")
            .arg(dir.join("q.ordq"))
            .args(["serve", "--listen", &uri])
            .stdout(Stdio::null())
            .spawn()
            .expect("start ordq serve");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                panic!("ordq serve exited early: {st}");
            }
            if std::os::unix::net::UnixStream::connect(&sock).is_ok() {
                return Broker { child, uri };
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("ordq serve did not listen on {} in time", sock.display());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let term = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let st = self.child.wait();
        if std::thread::panicking() {
            return;
        }
        assert!(
            term.is_ok_and(|s| s.success()),
            "could not SIGTERM ordq serve"
        );
        let st = st.expect("wait for ordq serve");
        assert!(st.success(), "ordq serve exited with {st}");
    }
}

/// Fast options for tests: no fsync.
pub fn fast() -> Options {
    Options::new().durability(Durability::None)
}

/// An open database in its own directory (the directory outlives the `Db`,
/// and the broker in broker mode stops after it: fields drop in
/// declaration order). In broker mode, `uri` is the broker's address and
/// file options have no effect (the broker's own apply).
pub struct TestDb {
    pub db: Db,
    pub broker: Option<Broker>,
    pub dir: TempDir,
    pub uri: String,
}

impl TestDb {
    pub fn new(tag: &str) -> TestDb {
        TestDb::with(tag, &fast())
    }

    pub fn with(tag: &str, opts: &Options) -> TestDb {
        let dir = TempDir::new(tag);
        let (broker, uri) = if broker_mode() {
            let b = Broker::start(&dir.0);
            let uri = b.uri.clone();
            (Some(b), uri)
        } else {
            (None, dir.uri("t.ordq"))
        };
        let db = Db::open(&uri, opts).unwrap();
        TestDb {
            db,
            broker,
            dir,
            uri,
        }
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
