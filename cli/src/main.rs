//! `ordq`: command-line tool for ordq databases. Creates the database and
//! queues, enqueues tasks, inspects tasks and stats, and manages dead
//! letters. Exit codes: 0 ok, 2 usage, `10 + engine error code` otherwise
//! (see docs/CLI.md).

mod duration;
mod error;
mod output;
mod serve;
mod target;

use clap::{Args, Parser, Subcommand, ValueEnum};
use duration::{format_duration, parse_duration};
use error::CliError;
use ordq_core::{
    Backoff, DlqPolicy, EnqueueOptions, Ordering, QueueConfig, QueueInfo, Receipt, RedriveMode,
};
use output::{format_ts, print_faults, print_task, task_json};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::time::Duration;
use target::Target;

/// Durable, strictly ordered job queues: manage an ordq database.
#[derive(Parser, Debug)]
#[command(name = "ordq", version, propagate_version = true)]
#[command(
    after_help = "Exit codes: 0 ok, 2 usage error, 10 + engine error code \
    (e.g. 12 not found, 14 database already open, 22 unavailable). See docs/CLI.md."
)]
struct Cli {
    /// Database file, or a broker address: unix:///path/to/ordq.sock or tcp://host:port.
    #[arg(long, env = "ORDQ_DB", global = true, value_name = "PATH|ADDR")]
    db: Option<String>,

    /// File holding the broker's access token (default: the ORDQ_TOKEN
    /// environment variable); give it before the command.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,

