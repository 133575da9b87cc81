//! What one measured run produced.

use crate::sys::Usage;
use crate::util::percentile;

/// Latency percentiles of one run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Latency {
    /// p50 from `claim` returning to `complete` returning, in µs.
    pub claim_p50_us: u64,
    /// p99 of the same, in µs.
    pub claim_p99_us: u64,
    /// p50 from the lease's `leased_at` to `complete` returning, in ms
    /// (the engine's timestamps have millisecond resolution).
    pub lease_p50_ms: u64,
    /// p99 of the same, in ms.
    pub lease_p99_ms: u64,
    /// Samples (one per job).
    pub samples: usize,
}

impl Latency {
    /// Percentiles of per-job samples: µs since claim returned, ms since
    /// `leased_at`.
    pub fn from_samples(mut claim_us: Vec<u64>, mut lease_ms: Vec<u64>) -> Latency {
        claim_us.sort_unstable();
        lease_ms.sort_unstable();
        Latency {
            claim_p50_us: percentile(&claim_us, 50.0),
            claim_p99_us: percentile(&claim_us, 99.0),
            lease_p50_ms: percentile(&lease_ms, 50.0),
            lease_p99_ms: percentile(&lease_ms, 99.0),
            samples: claim_us.len(),
        }
    }
}

/// Counts and timings of one run.
#[derive(Debug, Clone, Default)]
pub struct Measure {
    /// Units of work done: jobs, tasks enqueued or rows inserted.
    pub items: u64,
    /// Calls into the engine (or commits, for the raw baseline).
    pub calls: u64,
    /// Wall-clock seconds of the measured part.
    pub secs: f64,
    /// CPU and I/O used meanwhile.
    pub usage: Usage,
    /// Claim-to-complete latency (end-to-end runs).
    pub latency: Option<Latency>,
    /// Claims that returned nothing (end-to-end runs).
    pub empty_claims: u64,
    /// Claims that returned something (end-to-end runs).
    pub claims: u64,
}

impl Measure {
    /// Items per second.
    pub fn rate(&self) -> f64 {
        if self.secs > 0.0 {
            self.items as f64 / self.secs
        } else {
            0.0
        }
    }

    /// Calls (or commits) per second.
    pub fn call_rate(&self) -> f64 {
        if self.secs > 0.0 {
            self.calls as f64 / self.secs
        } else {
            0.0
        }
    }

    /// Writer-thread CPU as a share of wall time (1.0 = one core all the
    /// time), if known.
    pub fn writer_busy(&self) -> Option<f64> {
        self.usage
            .writer_cpu
            .map(|c| c / self.secs.max(f64::EPSILON))
    }

    /// Whole-process CPU as a share of wall time (2.0 = two cores).
    pub fn proc_busy(&self) -> Option<f64> {
        self.usage.proc_cpu.map(|c| c / self.secs.max(f64::EPSILON))
    }

    /// Bytes sent to storage per item, if known.
    pub fn bytes_per_item(&self) -> Option<f64> {
        self.usage
            .written
            .map(|b| b as f64 / self.items.max(1) as f64)
    }
}
