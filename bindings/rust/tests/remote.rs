//! Remote mode through the safe crate: `Db::open` on a broker address with
//! [`Options::token`] and [`Options::timeout`], against an in-process
//! broker.

use ordq::{ClaimOptions, Db, EnqueueOptions, ErrorKind, Options, QueueConfig};
use ordq_broker::{Broker, BrokerConfig, Listen};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const TOKEN: &str = "rust-remote-token";

#[test]
fn open_a_broker_with_token_and_timeout() {
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "ordq-rust-remote-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let served =
        ordq_core::Db::open(dir.join("served.ordq"), ordq_core::Options::default()).unwrap();
    let sock = dir.join("ordq.sock");
    let cfg = BrokerConfig {
        listen: vec![
            Listen::Unix(sock.clone()),
            Listen::parse("tcp://127.0.0.1:0").unwrap(),
        ],
        token: Some(TOKEN.into()),
        ..BrokerConfig::default()
    };
    let broker = Broker::start(served, cfg).unwrap();
    let tcp = broker
        .addrs()
        .into_iter()
        .find(|a| a.starts_with("tcp://"))
        .unwrap();
    let unix = format!("unix://{}", sock.display());

    let opts = Options::new()
        .token(TOKEN)
        .timeout(Duration::from_millis(500));
    assert!(
        !format!("{opts:?}").contains(TOKEN),
        "Debug hides the token"
    );
    let db = Db::open(&tcp, &opts).unwrap();
    db.create_queue("q", &QueueConfig::new()).unwrap();
    db.enqueue("q", "k", b"over tcp", &EnqueueOptions::new())
        .unwrap();
    let other = Db::open(&unix, &opts).unwrap();
    let lease = other
        .claim("q", "w", &ClaimOptions::new())
        .unwrap()
        .remove(0);
    assert_eq!(lease.payload, b"over tcp");
    lease.complete(&other, b"done").unwrap();
    assert_eq!(db.stats("q").unwrap().done, 1);

    let e = Db::open(&tcp, &Options::new().token("wrong")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(e.message().contains("token"), "{e}");

    // The timeout bounds calls once the broker is gone.
    broker.shutdown().unwrap();
    let t0 = Instant::now();
    let e = db.sync().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    drop((db, other));
    let _ = std::fs::remove_dir_all(&dir);
}