    /// Secret key file (`ordq keygen`) that signs the checkpoints of a
    /// database file this command writes to.
    #[arg(long, env = "ORDQ_SIGNING_KEY", global = true, value_name = "FILE")]
    signing_key: Option<PathBuf>,

    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create the database file (no-op if it exists and is an ordq database).
    Init,
    /// Create, list, show or delete queues.
    #[command(subcommand)]
    Queue(QueueCmd),
    /// Append a task to a queue and print its receipt.
    Enqueue(EnqueueArgs),
    /// Show the next unfinished tasks in offset order, without leasing them.
    Peek {
        /// Queue name.
        queue: String,
        /// Most tasks to show.
        #[arg(long, default_value_t = 10)]
        limit: usize,
        /// First offset to look at.
        #[arg(long, default_value_t = 0, value_name = "OFFSET")]
        from: u64,
    },
    /// Inspect one task.
    #[command(subcommand)]
    Task(TaskCmd),
    /// Show a queue's counts, per-shard load and lifetime totals.
    Stats {
        /// Queue name.
        queue: String,
    },
    /// List, inspect, redrive or purge dead letters.
    #[command(subcommand)]
    Dlq(DlqCmd),
    /// Serve the database to worker processes (the broker) until SIGTERM/SIGINT.
    Serve(serve::ServeArgs),
    /// Write a new Ed25519 signing key to FILE (mode 0600) and its public
    /// key to FILE.pub; never overwrites.
    Keygen {
        /// Where the secret key goes.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Check the database (a file, or through a broker while it serves)
    /// against its log: frames, hash chains,
    /// checkpoints and their signatures, and the state rebuilt from the
    /// log (exit 0 clean; 40 log, 41 chain, 42 checkpoint, 43 signature,
    /// 44 state).
    Verify {
        /// Public key file (or secret key file) to check signatures with;
        /// default: the key the database recorded.
        #[arg(long, value_name = "FILE")]
        pubkey: Option<PathBuf>,
        /// A ledger exported earlier (`ordq checkpoint export`): every
        /// checkpoint in it must be in the database unchanged (finds
        /// history cut back to an older point). A database file only.
        #[arg(long, value_name = "FILE")]
        anchor: Option<PathBuf>,
    },
    /// Prove from the log alone that a queue kept lane order, completed
    /// every task under its latest lease and gave each one outcome (exit 0
    /// clean, 45 on a violation).
    Audit {
        /// Queue name.
        queue: String,
        /// Only the tasks of this key.
        #[arg(long)]
        key: Option<String>,
    },
    /// Write a verified, consistent copy of the database while it serves
    /// (a file, or through a broker: then PATH is on the broker's machine
    /// and must be absolute); its log goes to PATH.log/. Never overwrites.
    Backup {
        /// Where the copy goes.
        #[arg(long, value_name = "PATH")]
        to: PathBuf,
    },
    /// Restore a backup to a new database file and verify it; the backup
    /// stays as it was. Never overwrites.
    Restore {
        /// The backup's state file.
        backup: PathBuf,
        /// Where the restored database goes.
        #[arg(long, value_name = "PATH")]
        to: PathBuf,
    },
    /// Rebuild the database's state from its log alone into a new
    /// database and print how the current state differs (the original is
    /// never written; stop its broker first). Exit 0 when they agree, 46
    /// when they differ.
    Recover {
        /// Where the rebuilt database goes.
        #[arg(long, value_name = "PATH")]
        out: PathBuf,
        /// Rebuild only through this checkpoint (its sequence number).
        #[arg(long, value_name = "N")]
        from_checkpoint: Option<u64>,
    },
    /// Make a state checkpoint now (a checkpoint record in the log, signed
    /// with --signing-key) and print the log's extent; `checkpoint export`
    /// prints the checkpoint ledger.
    Checkpoint {
        #[command(subcommand)]
        cmd: Option<CheckpointCmd>,
    },
    /// Checkpoint, then remove the segment-log files the state no longer
    /// needs (a database file, not a broker: `ordq serve --log-retention`
    /// does it while serving).
    Compact,
}

#[derive(Subcommand, Debug)]
enum CheckpointCmd {
    /// Print the checkpoint chain as JSON lines (seq, lsn, hash, the signed
    /// checkpoint, its signature), to keep outside the machine as an anchor
    /// for `ordq verify --anchor`. A database file only.
    Export {
        /// Only checkpoints from this sequence number on.
        #[arg(long, default_value_t = 0, value_name = "N")]
        since: u64,
    },
}

#[derive(Subcommand, Debug)]
enum QueueCmd {
    /// Create a queue; its configuration is fixed from then on.
    Create(QueueCreateArgs),
    /// List every queue.
    List,
    /// Show one queue's configuration.
    Show {
        /// Queue name.
        name: String,
    },
    /// Delete a queue and all its tasks.
    Delete {
        /// Queue name.
        name: String,
        /// Do not ask for confirmation (required when stdin is not a terminal).
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Args, Debug)]
struct QueueCreateArgs {
    /// Queue name: [A-Za-z0-9][A-Za-z0-9._-]{0,127}.
    name: String,
    /// Number of shards (1..=4096).
    #[arg(long, default_value_t = 16)]
    shards: u32,
    /// Lane grouping: the unit of strict order.
    #[arg(long, value_enum, default_value_t = OrderingArg::Key)]
    ordering: OrderingArg,
    /// Attempts before a task is dead-lettered.
    #[arg(long, default_value_t = 10)]
    max_attempts: u32,
    /// Default lease duration (e.g. 30s).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    lease: Duration,
    /// What a lane does when one of its tasks is dead-lettered.
    #[arg(long, value_enum, default_value_t = DlqPolicyArg::Skip)]
    dlq_policy: DlqPolicyArg,
    /// Delay before the first retry.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    backoff_initial: Duration,
    /// Upper bound on any retry delay.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    backoff_max: Duration,
    /// Growth factor per attempt (>= 1).
    #[arg(long, default_value_t = 2.0)]
    backoff_multiplier: f64,
    /// Fraction of each delay randomly taken off, in [0, 1].
    #[arg(long, default_value_t = 0.2)]
    backoff_jitter: f64,
    /// Succeed when the queue exists with this same configuration (one
    /// that differs is still an error naming the fields).
    #[arg(long)]
    if_not_exists: bool,
}

/// Lane grouping.
#[derive(ValueEnum, Clone, Copy, Debug)]
enum OrderingArg {
    /// FIFO per task key, parallel across keys.
    Key,
    /// One lane per shard.
    Shard,
    /// One lane for the whole queue.
    Global,
    /// No ordering.
    None,
}

/// Dead-letter lane policy.
#[derive(ValueEnum, Clone, Copy, Debug)]
enum DlqPolicyArg {
    /// The lane moves on.
    Skip,
    /// The lane waits until the dead letter is redriven or purged.
    Block,
}

#[derive(Args, Debug)]
struct EnqueueArgs {
    /// Queue name.
    queue: String,
    /// Task key (tasks with one key run in order under `--ordering key`).
    key: String,
    /// Payload text; `-` reads the payload from stdin. Empty if omitted.
    #[arg(conflicts_with = "file")]
    payload: Option<String>,
    /// Read the payload from a file (bytes, any content).
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// Priority; higher runs first among claimable lane heads.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    priority: i32,
    /// Run no earlier than this long from now (e.g. 5s).
    #[arg(long, value_parser = parse_duration)]
    delay: Option<Duration>,
    /// Run no earlier than this time, ms since the epoch.
    #[arg(long, value_name = "MS")]
    not_before: Option<u64>,
    /// Attempts for this task (overrides the queue's).
    #[arg(long)]
    max_attempts: Option<u32>,
    /// A repeated enqueue with the same key returns the first receipt.
    #[arg(long, value_name = "K")]
    idempotency_key: Option<String>,
    /// Header `name=value`; repeatable.
    #[arg(long = "header", value_name = "K=V", value_parser = parse_header)]
    headers: Vec<(String, String)>,
}

#[derive(Subcommand, Debug)]
enum TaskCmd {
    /// Show all of a task's metadata, payload and result.
    Show {
        /// Queue name.
        queue: String,
        /// Task offset.
        offset: u64,
    },
}

#[derive(Subcommand, Debug)]
enum DlqCmd {
    /// List dead letters in offset order.
    List {
        /// Queue name.
        queue: String,
        /// Only dead letters after this offset (for paging).
        #[arg(long, value_name = "OFFSET")]
        after: Option<u64>,
        /// Most to list.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Show one dead letter with its fault history.
    Show {
        /// Queue name.
        queue: String,
        /// Dead letter offset.
        offset: u64,
    },
    /// Send a dead letter back for another round of attempts.
    Redrive {
        /// Queue name.
        queue: String,
        /// Dead letter offset.
        offset: u64,
        /// `head`: back to its lane at its original offset; `new-offset`: re-enqueue at the tail.
        #[arg(long, value_enum, default_value_t = RedriveArg::Head)]
        mode: RedriveArg,
    },
    /// Delete one dead letter's payload for good, or all of a queue's.
    Purge {
        /// Queue name.
        queue: String,
        /// Dead letter offset.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        offset: Option<u64>,
        /// Purge every dead letter of the queue.
        #[arg(long)]
        all: bool,
        /// Do not ask for confirmation (required when stdin is not a terminal).
        #[arg(long)]
        yes: bool,
    },
}

/// Redrive mode.
#[derive(ValueEnum, Clone, Copy, Debug)]
enum RedriveArg {
    /// Back to the head of its lane at its original offset.
    Head,
    /// Re-enqueued at a new offset at the tail.
    NewOffset,
}

/// Parses `name=value` (the name must be non-empty).
fn parse_header(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("invalid header {s:?}: expected NAME=VALUE")),
    }
}

