//! The broker's counters and their Prometheus text rendering, together
//! with every queue's stats from the engine.

use ordq_core::error::ErrorCode;
use ordq_core::Db;
use ordq_wire::protocol::Request;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds of the request latency histogram, seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Per-operation counters.
#[derive(Default)]
struct OpStats {
    requests: AtomicU64,
    micros: AtomicU64,
}

/// Why a connection was refused or closed early.
#[derive(Clone, Copy)]
pub(crate) enum Reject {
    /// Over the connection limit.
    Limit,
    /// Bad or missing token.
    Auth,
    /// No valid `hello` in time, or a wrong protocol version.
    Hello,
    /// A frame over the size limit.
    Oversized,
}

/// Counters kept by the broker; all relaxed atomics.
pub(crate) struct Metrics {
    conns: AtomicU64,
    conns_total: AtomicU64,
    rejected: [AtomicU64; 4],
    ops: Vec<OpStats>,
    /// Frames that were not a request at all.
    bad_frames: AtomicU64,
    errors: Vec<AtomicU64>,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_micros: AtomicU64,
    inflight: AtomicU64,
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        Metrics {
            conns: AtomicU64::new(0),
            conns_total: AtomicU64::new(0),
            rejected: Default::default(),
            ops: Request::OPS.iter().map(|_| OpStats::default()).collect(),
            bad_frames: AtomicU64::new(0),
            errors: (0..=ErrorCode::ALL.len())
                .map(|_| AtomicU64::new(0))
                .collect(),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            buckets: Default::default(),
            latency_count: AtomicU64::new(0),
            latency_micros: AtomicU64::new(0),
            inflight: AtomicU64::new(0),
        }
    }

    pub(crate) fn conn_opened(&self) {
        self.conns.fetch_add(1, Relaxed);
        self.conns_total.fetch_add(1, Relaxed);
    }

    pub(crate) fn conn_closed(&self) {
        self.conns.fetch_sub(1, Relaxed);
    }

    pub(crate) fn rejected(&self, why: Reject) {
        self.rejected[why as usize].fetch_add(1, Relaxed);
    }

    pub(crate) fn bytes_in(&self, n: usize) {
        self.bytes_in.fetch_add(n as u64, Relaxed);
    }

    pub(crate) fn bytes_out(&self, n: usize) {
        self.bytes_out.fetch_add(n as u64, Relaxed);
    }

    pub(crate) fn bad_frame(&self) {
        self.bad_frames.fetch_add(1, Relaxed);
    }

    pub(crate) fn error(&self, code: ErrorCode) {
        let i = (code.as_i32().max(0) as usize).min(self.errors.len() - 1);
        self.errors[i].fetch_add(1, Relaxed);
    }

    pub(crate) fn start(&self) {
        self.inflight.fetch_add(1, Relaxed);
    }

    /// One request of `op` answered after `took`.
    pub(crate) fn finish(&self, op: &str, took: Duration) {
        self.inflight.fetch_sub(1, Relaxed);
        let us = took.as_micros().min(u64::MAX as u128) as u64;
        if let Some(i) = Request::OPS.iter().position(|o| *o == op) {
            self.ops[i].requests.fetch_add(1, Relaxed);
            self.ops[i].micros.fetch_add(us, Relaxed);
        }
        let secs = took.as_secs_f64();
        if let Some(b) = BUCKETS.iter().position(|&b| secs <= b) {
            self.buckets[b].fetch_add(1, Relaxed);
        }
        self.latency_count.fetch_add(1, Relaxed);
        self.latency_micros.fetch_add(us, Relaxed);
    }

    /// Everything in Prometheus text format (version 0.0.4).
    pub(crate) fn render(&self, db: &Db, pool_threads: usize) -> String {
        let mut o = String::with_capacity(8192);
        let g = |o: &mut String, name: &str, kind: &str, help: &str, v: u64| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        };
        g(
            &mut o,
            "ordq_broker_connections",
            "gauge",
            "Client connections open now.",
            self.conns.load(Relaxed),
        );
        g(
            &mut o,
            "ordq_broker_connections_total",
            "counter",
            "Client connections accepted.",
            self.conns_total.load(Relaxed),
        );
        let _ = writeln!(
            o,
            "# HELP ordq_broker_connections_rejected_total Connections refused or closed by the broker, by reason.\n# TYPE ordq_broker_connections_rejected_total counter"
        );
        for (i, r) in ["limit", "auth", "hello", "oversized"].iter().enumerate() {
            let _ = writeln!(
                o,
                "ordq_broker_connections_rejected_total{{reason=\"{r}\"}} {}",
                self.rejected[i].load(Relaxed)
            );
        }
        g(
            &mut o,
            "ordq_broker_requests_in_flight",
            "gauge",
            "Requests being processed now.",
            self.inflight.load(Relaxed),
        );
        g(
            &mut o,
            "ordq_broker_pool_threads",
            "gauge",
            "Threads in the broker's request pool.",
            pool_threads as u64,
        );
        let _ = writeln!(
            o,
            "# HELP ordq_broker_requests_total Requests answered, by operation.\n# TYPE ordq_broker_requests_total counter"
        );
        for (i, op) in Request::OPS.iter().enumerate() {
            let _ = writeln!(
                o,
                "ordq_broker_requests_total{{op=\"{op}\"}} {}",
                self.ops[i].requests.load(Relaxed)
            );
        }
        let _ = writeln!(
            o,
            "# HELP ordq_broker_op_seconds_total Time spent answering requests, by operation.\n# TYPE ordq_broker_op_seconds_total counter"
        );
        for (i, op) in Request::OPS.iter().enumerate() {
            let _ = writeln!(
                o,
                "ordq_broker_op_seconds_total{{op=\"{op}\"}} {}",
                self.ops[i].micros.load(Relaxed) as f64 / 1e6
            );
        }
        g(
            &mut o,
            "ordq_broker_bad_frames_total",
            "counter",
            "Frames that were not a valid request (malformed JSON, unknown op, bad arguments).",
            self.bad_frames.load(Relaxed),
        );
        let _ = writeln!(
            o,
            "# HELP ordq_broker_errors_total Error responses sent, by error code.\n# TYPE ordq_broker_errors_total counter"
        );
        for c in ErrorCode::ALL {
            let _ = writeln!(
                o,
                "ordq_broker_errors_total{{code=\"{}\"}} {}",
                c.name(),
                self.errors[c.as_i32() as usize].load(Relaxed)
            );
        }
        g(
            &mut o,
            "ordq_broker_received_bytes_total",
            "counter",
            "Bytes read from clients.",
            self.bytes_in.load(Relaxed),
        );
        g(
            &mut o,
            "ordq_broker_sent_bytes_total",
            "counter",
            "Bytes written to clients.",
            self.bytes_out.load(Relaxed),
        );
        let _ = writeln!(
            o,
            "# HELP ordq_broker_request_seconds Request latency in the broker, from decoded to answered.\n# TYPE ordq_broker_request_seconds histogram"
        );
        let mut cum = 0;
        for (i, b) in BUCKETS.iter().enumerate() {
            cum += self.buckets[i].load(Relaxed);
            let _ = writeln!(o, "ordq_broker_request_seconds_bucket{{le=\"{b}\"}} {cum}");
        }
        let count = self.latency_count.load(Relaxed);
        let _ = writeln!(
            o,
            "ordq_broker_request_seconds_bucket{{le=\"+Inf\"}} {count}\nordq_broker_request_seconds_sum {}\nordq_broker_request_seconds_count {count}",
            self.latency_micros.load(Relaxed) as f64 / 1e6
        );
        let (commits, ops) = db.writer_counters();
        g(
            &mut o,
            "ordq_engine_commits_total",
            "counter",
            "Commit groups the engine's writer appended to the log.",
            commits,
        );
        g(
            &mut o,
            "ordq_engine_operations_total",
            "counter",
            "Operations received by the engine's writer (many per commit: group commit).",
            ops,
        );
        if let Ok(log) = db.log_info() {
            g(
                &mut o,
                "ordq_log_bytes",
                "gauge",
                "Bytes held by the segment log's files.",
                log.bytes,
            );
            g(
                &mut o,
                "ordq_log_segments",
                "gauge",
                "Segment files of the log.",
                log.segments as u64,
            );
            g(
                &mut o,
                "ordq_log_uncheckpointed_records",
                "gauge",
                "Log records after the last state checkpoint (what an open after a crash replays).",
                log.next_lsn.saturating_sub(log.checkpoint_lsn),
            );
        }
        render_queues(&mut o, db);
        o
    }
}

