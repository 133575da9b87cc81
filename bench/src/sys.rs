//! Linux `/proc` probes: CPU time of the whole process and of the engine's
//! writer thread, and bytes the process sent to storage. They explain a
//! figure (who was busy, how much was written); they never change it.
//! Every probe degrades to `None` where `/proc` is missing.

use std::fs;

/// Clock ticks per second of `/proc/*/stat` times (USER_HZ, 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;

/// Name the engine gives its writer thread.
const WRITER_THREAD: &str = "ordq-writer";

/// utime + stime, in seconds, from a `/proc/.../stat` line.
pub(crate) fn cpu_secs_of(stat: &str) -> Option<f64> {
    // The command name (field 2) may hold spaces; fields after its ')'
    // start at field 3 (state): utime is field 14, stime field 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ut: f64 = f.get(11)?.parse().ok()?;
    let st: f64 = f.get(12)?.parse().ok()?;
    Some((ut + st) / TICKS_PER_SEC)
}

/// CPU seconds used by the whole process (all threads, living or not).
pub fn process_cpu() -> Option<f64> {
    cpu_secs_of(&fs::read_to_string("/proc/self/stat").ok()?)
}

/// The thread id of the (only) open database's writer thread.
pub fn writer_tid() -> Option<String> {
    for e in fs::read_dir("/proc/self/task").ok()?.flatten() {
        let comm = fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        if comm.trim_end() == WRITER_THREAD {
            return Some(e.file_name().to_string_lossy().into_owned());
        }
    }
    None
}

/// CPU seconds used so far by thread `tid` of this process.
pub fn thread_cpu(tid: &str) -> Option<f64> {
    cpu_secs_of(&fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?)
}

/// Bytes this process caused to be sent to storage (`write_bytes`).
pub fn write_bytes() -> Option<u64> {
    let io = fs::read_to_string("/proc/self/io").ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
}

/// A snapshot taken before a measured run.
pub struct Probe {
    writer: Option<String>,
    writer_cpu: Option<f64>,
    proc_cpu: Option<f64>,
    written: Option<u64>,
}

/// What happened between a [`Probe`] and its [`Probe::finish`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// CPU seconds of the writer thread (None: no writer, e.g. raw redb).
    pub writer_cpu: Option<f64>,
    /// CPU seconds of the whole process.
    pub proc_cpu: Option<f64>,
    /// Bytes sent to storage.
    pub written: Option<u64>,
}

impl Probe {
    /// Snapshots the counters; looks for a writer thread when `engine`.
    pub fn start(engine: bool) -> Probe {
        let writer = if engine { writer_tid() } else { None };
        Probe {
            writer_cpu: writer.as_deref().and_then(thread_cpu),
            writer,
            proc_cpu: process_cpu(),
            written: write_bytes(),
        }
    }

    /// The counters' growth since [`Probe::start`].
    pub fn finish(&self) -> Usage {
        let d = |a: Option<f64>, b: Option<f64>| Some(b? - a?);
        Usage {
            writer_cpu: d(self.writer_cpu, self.writer.as_deref().and_then(thread_cpu)),
            proc_cpu: d(self.proc_cpu, process_cpu()),
            written: write_bytes()
                .zip(self.written)
                .map(|(b, a)| b.saturating_sub(a)),
        }
    }
}

/// One line describing the machine: CPUs, model, load average.
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let load = fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".into());
    format!("{cpus} CPUs ({model}), load average at start {load}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_spaces_in_name() {
        let line = "42 (a b) c) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0";
        assert_eq!(cpu_secs_of(line), Some(3.0));
        assert_eq!(cpu_secs_of("garbage"), None);
    }
}