fn main() {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve(_)) {
        // Like other Unix filters, end quietly by SIGPIPE when the reader
        // of stdout goes away (`ordq peek q | head`) instead of panicking
        // on the failed print. The broker keeps it ignored: it writes to
        // sockets, and the client never raises it (core/tests/client_sigpipe.rs).
        // SAFETY: sets a signal disposition before any thread is started.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let json = cli.json;
    let code = match run(cli) {
        Ok(()) => 0,
        Err(e) => {
            if json {
                eprintln!("{}", e.to_json());
            } else {
                eprintln!("ordq: error: {e}");
            }
            e.exit_code()
        }
    };
    let _ = std::io::stdout().flush();
    std::process::exit(code);
}

/// Opens the target named by `--db`.
fn open(cli: &Cli, create: bool) -> Result<Target, CliError> {
    let spec = cli
        .db
        .as_deref()
        .ok_or_else(|| CliError::invalid("no database given: pass --db PATH or set ORDQ_DB"))?;
    let key = cli
        .signing_key
        .as_deref()
        .map(ordq_core::keys::read_secret)
        .transpose()?;
    Target::open(spec, create, cli.token_file.as_deref(), key)
}

/// Asks on the terminal, or requires `--yes` when stdin is not one.
fn confirm(yes: bool, what: &str) -> Result<(), CliError> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(CliError::invalid(format!(
            "refusing to {what} without --yes (stdin is not a terminal)"
        )));
    }
    eprint!("{what}? [y/N] ");
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| CliError::io(e.to_string()))?;
    if matches!(line.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(CliError::invalid(format!("{what}: not confirmed")))
    }
}

