//! What the cross-language producer and worker (`cross_producer`,
//! `cross_worker`) share: argument parsing, the task behaviours, the
//! control directory and atomically written JSON reports. The Go and Python
//! workers (examples/go/crossworker, examples/python/cross_worker.py)
//! follow the same conventions; tests/cross/scenario.py drives them all.

use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// `--name value` command-line options.
pub struct Args {
    values: HashMap<String, String>,
}

impl Args {
    /// Parses `std::env::args()`; `known` lists the accepted option names
    /// (without `--`). Exits with status 2 and a usage line on bad input.
    pub fn parse(usage: &str, known: &[&str]) -> Args {
        let mut values = HashMap::new();
        let mut it = std::env::args().skip(1);
        while let Some(a) = it.next() {
            if a == "-h" || a == "--help" {
                println!("usage: {usage}");
                std::process::exit(0);
            }
            let name = match a.strip_prefix("--") {
                Some(n) if known.contains(&n) => n.to_string(),
                _ => usage_exit(usage, &format!("unknown argument {a:?}")),
            };
            match it.next() {
                Some(v) => values.insert(name, v),
                None => usage_exit(usage, &format!("--{name} needs a value")),
            };
        }
        Args { values }
    }

    /// The value of `--name`, if given.
    pub fn opt(&self, name: &str) -> Option<String> {
        self.values.get(name).cloned()
    }

    /// The value of `--name`, or `default`.
    pub fn str(&self, name: &str, default: &str) -> String {
        self.values
            .get(name)
            .cloned()
            .unwrap_or_else(|| default.to_string())
    }

    /// The value of `--name`; exits with status 2 when it is missing.
    pub fn required(&self, usage: &str, name: &str) -> String {
        match self.values.get(name) {
            Some(v) => v.clone(),
            None => usage_exit(usage, &format!("--{name} is required")),
        }
    }

    /// The value of `--name` as a number, or `default`; exits with status 2
    /// when it does not parse.
    pub fn num<T: std::str::FromStr>(&self, usage: &str, name: &str, default: T) -> T {
        match self.values.get(name) {
            None => default,
            Some(v) => v
                .parse()
                .unwrap_or_else(|_| usage_exit(usage, &format!("--{name}: bad number {v:?}"))),
        }
    }
}

fn usage_exit(usage: &str, msg: &str) -> ! {
    eprintln!("error: {msg}\nusage: {usage}");
    std::process::exit(2)
}

/// How a worker treats a task, named in its payload (`"b"`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Behaviour {
    /// Complete at once.
    Ok,
    /// Fail (retryable) on attempt 1, complete on any later attempt.
    FailOnce,
    /// Fail (retryable) on every attempt: dead-lettered after max_attempts.
    FailAlways,
}

impl Behaviour {
    /// The payload spelling: `ok`, `once`, `always`.
    pub fn as_str(self) -> &'static str {
        match self {
            Behaviour::Ok => "ok",
            Behaviour::FailOnce => "once",
            Behaviour::FailAlways => "always",
        }
    }

    /// Reads the behaviour of a task payload (`{"b": "...", ...}`).
    pub fn of_payload(payload: &[u8]) -> Result<Behaviour, String> {
        let v: Value =
            serde_json::from_slice(payload).map_err(|e| format!("payload is not JSON: {e}"))?;
        match v.get("b").and_then(Value::as_str) {
            Some("ok") => Ok(Behaviour::Ok),
            Some("once") => Ok(Behaviour::FailOnce),
            Some("always") => Ok(Behaviour::FailAlways),
            other => Err(format!("payload has no valid \"b\": {other:?}")),
        }
    }
}

/// The scenario's control directory: marker files between the
/// orchestrator and the processes.
pub struct Ctl {
    dir: PathBuf,
}

impl Ctl {
    /// The control directory `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Ctl {
        Ctl { dir: dir.into() }
    }

    /// The path of marker `name`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// True when marker `name` exists.
    pub fn has(&self, name: &str) -> bool {
        self.path(name).exists()
    }
}

/// Writes `v` to `path` atomically (temporary file, then rename), so a
/// reader never sees half a document and a killed writer leaves the last
/// complete one.
pub fn write_json(path: &Path, v: &Value) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, serde_json::to_vec_pretty(v)?)?;
    std::fs::rename(&tmp, path)
}
