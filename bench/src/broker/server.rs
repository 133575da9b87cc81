//! The broker under test: an `ordq serve` process on a Unix socket in a
//! fresh temporary directory with a fresh database (metrics on a loopback
//! port chosen by the system), and `/proc` probes of
//! another process (CPU of the whole process and of its writer thread,
//! bytes it sent to storage).

use crate::sys::{cpu_secs_of, Usage};
use crate::util::TempDir;
use ordq_wire::client::{Client, ClientOptions};
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the broker may take to accept its first connection.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a graceful shutdown (SIGTERM) may take before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// A running `ordq serve`; killed (SIGKILL) and its directory removed on
/// drop unless [`Server::stop`] ran.
pub struct Server {
    child: Option<Child>,
    /// `unix://` URI of its socket.
    pub uri: String,
    log: PathBuf,
    out: PathBuf,
    /// `host:port` of its metrics endpoint, once known.
    http: Option<String>,
    // Declared last: removed after the child is gone.
    _dir: TempDir,
}

impl Server {
    /// Starts `ordq serve` (binary `ordq`) on `DIR/bench.ordq` and
    /// `unix://DIR/ordq.sock`, DIR fresh under `base`, and returns once
    /// it answers: with a connected client for the driver.
    pub fn start(ordq: &Path, base: &Path) -> Result<(Server, Client), String> {
        let dir =
            TempDir::new(base).map_err(|e| format!("temp dir under {}: {e}", base.display()))?;
        let sock = dir.file("ordq.sock");
        let uri = format!("unix://{}", sock.display());
        let log = dir.file("broker.log");
        let log_file = fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let out = dir.file("broker.out");
        let out_file = fs::File::create(&out).map_err(|e| format!("{}: {e}", out.display()))?;
        let child = Command::new(ordq)
            .arg("serve")
            .arg("--db")
            .arg(dir.file("bench.ordq"))
            .arg("--listen")
            .arg(&uri)
            .arg("--http")
            .arg("127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(out_file)
            .stderr(log_file)
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot run {}: {e} (build it: cargo build --release -p ordq-cli)",
                    ordq.display()
                )
            })?;
        let mut server = Server {
            child: Some(child),
            uri,
            log,
            out,
            http: None,
            _dir: dir,
        };
        let client = server.connect()?;
        // Printed before the broker answers its first client.
        server.http = fs::read_to_string(&server.out).ok().and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("ordq: metrics on http://")
                    .and_then(|r| r.strip_suffix("/metrics"))
                    .map(str::to_string)
            })
        });
        Ok((server, client))
    }

    /// The broker's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }

    /// What the broker printed on stderr so far (last lines), for errors.
    fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(5)..].join(" | ");
        if tail.is_empty() {
            "no output".into()
        } else {
            tail
        }
    }

    /// Connects a client, retrying until the broker answers.
    fn connect(&mut self) -> Result<Client, String> {
        let start = Instant::now();
        loop {
            let opts = ClientOptions {
                client: "ordq-bench".into(),
                runtime: "rust".into(),
                ..ClientOptions::default()
            };
            match Client::connect(&self.uri, opts) {
                Ok(c) => return Ok(c),
                Err(e) => {
                    if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                        return Err(format!("ordq serve exited ({status}): {}", self.log_tail()));
                    }
                    if start.elapsed() > START_TIMEOUT {
                        return Err(format!(
                            "ordq serve did not answer on {} within {START_TIMEOUT:?}: {e}; {}",
                            self.uri,
                            self.log_tail()
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }

    /// The writer's `(commits, operations)` since the broker started,
    /// from its metrics endpoint (`ordq_engine_commits_total`,
    /// `ordq_engine_operations_total`); `None` if unavailable.
    pub fn writer_counters(&self) -> Option<(u64, u64)> {
        let addr = self.http.as_deref()?;
        let mut s = TcpStream::connect(addr).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(s, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        let value = |name: &str| {
            text.lines().find_map(|l| {
                l.strip_prefix(name)
                    .and_then(|v| v.strip_prefix(' '))
                    .and_then(|v| v.trim().parse::<u64>().ok())
            })
        };
        Some((
            value("ordq_engine_commits_total")?,
            value("ordq_engine_operations_total")?,
        ))
    }

    /// Graceful shutdown: SIGTERM, then waits for exit status 0.
    pub fn stop(mut self) -> Result<(), String> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = child.id() as libc::pid_t;
        // SAFETY: kill(2) on our own child's pid, which is not yet reaped.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let start = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(s)) if s.success() => return Ok(()),
                Ok(Some(s)) => {
                    return Err(format!(
                        "ordq serve exited with {s} on SIGTERM: {}",
                        self.log_tail()
                    ))
                }
                Ok(None) if start.elapsed() > STOP_TIMEOUT => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "ordq serve did not stop within {STOP_TIMEOUT:?} of SIGTERM"
                    ));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => return Err(format!("waiting for ordq serve: {e}")),
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// CPU seconds of process `pid` (all its threads).
fn pid_cpu(pid: u32) -> Option<f64> {
    cpu_secs_of(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// CPU seconds of thread `tid` of process `pid`.
fn tid_cpu(pid: u32, tid: &str) -> Option<f64> {
    cpu_secs_of(&fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).ok()?)
}

/// The thread of `pid` named `ordq-writer`, if any.
fn writer_tid(pid: u32) -> Option<String> {
    for e in fs::read_dir(format!("/proc/{pid}/task")).ok()?.flatten() {
        let comm = fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        if comm.trim_end() == "ordq-writer" {
            return Some(e.file_name().to_string_lossy().into_owned());
        }
    }
    None
}

/// Bytes process `pid` caused to be sent to storage.
fn pid_written(pid: u32) -> Option<u64> {
    let io = fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
}

/// A snapshot of another process's counters.
pub struct PidProbe {
    pid: u32,
    writer: Option<String>,
    cpu: Option<f64>,
    writer_cpu: Option<f64>,
    written: Option<u64>,
}

impl PidProbe {
    /// Snapshots process `pid` and its writer thread.
    pub fn start(pid: u32) -> PidProbe {
        let writer = writer_tid(pid);
        PidProbe {
            pid,
            cpu: pid_cpu(pid),
            writer_cpu: writer.as_deref().and_then(|t| tid_cpu(pid, t)),
            written: pid_written(pid),
            writer,
        }
    }

    /// The counters' growth since [`PidProbe::start`].
    pub fn finish(&self) -> Usage {
        let d = |a: Option<f64>, b: Option<f64>| Some(b? - a?);
        Usage {
            writer_cpu: d(
                self.writer_cpu,
                self.writer.as_deref().and_then(|t| tid_cpu(self.pid, t)),
            ),
            proc_cpu: d(self.cpu, pid_cpu(self.pid)),
            written: pid_written(self.pid)
                .zip(self.written)
                .map(|(b, a)| b.saturating_sub(a)),
        }
    }
}