fn print_json(v: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).expect("JSON values always serialise")
    );
}

fn receipt_out(json: bool, r: &Receipt) {
    if json {
        print_json(&serde_json::to_value(r).unwrap_or(Value::Null));
    } else {
        println!(
            "offset={} shard={} id={} duplicate={}",
            r.offset, r.shard, r.id, r.duplicate
        );
    }
}

fn queue_out(q: &QueueInfo) {
    let c = &q.config;
    let rows = [
        ("name", q.name.clone()),
        ("id", q.id.to_string()),
        ("created_at", format_ts(q.created_at)),
        ("shards", c.shards.to_string()),
        ("ordering", enum_name(&c.ordering)),
        ("max_attempts", c.max_attempts.to_string()),
        ("lease", format_duration(c.lease)),
        ("dlq_policy", enum_name(&c.dlq_policy)),
        ("backoff_initial", format_duration(c.backoff.initial)),
        ("backoff_max", format_duration(c.backoff.max)),
        ("backoff_multiplier", c.backoff.multiplier.to_string()),
        ("backoff_jitter", c.backoff.jitter.to_string()),
    ];
    for (k, v) in rows {
        println!("{k:<19} {v}");
    }
}

/// The serde (wire) name of a unit enum value.
fn enum_name<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn run(cli: Cli) -> Result<(), CliError> {
    let json = cli.json;
    match &cli.command {
        Command::Init => {
            let db = cli.db.as_deref().unwrap_or_default();
            let existed = std::path::Path::new(db).exists();
            let t = open(&cli, true)?;
            t.close();
            if json {
                print_json(&json!({ "db": cli.db, "ok": true, "created": !existed }));
            } else if existed {
                println!("{db} is already an ordq database; nothing changed");
            } else {
                println!("created {db}");
            }
        }
        Command::Serve(args) => {
            let key = cli
                .signing_key
                .as_deref()
                .map(ordq_core::keys::read_secret)
                .transpose()?;
            serve::run(cli.db.as_deref(), key, args)?
        }
        Command::Queue(cmd) => {
            let t = open(&cli, false)?;
            queue_cmd(&t, json, cmd)?;
        }
        Command::Enqueue(args) => {
            // Read the payload before opening, so a failing read leaves no trace.
            let payload = read_payload(args)?;
            let t = open(&cli, false)?;
            let opts = EnqueueOptions {
                priority: args.priority,
                not_before: args.not_before,
                delay: args.delay,
                max_attempts: args.max_attempts,
                idempotency_key: args.idempotency_key.clone(),
                headers: args.headers.iter().cloned().collect::<BTreeMap<_, _>>(),
            };
            let r = t.enqueue(&args.queue, &args.key, &payload, opts)?;
            receipt_out(json, &r);
        }
        Command::Peek { queue, limit, from } => {
            let t = open(&cli, false)?;
            peek(&t, json, queue, *limit, *from)?;
        }
        Command::Task(TaskCmd::Show { queue, offset }) => {
            let t = open(&cli, false)?;
            let task = t.get_task(queue, *offset)?;
            let faults = t.faults(queue, *offset)?;
            if json {
                let mut v = task_json(&task);
                v["faults"] = serde_json::to_value(&faults).unwrap_or(Value::Null);
                print_json(&v);
            } else {
                print_task(&task);
                print_faults(&faults);
            }
        }
        Command::Stats { queue } => {
            let t = open(&cli, false)?;
            let s = t.stats(queue)?;
            if json {
                print_json(&serde_json::to_value(&s).unwrap_or(Value::Null));
            } else {
                stats_out(&s);
            }
        }
        Command::Dlq(cmd) => {
            let t = open(&cli, false)?;
            dlq_cmd(&t, json, cmd)?;
        }
        Command::Keygen { out } => {
            let secret = ordq_core::keys::generate()?;
            let public = ordq_core::keys::public_of(&secret);
            let mut pub_path = out.as_os_str().to_owned();
            pub_path.push(".pub");
            let pub_path = PathBuf::from(pub_path);
            if pub_path.exists() {
                return Err(CliError::new(
                    ordq_core::ErrorCode::AlreadyExists,
                    format!(
                        "{} exists; a key file is never overwritten",
                        pub_path.display()
                    ),
                ));
            }
            ordq_core::keys::write_secret(out, &secret)?;
            ordq_core::keys::write_public(&pub_path, &public)?;
            let id = ordq_core::keys::key_id(&public);
            if json {
                print_json(&json!({
                    "secret": out, "public": pub_path, "key_id": id,
                }));
            } else {
                println!(
                    "wrote {} (secret, mode 0600) and {} (public); key id {id}",
                    out.display(),
                    pub_path.display()
                );
            }
        }
        Command::Verify { pubkey, anchor } => {
            let key = pubkey
                .as_deref()
                .map(ordq_core::keys::read_public)
                .transpose()?;
            let anchor = anchor.as_deref().map(read_anchor).transpose()?;
            let t = open(&cli, false)?;
            let r = match (&anchor, &t) {
                (None, _) => t.verify(key),
                (Some(a), Target::File(db)) => db.verify_anchored(key, a).map_err(CliError::from),
                (Some(_), Target::Remote(_)) => Err(CliError::invalid(
                    "--anchor works on a database file (export and check through a broker are not built yet)",
                )),
            };
            t.close();
            let r = r?;
            verify_out(json, &r);
            if let Some(class) = r.worst() {
                return Err(CliError::with_exit(
                    class.exit_code(),
                    format!(
                        "verify found {} problem(s); the first: {}: {}",
                        r.problem_count, r.problems[0].at, r.problems[0].why
                    ),
                ));
            }
        }
        Command::Audit { queue, key } => {
            let t = open(&cli, false)?;
            let r = t.audit(queue, key.as_deref());
            t.close();
            let r = r?;
            audit_out(json, &r);
            if !r.ok {
                let v = &r.violations[0];
                return Err(CliError::with_exit(
                    45,
                    format!(
                        "audit found {} violation(s); the first: offset {} ({}): {}",
                        r.violation_count, v.offset, v.kind, v.why
                    ),
                ));
            }
        }
        Command::Backup { to } => {
            let to = to
                .to_str()
                .ok_or_else(|| CliError::invalid("--to is not valid UTF-8"))?;
            let t = open(&cli, false)?;
            let info = t.backup(to);
            t.close();
            backup_out(json, "backed up", &info?);
        }
        Command::Restore { backup, to } => {
            let info = ordq_core::Db::restore(backup, to)?;
            backup_out(json, "restored", &info);
        }
        Command::Recover {
            out,
            from_checkpoint,
        } => {
            let src = cli.db.as_deref().ok_or_else(|| {
                CliError::invalid("no database given: pass --db PATH or set ORDQ_DB")
            })?;
            if src.contains("://") {
                return Err(CliError::invalid(
                    "recover works on a database file (stop the broker first)",
                ));
            }
            let r = ordq_core::Db::recover(src, out, *from_checkpoint)?;
            if json {
                print_json(&serde_json::to_value(&r).unwrap_or(Value::Null));
            } else {
                println!(
                    "rebuilt {} from the log: {} records, up to LSN {}{}",
                    r.out,
                    r.records,
                    r.end_lsn,
                    r.checkpoint
                        .map(|c| format!(" (through checkpoint {c})"))
                        .unwrap_or_default()
                );
                for p in &r.log_problems {
                    println!(
                        "log damage (the rebuild stops before it): {}: {}",
                        p.at, p.why
                    );
                }
                if !r.compared {
                    println!("the current state could not be read: not compared");
                }
                for d in &r.differences {
                    println!("differs: {}: {}", d.at, d.why);
                }
                if r.compared && r.difference_count == 0 {
                    println!("the current state equals the rebuilt one");
                }
            }
            if r.difference_count > 0 {
                return Err(CliError::with_exit(
                    46,
                    format!(
                        "the current state differs from the log in {} rows",
                        r.difference_count
                    ),
                ));
            }
        }
        Command::Checkpoint {
            cmd: Some(CheckpointCmd::Export { since }),
        } => {
            let t = open(&cli, false)?;
            let Target::File(db) = &t else {
                t.close();
                return Err(CliError::invalid(
                    "checkpoint export works on a database file (through a broker: not built yet)",
                ));
            };
            let ledger = db.checkpoint_ledger(*since);
            t.close();
            let mut out = std::io::stdout().lock();
            for e in ledger? {
                let line = serde_json::to_string(&e).unwrap_or_default();
                let _ = writeln!(out, "{line}");
            }
        }
        Command::Checkpoint { cmd: None } => {
            let t = open(&cli, false)?;
            let info = t.checkpoint();
            t.close();
            let info = info?;
            if json {
                print_json(&serde_json::to_value(info).unwrap_or(Value::Null));
            } else {
                println!(
                    "checkpoint at LSN {}; log: {} segments, {} bytes",
                    info.checkpoint_lsn, info.segments, info.bytes
                );
            }
        }
        Command::Compact => {
            let t = open(&cli, false)?;
            let Target::File(db) = &t else {
                t.close();
                return Err(CliError::invalid(
                    "compact works on a database file; a broker removes old segments itself with `ordq serve --log-retention`",
                ));
            };
            let c = db.compact_log();
            t.close();
            let c = c?;
            if json {
                print_json(&serde_json::to_value(c).unwrap_or(Value::Null));
            } else {
                println!(
                    "removed {} segments ({} bytes); log: {} segments, {} bytes, LSN {} to {}",
                    c.removed_segments,
                    c.removed_bytes,
                    c.log.segments,
                    c.log.bytes,
                    c.log.first_lsn,
                    c.log.next_lsn
                );
            }
        }
    }
    Ok(())
}

