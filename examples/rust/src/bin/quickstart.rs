//! The README's usage example as a program: open a database, create a
//! queue, enqueue, claim, complete. `cargo run -p ordq-examples --bin quickstart`
use ordq_core::{ClaimOptions, Db, EnqueueOptions, Options, QueueConfig};
use std::time::Duration;

fn main() -> Result<(), ordq_core::Error> {
    let path = std::env::temp_dir().join(format!("ordq-quickstart-{}.ordq", std::process::id()));
    let db = Db::open(&path, Options::default())?;
    db.create_queue("emails", QueueConfig::default())?;

    // Tasks of one key run in order; keys run in parallel.
    let tasks = [
        ("user-42", "welcome"),
        ("user-42", "day-2 tips"),
        ("user-7", "welcome"),
    ];
    for (key, text) in tasks {
        db.enqueue("emails", key, text.as_bytes(), EnqueueOptions::default())?;
    }

    let claim = ClaimOptions {
        max: 10,
        wait: Duration::from_millis(100),
        ..Default::default()
    };
    for round in 1.. {
        let leases = db.claim("emails", "worker-1", claim.clone())?;
        if leases.is_empty() {
            break; // nothing left (the claim waited 100 ms for more)
        }
        for lease in leases {
            let text = String::from_utf8_lossy(&lease.payload);
            println!("round {round}: {} #{} {text:?}", lease.key, lease.offset);
            db.complete(lease.token, b"sent")?; // frees the key's next task
        }
    }
    db.close();
    std::fs::remove_file(&path).ok();
    Ok(())
}