/// Every queue's stats as labelled gauges and counters.
fn render_queues(o: &mut String, db: &Db) {
    let stats: Vec<_> = match db.list_queues() {
        Ok(qs) => qs.iter().filter_map(|q| db.stats(&q.name).ok()).collect(),
        Err(_) => Vec::new(),
    };
    type Field = fn(&ordq_core::types::QueueStats) -> f64;
    let series: [(&str, &str, &str, Field); 17] = [
        ("ordq_queue_ready", "gauge", "Tasks ready.", |s| {
            s.ready as f64
        }),
        ("ordq_queue_leased", "gauge", "Tasks leased.", |s| {
            s.leased as f64
        }),
        (
            "ordq_queue_retry_wait",
            "gauge",
            "Tasks waiting for a retry.",
            |s| s.retry_wait as f64,
        ),
        ("ordq_queue_done", "gauge", "Tasks done.", |s| s.done as f64),
        ("ordq_queue_dead", "gauge", "Dead letters held.", |s| {
            s.dead as f64
        }),
        (
            "ordq_queue_oldest_pending_age_seconds",
            "gauge",
            "Age of the oldest unfinished task.",
            |s| s.oldest_pending_age_ms as f64 / 1000.0,
        ),
        (
            "ordq_queue_next_offset",
            "gauge",
            "Offset the next enqueue gets.",
            |s| s.next_offset as f64,
        ),
        (
            "ordq_queue_enqueued_total",
            "counter",
            "Tasks enqueued.",
            |s| s.totals.enqueued as f64,
        ),
        (
            "ordq_queue_completed_total",
            "counter",
            "Tasks completed.",
            |s| s.totals.completed as f64,
        ),
        ("ordq_queue_failed_total", "counter", "fail calls.", |s| {
            s.totals.failed as f64
        }),
        (
            "ordq_queue_retried_total",
            "counter",
            "Retries scheduled.",
            |s| s.totals.retried as f64,
        ),
        (
            "ordq_queue_dead_lettered_total",
            "counter",
            "Tasks dead-lettered.",
            |s| s.totals.dead_lettered as f64,
        ),
        (
            "ordq_queue_lease_expired_total",
            "counter",
            "Leases that expired.",
            |s| s.totals.lease_expired as f64,
        ),
        (
            "ordq_queue_rollbacks_total",
            "counter",
            "complete/fail calls refused by fencing (lease lost): work thrown away.",
            |s| s.totals.rollbacks as f64,
        ),
        (
            "ordq_queue_released_total",
            "counter",
            "Leases given back.",
            |s| s.totals.released as f64,
        ),
        (
            "ordq_queue_redriven_total",
            "counter",
            "Dead letters redriven.",
            |s| s.totals.redriven as f64,
        ),
        (
            "ordq_queue_purged_total",
            "counter",
            "Dead letters purged.",
            |s| s.totals.purged as f64,
        ),
    ];
    for (name, kind, help, f) in series {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for s in &stats {
            // Queue names are [A-Za-z0-9._-]: nothing to escape.
            let _ = writeln!(o, "{name}{{queue=\"{}\"}} {}", s.queue, f(s));
        }
    }
}