/// Reads an exported ledger: one JSON checkpoint entry per line.
fn read_anchor(path: &std::path::Path) -> Result<Vec<ordq_core::verify::LedgerEntry>, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::invalid(format!("cannot read anchor {}: {e}", path.display())))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| {
                CliError::invalid(format!(
                    "{} line {}: not a ledger entry: {e}",
                    path.display(),
                    i + 1
                ))
            })
        })
        .collect()
}

fn backup_out(json: bool, what: &str, info: &ordq_core::backup::BackupInfo) {
    if json {
        print_json(&serde_json::to_value(info).unwrap_or(Value::Null));
    } else {
        println!(
            "{what} to {} (log {}.log/): up to LSN {}, {} segments, {} bytes; verified {} records",
            info.path, info.path, info.end_lsn, info.segments, info.bytes, info.verified_records
        );
    }
}

fn audit_out(json: bool, r: &ordq_core::audit::AuditReport) {
    if json {
        print_json(&serde_json::to_value(r).unwrap_or(Value::Null));
        return;
    }
    println!(
        "queue {}{}: {} events and {} lease grants from LSN {}, {} lanes",
        r.queue,
        r.key
            .as_deref()
            .map(|k| format!(" (key {k})"))
            .unwrap_or_default(),
        r.events,
        r.leases,
        r.first_lsn,
        r.lane_count
    );
    for l in r.lanes.iter().take(20) {
        println!(
            "  lane {:>20}: {} done, {} dead, last done offset {}",
            l.lane,
            l.done,
            l.dead,
            l.last_done.map_or("-".to_string(), |o| o.to_string())
        );
    }
    if r.lanes.len() > 20 {
        println!(
            "  ... {} more lanes (--json lists up to 1,000)",
            r.lane_count - 20
        );
    }
    for n in &r.notes {
        println!("note: {n}");
    }
    for v in &r.violations {
        println!("violation [{}] offset {}: {}", v.kind, v.offset, v.why);
    }
    println!(
        "{}",
        if r.ok {
            "audit: lane order, fencing and one outcome per task hold".to_string()
        } else {
            format!("audit: {} violation(s)", r.violation_count)
        }
    );
}

