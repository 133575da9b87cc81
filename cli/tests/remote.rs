//! Every command of the `ordq` binary on a broker address (`--db
//! unix://…` / `tcp://…`) against an in-process broker; the token from
//! `--token-file` or `ORDQ_TOKEN`. Between CLI invocations the test drives
//! workers through its own client (claim, fail).

use ordq_broker::{Broker, BrokerConfig, Listen};
use ordq_core::{ClaimOptions, Db, Durability, Engine, Options};
use ordq_wire::client::{Client, ClientOptions};
use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

const TOKEN: &str = "cli-remote-token";

static N: AtomicU32 = AtomicU32::new(0);

/// A broker on a fresh database in a temp dir, on a Unix socket and TCP.
struct Remote {
    dir: PathBuf,
    broker: Option<Broker>,
    unix: String,
    tcp: String,
    token_file: PathBuf,
}

impl Remote {
    fn new() -> Remote {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "ordq-cli-remote-{}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst),
            nanos % 1_000_000_000
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let opts = Options {
            durability: Durability::None,
            ..Options::default()
        };
        let db = Db::open(dir.join("served.ordq"), opts).unwrap();
        let sock = dir.join("ordq.sock");
        let cfg = BrokerConfig {
            listen: vec![
                Listen::Unix(sock.clone()),
                Listen::parse("tcp://127.0.0.1:0").unwrap(),
            ],
            token: Some(TOKEN.into()),
            ..BrokerConfig::default()
        };
        let broker = Broker::start(db, cfg).unwrap();
        let tcp = broker
            .addrs()
            .into_iter()
            .find(|a| a.starts_with("tcp://"))
            .unwrap();
        let token_file = dir.join("token");
        std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
        Remote {
            unix: format!("unix://{}", sock.display()),
            tcp,
            dir,
            broker: Some(broker),
            token_file,
        }
    }

