//! `ordq serve`: runs the broker on a database file until SIGTERM or
//! SIGINT, then shuts down gracefully (in-flight requests answered,
//! everything durable) and exits 0. See docs/OPERATIONS.md.

use crate::duration::parse_duration;
use crate::error::CliError;
use clap::Args;
use ordq_broker::{Broker, BrokerConfig, Listen};
use ordq_core::{Db, Options};
use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `ordq serve` options.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    ordq serve --db jobs.ordq --listen unix:///run/ordq/ordq.sock\n  \
    ordq serve --db jobs.ordq --listen unix:///run/ordq/ordq.sock \\\n      \
    --listen tcp://127.0.0.1:7420 --token-file /etc/ordq/token --http 127.0.0.1:7421\n\n\
    The database file is created if missing and held (locked) while serving.\n\
    SIGTERM or SIGINT: stop accepting, answer what is in flight, sync, exit 0.\n\
    See docs/OPERATIONS.md.")]
pub struct ServeArgs {
    /// Address to listen on: unix:///abs/path/ordq.sock or tcp://127.0.0.1:7420; repeatable.
    #[arg(long, value_name = "ADDR", required = true)]
    listen: Vec<String>,
    /// File holding the access token every client must present (required for TCP).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:7421).
    #[arg(long, value_name = "ADDR")]
    http: Option<String>,
    /// Largest request frame in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = BrokerConfig::default().max_frame)]
    max_frame: usize,
    /// Most client connections at once.
    #[arg(long, value_name = "N", default_value_t = BrokerConfig::default().max_connections)]
    max_connections: usize,
    /// Most requests one connection may have in flight.
    #[arg(long, value_name = "N", default_value_t = BrokerConfig::default().max_inflight)]
    max_inflight: usize,
    /// How long a new connection has to say hello (e.g. 5s).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    hello_timeout: Duration,
    /// Allow TCP and HTTP addresses other than loopback (TCP still needs the token).
    #[arg(long)]
    allow_remote: bool,
    /// Remove log segments the state checkpoints cover once older than
    /// this (e.g. 7d); default: keep the whole log (verify and audit read it).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    log_retention: Option<Duration>,
    /// Refuse to create the database file when it is missing (NOT_FOUND,
    /// exit 12) instead of serving a new, empty one.
    #[arg(long)]
    must_exist: bool,
}

/// Reads the token: the file's content without trailing whitespace.
fn read_token(path: &Path) -> Result<String, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        CliError::invalid(format!("cannot read token file {}: {e}", path.display()))
    })?;
    let token = text.trim_end().to_string();
    if token.is_empty() {
        return Err(CliError::invalid(format!(
            "token file {} is empty",
            path.display()
        )));
    }
    if let Ok(m) = std::fs::metadata(path) {
        if m.permissions().mode() & 0o077 != 0 {
            eprintln!(
                "ordq: warning: token file {} is accessible by other users (chmod 600 it)",
                path.display()
            );
        }
    }
    Ok(token)
}

fn parse_http(text: &str) -> Result<SocketAddr, CliError> {
    let hostport = text.strip_prefix("http://").unwrap_or(text);
    let hostport = hostport.strip_suffix("/metrics").unwrap_or(hostport);
    hostport
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| {
            CliError::invalid(format!(
                "invalid --http address {text:?}: expected host:port, e.g. 127.0.0.1:7421"
            ))
        })
}

/// Signals that stop the broker, blocked in every thread so that
/// `sigwait` in the main thread receives them.
fn block_stop_signals() -> libc::sigset_t {
    // SAFETY: the set is initialised by sigemptyset before use; the
    // calls only read and write this local set and the thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// Waits for SIGTERM or SIGINT; returns its name.
fn wait_stop_signal(set: &libc::sigset_t) -> &'static str {
    loop {
        let mut sig = 0;
        // SAFETY: set is a valid, initialised signal set; sig is written.
        if unsafe { libc::sigwait(set, &mut sig) } == 0 {
            return if sig == libc::SIGINT {
                "SIGINT"
            } else {
                "SIGTERM"
            };
        }
    }
}

/// Runs the broker on `db` until a stop signal, signing its checkpoints
/// with `signing_key` if given.
pub fn run(
    db: Option<&str>,
    signing_key: Option<[u8; 32]>,
    args: &ServeArgs,
) -> Result<(), CliError> {
    // Before any thread exists, so every thread inherits the mask.
    let signals = block_stop_signals();
    let path =
        db.ok_or_else(|| CliError::invalid("no database given: pass --db PATH or set ORDQ_DB"))?;
    if path.contains("://") {
        return Err(CliError::invalid(format!(
            "ordq serve needs a database file path, not the address {path:?}"
        )));
    }
    if path.is_empty() {
        return Err(CliError::invalid("empty database path"));
    }
    let listen = args
        .listen
        .iter()
        .map(|l| Listen::parse(l))
        .collect::<Result<Vec<_>, _>>()?;
    let token = args.token_file.as_deref().map(read_token).transpose()?;
    let http = args.http.as_deref().map(parse_http).transpose()?;
    let cfg = BrokerConfig {
        listen,
        token,
        max_frame: args.max_frame,
        max_connections: args.max_connections,
        max_inflight: args.max_inflight,
        hello_timeout: args.hello_timeout,
        http,
        allow_remote: args.allow_remote,
    };
    let opts = Options {
        log_retention: args.log_retention,
        signing_key,
        must_exist: args.must_exist,
        ..Options::default()
    };
    // Before the database is opened: a refused configuration must not
    // leave a new, empty database file behind.
    cfg.validate()?;
    let db = Db::open(path, opts)?;
    let broker = match Broker::start(db.clone(), cfg) {
        Ok(b) => b,
        Err(e) => {
            db.close();
            return Err(e.into());
        }
    };
    for a in broker.addrs() {
        println!("ordq: serving {path} on {a}");
    }
    if let Some(h) = broker.http_addr() {
        println!("ordq: metrics on http://{h}/metrics");
    }
    let _ = std::io::stdout().flush();
    let sig = wait_stop_signal(&signals);
    eprintln!("ordq: {sig}: shutting down (finishing requests in flight)");
    let r = broker.shutdown();
    db.close();
    r?;
    eprintln!("ordq: stopped; {path} is closed and durable");
    Ok(())
}