fn verify_out(json: bool, r: &ordq_core::verify::VerifyReport) {
    if json {
        print_json(&serde_json::to_value(r).unwrap_or(Value::Null));
        return;
    }
    println!(
        "log: {} segments, LSN {} to {}, {} frames, {} records ({:.0} records/s)",
        r.segments,
        r.first_lsn,
        r.end_lsn,
        r.frames,
        r.records,
        r.records as f64 / r.seconds.max(1e-9)
    );
    let key = r.key_id.as_deref().unwrap_or("none");
    println!(
        "checkpoints: {} ({} signed and verified, {} unsigned; key id {key})",
        r.checkpoints, r.signed, r.unsigned
    );
    for q in &r.queues {
        println!(
            "queue {}: log chain {} records, event chain {} events",
            q.name, q.log_records, q.events
        );
    }
    println!(
        "state: {}",
        if r.state_checked {
            "rebuilt from the log and compared row by row"
        } else {
            "not compared"
        }
    );
    for n in &r.notes {
        println!("note: {n}");
    }
    for p in &r.problems {
        println!("problem [{:?}] {}: {}", p.class, p.at, p.why);
    }
    println!(
        "{}",
        if r.ok {
            "verify: clean".to_string()
        } else {
            format!("verify: {} problem(s)", r.problem_count)
        }
    );
}