    /// Runs `ordq --token-file F --db ADDR args…` with `stdin` piped in.
    fn run_stdin(&self, addr: &str, args: &[&str], stdin: &[u8]) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ordq"))
            .arg("--token-file")
            .arg(&self.token_file)
            .args(["--db", addr])
            .args(args)
            .env_remove("ORDQ_DB")
            .env_remove("ORDQ_TOKEN")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        child.wait_with_output().unwrap()
    }

    fn ok(&self, addr: &str, args: &[&str]) -> String {
        let out = self.run_stdin(addr, args, b"");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, addr: &str, args: &[&str]) -> Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let s = self.ok(addr, &a);
        serde_json::from_str(&s).unwrap_or_else(|e| panic!("{args:?}: {e}: {s}"))
    }

    fn client(&self) -> Client {
        let o = ClientOptions {
            token: Some(TOKEN.into()),
            ..ClientOptions::default()
        };
        Client::connect(&self.unix, o).unwrap()
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        if let Some(b) = self.broker.take() {
            let _ = b.shutdown();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn every_command_works_on_a_broker() {
    let r = Remote::new();
    let (u, t) = (r.unix.clone(), r.tcp.clone());
    r.ok(&u, &["init"]);
    r.ok(
        &u,
        &[
            "queue",
            "create",
            "jobs",
            "--max-attempts",
            "1",
            "--shards",
            "4",
        ],
    );
    let q = r.json(&t, &["queue", "show", "jobs"]);
    assert_eq!(
        (q["name"].as_str(), q["config"]["shards"].as_u64()),
        (Some("jobs"), Some(4))
    );
    assert!(r.ok(&t, &["queue", "list"]).contains("jobs"));

    // enqueue: an argument with every option, stdin, a file.
    let rc = r.json(
        &u,
        &[
            "enqueue",
            "jobs",
            "k1",
            "hello",
            "--priority",
            "3",
            "--max-attempts",
            "1",
            "--idempotency-key",
            "idem",
            "--header",
            "trace=abc",
            "--delay",
            "0s",
        ],
    );
    assert_eq!(
        (rc["offset"].as_u64(), rc["duplicate"].as_bool()),
        (Some(0), Some(false))
    );
    let dup = r.json(
        &u,
        &[
            "enqueue",
            "jobs",
            "k1",
            "again",
            "--idempotency-key",
            "idem",
        ],
    );
    assert_eq!(
        (dup["offset"].as_u64(), dup["duplicate"].as_bool()),
        (Some(0), Some(true))
    );
    let out = r.run_stdin(&t, &["enqueue", "jobs", "k2", "-"], b"from\nstdin\xff");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let file = r.dir.join("payload.bin");
    std::fs::write(&file, [0u8, 1, 2, 255]).unwrap();
    r.ok(
        &u,
        &["enqueue", "jobs", "k3", "--file", file.to_str().unwrap()],
    );

    let peek = r.json(&t, &["peek", "jobs"]);
    assert_eq!(peek.as_array().unwrap().len(), 3);
    let task = r.json(&u, &["task", "show", "jobs", "0"]);
    assert_eq!(task["headers"]["trace"], "abc");
    assert_eq!(task["priority"], 3);
    assert!(r.ok(&u, &["task", "show", "jobs", "1"]).contains("k2"));

    // A worker (this test's client) fails task 0 for good: a dead letter.
    let c = r.client();
    let leases = c.claim("jobs", "w", ClaimOptions::default()).unwrap();
    assert_eq!(leases[0].offset, 0);
    c.fail(leases[0].token, "broken", false).unwrap();
    let stats = r.json(&t, &["stats", "jobs"]);
    assert_eq!(
        (stats["dead"].as_u64(), stats["ready"].as_u64()),
        (Some(1), Some(2))
    );
    assert!(r.ok(&u, &["stats", "jobs"]).contains("next_offset"));

    let dl = r.json(&u, &["dlq", "list", "jobs"]);
    assert_eq!(dl.as_array().unwrap().len(), 1);
    assert!(r.ok(&t, &["dlq", "show", "jobs", "0"]).contains("broken"));
    let rd = r.json(&u, &["dlq", "redrive", "jobs", "0", "--mode", "new-offset"]);
    assert_eq!(rd["offset"], 3);
    let l = c
        .claim("jobs", "w", ClaimOptions::default())
        .unwrap()
        .remove(0);
    c.fail(l.token, "again", false).unwrap();
    let p = r.json(&t, &["dlq", "purge", "jobs", "--all", "--yes"]);
    assert_eq!(p["purged"], 1, "{p}");

    r.ok(&u, &["queue", "create", "tmp"]);
    r.ok(&t, &["queue", "delete", "tmp", "--yes"]);
    assert!(!r.ok(&u, &["queue", "list"]).contains("tmp"));
    Engine::close(&c).unwrap();
}

#[test]
fn the_token_comes_from_a_file_or_the_environment() {
    let r = Remote::new();
    let run = |args: &[&str], token: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ordq"));
        cmd.args(args)
            .env_remove("ORDQ_DB")
            .env_remove("ORDQ_TOKEN");
        if let Some(t) = token {
            cmd.env("ORDQ_TOKEN", t);
        }
        cmd.output().unwrap()
    };
    let ok = run(&["--db", &r.tcp, "queue", "list"], Some(TOKEN));
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    // No token, a wrong one, an empty token file: one clear line each.
    for (args, token, exit, needle) in [
        (
            vec!["--db", r.tcp.as_str(), "queue", "list"],
            None,
            11,
            "token",
        ),
        (
            vec!["--db", r.unix.as_str(), "queue", "list"],
            Some("nope"),
            11,
            "token",
        ),
    ] {
        let out = run(&args, token);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(exit), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(needle) && err.contains("refused"), "{err}");
    }
    let empty = r.dir.join("empty-token");
    std::fs::write(&empty, "\n").unwrap();
    let out = run(
        &[
            "--token-file",
            empty.to_str().unwrap(),
            "--db",
            &r.tcp,
            "queue",
            "list",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(11), "{}", stderr(&out));
    assert!(stderr(&out).contains("is empty"), "{}", stderr(&out));
    // The file wins over the environment.
    let out = run(
        &[
            "--token-file",
            r.token_file.to_str().unwrap(),
            "--db",
            &r.tcp,
            "queue",
            "list",
        ],
        Some("wrong"),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn checkpoint_verify_and_audit_through_the_broker_while_it_serves() {
    let r = Remote::new();
    r.ok(&r.unix, &["queue", "create", "q"]);
    // A writer keeps going while the broker verifies.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (c, stop) = (r.client(), stop.clone());
        std::thread::spawn(move || {
            use ordq_core::Engine;
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let item = ordq_core::EnqueueItem {
                    key: format!("k{}", n % 4),
                    payload: b"p".to_vec(),
                    ..ordq_core::EnqueueItem::default()
                };
                c.enqueue_batch("q", vec![item]).unwrap();
                n += 1;
            }
            n
        })
    };
    for _ in 0..3 {
        let c = r.json(&r.tcp, &["checkpoint"]);
        assert!(c["checkpoint_lsn"].as_u64().unwrap() > 0, "{c}");
        let v = r.json(&r.unix, &["verify"]);
        assert_eq!(v["ok"], true, "{v}");
        assert_eq!(v["state_checked"], true, "{v}");
        let a = r.json(&r.unix, &["audit", "q"]);
        assert_eq!(a["ok"], true, "{a}");
    }
    stop.store(true, Ordering::Relaxed);
    assert!(writer.join().unwrap() > 0);
    let v = r.json(&r.unix, &["verify"]);
    assert!(v["checkpoints"].as_u64().unwrap() >= 3, "{v}");
    // A backup on the broker's side, by absolute path only.
    let to = r.dir.join("backup.ordq");
    let b = r.json(&r.unix, &["backup", "--to", to.to_str().unwrap()]);
    assert!(b["verified_records"].as_u64().unwrap() > 0, "{b}");
    let rel = r.run_stdin(&r.unix, &["backup", "--to", "relative.ordq"], b"");
    assert_eq!(rel.status.code(), Some(11), "{}", stderr(&rel));
    assert!(
        stderr(&rel).contains("must be absolute"),
        "{}",
        stderr(&rel)
    );
}