fn read_payload(args: &EnqueueArgs) -> Result<Vec<u8>, CliError> {
    if let Some(f) = &args.file {
        return std::fs::read(f)
            .map_err(|e| CliError::io(format!("cannot read payload file {}: {e}", f.display())));
    }
    match args.payload.as_deref() {
        None => Ok(Vec::new()),
        Some("-") => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .map_err(|e| CliError::io(format!("cannot read payload from stdin: {e}")))?;
            Ok(buf)
        }
        Some(p) => Ok(p.as_bytes().to_vec()),
    }
}

fn queue_cmd(t: &Target, json: bool, cmd: &QueueCmd) -> Result<(), CliError> {
    match cmd {
        QueueCmd::Create(a) => {
            let cfg = QueueConfig {
                shards: a.shards,
                ordering: match a.ordering {
                    OrderingArg::Key => Ordering::Key,
                    OrderingArg::Shard => Ordering::Shard,
                    OrderingArg::Global => Ordering::Global,
                    OrderingArg::None => Ordering::None,
                },
                max_attempts: a.max_attempts,
                backoff: Backoff {
                    initial: a.backoff_initial,
                    max: a.backoff_max,
                    multiplier: a.backoff_multiplier,
                    jitter: a.backoff_jitter,
                },
                lease: a.lease,
                dlq_policy: match a.dlq_policy {
                    DlqPolicyArg::Skip => DlqPolicy::Skip,
                    DlqPolicyArg::Block => DlqPolicy::Block,
                },
            };
            let existed = a.if_not_exists && t.queue(&a.name).is_ok();
            let q = if a.if_not_exists {
                t.create_queue_if_not_exists(&a.name, cfg)?
            } else {
                t.create_queue(&a.name, cfg)?
            };
            if json {
                print_json(&serde_json::to_value(&q).unwrap_or(Value::Null));
            } else if existed {
                println!("queue {} exists (id {})", q.name, q.id);
            } else {
                println!("created queue {} (id {})", q.name, q.id);
            }
        }
        QueueCmd::List => {
            let qs = t.list_queues()?;
            if json {
                print_json(&serde_json::to_value(&qs).unwrap_or(Value::Null));
            } else {
                println!(
                    "{:<32} {:>6} {:<8} {:>12} {:>8} {:<6}",
                    "NAME", "SHARDS", "ORDERING", "MAX_ATTEMPTS", "LEASE", "DLQ"
                );
                for q in qs {
                    println!(
                        "{:<32} {:>6} {:<8} {:>12} {:>8} {:<6}",
                        q.name,
                        q.config.shards,
                        enum_name(&q.config.ordering),
                        q.config.max_attempts,
                        format_duration(q.config.lease),
                        enum_name(&q.config.dlq_policy)
                    );
                }
            }
        }
        QueueCmd::Show { name } => {
            let q = t.queue(name)?;
            if json {
                print_json(&serde_json::to_value(&q).unwrap_or(Value::Null));
            } else {
                queue_out(&q);
            }
        }
        QueueCmd::Delete { name, yes } => {
            // Fail on an unknown queue before asking anything.
            t.queue(name)?;
            confirm(*yes, &format!("delete queue {name} and all its tasks"))?;
            t.delete_queue(name)?;
            if json {
                print_json(&json!({ "deleted": name }));
            } else {
                println!("deleted queue {name}");
            }
        }
    }
    Ok(())
}

/// Peek lists the unfinished tasks (ready, leased, retry_wait) from
/// offset `from` on, in offset order, with the engine's `pending` call. It
/// reads only; nothing is leased.
fn peek(t: &Target, json: bool, queue: &str, limit: usize, from: u64) -> Result<(), CliError> {
    let found = t.pending(queue, from.checked_sub(1), limit)?;
    if json {
        print_json(&Value::Array(found.iter().map(task_json).collect()));
        return Ok(());
    }
    println!(
        "{:>8} {:<10} {:>5} {:>8} {:>7} {:<24} {:<24} PAYLOAD",
        "OFFSET", "STATE", "SHARD", "PRIORITY", "ATTEMPT", "NOT_BEFORE", "KEY"
    );
    for task in &found {
        println!(
            "{:>8} {:<10} {:>5} {:>8} {:>7} {:<24} {:<24} {}",
            task.offset,
            task.state.as_str(),
            task.shard,
            task.priority,
            task.attempt,
            format_ts(task.not_before),
            task.key,
            short_payload(task.payload.as_deref())
        );
    }
    Ok(())
}

/// At most 40 characters of a payload for table output.
fn short_payload(p: Option<&[u8]>) -> String {
    let Some(p) = p else {
        return "(none)".into();
    };
    let (enc, s) = output::encode_bytes(p);
    let mut short: String = s.chars().take(40).collect();
    if short.len() < s.len() {
        short.push('…');
    }
    if enc == "utf8" {
        format!("{short:?}")
    } else {
        format!("{enc}:{short}")
    }
}

fn stats_out(s: &ordq_core::QueueStats) {
    println!("queue               {}", s.queue);
    println!("ready               {}", s.ready);
    println!("leased              {}", s.leased);
    println!("retry_wait          {}", s.retry_wait);
    println!("done                {}", s.done);
    println!("dead                {}", s.dead);
    println!(
        "oldest_pending_age  {}",
        format_duration(Duration::from_millis(s.oldest_pending_age_ms))
    );
    println!("next_offset         {}", s.next_offset);
    let t = &s.totals;
    println!(
        "totals              enqueued={} completed={} failed={} retried={} dead_lettered={} lease_expired={} released={} redriven={} purged={} rollbacks={}",
        t.enqueued, t.completed, t.failed, t.retried, t.dead_lettered, t.lease_expired, t.released, t.redriven, t.purged, t.rollbacks
    );
    println!();
    println!(
        "{:>5} {:>10} {:>10} {:>10}",
        "SHARD", "PENDING", "ELIGIBLE", "IN_FLIGHT"
    );
    for (i, sh) in s.shards.iter().enumerate() {
        println!(
            "{:>5} {:>10} {:>10} {:>10}",
            i, sh.pending, sh.eligible, sh.in_flight
        );
    }
}

fn dlq_cmd(t: &Target, json: bool, cmd: &DlqCmd) -> Result<(), CliError> {
    match cmd {
        DlqCmd::List {
            queue,
            after,
            limit,
        } => {
            let items = t.dlq_list(queue, *after, *limit)?;
            if json {
                print_json(&Value::Array(items.iter().map(task_json).collect()));
            } else {
                println!(
                    "{:>8} {:<24} {:>7} {:<24} PAYLOAD",
                    "OFFSET", "KEY", "ATTEMPT", "DEAD_AT"
                );
                for d in &items {
                    println!(
                        "{:>8} {:<24} {:>7} {:<24} {}",
                        d.offset,
                        d.key,
                        d.attempt,
                        format_ts(d.committed_at),
                        short_payload(d.payload.as_deref())
                    );
                }
            }
        }
        DlqCmd::Show { queue, offset } => {
            let d = t.dlq_get(queue, *offset)?;
            if json {
                let mut v = task_json(&d.task);
                v["faults"] = serde_json::to_value(&d.faults).unwrap_or(Value::Null);
                print_json(&v);
            } else {
                print_task(&d.task);
                print_faults(&d.faults);
            }
        }
        DlqCmd::Redrive {
            queue,
            offset,
            mode,
        } => {
            let mode = match mode {
                RedriveArg::Head => RedriveMode::Head,
                RedriveArg::NewOffset => RedriveMode::NewOffset,
            };
            let r = t.dlq_redrive(queue, *offset, mode)?;
            receipt_out(json, &r);
        }
        DlqCmd::Purge {
            queue,
            offset,
            all,
            yes,
        } => {
            let what = match offset {
                Some(o) => format!("purge dead letter {o} of queue {queue}"),
                None => format!("purge every dead letter of queue {queue}"),
            };
            debug_assert!(offset.is_some() || *all);
            t.queue(queue)?;
            confirm(*yes, &what)?;
            let n = t.dlq_purge(queue, *offset)?;
            if json {
                print_json(&json!({ "purged": n }));
            } else {
                println!("purged {n} dead letter(s)");
            }
        }
    }
    Ok(())
}
