//! Rendering helpers: timestamps, payload bytes, JSON views of tasks.

use ordq_core::b64::encode as base64;
use ordq_core::{Fault, TaskInfo};
use serde_json::{json, Value};

/// Formats ms since the epoch as RFC 3339 UTC (`2025-01-02T03:04:05.006Z`);
/// 0 means "never" and prints `-`.
pub fn format_ts(ms: u64) -> String {
    if ms == 0 {
        return "-".to_string();
    }
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        ms % 1000
    )
}

/// Bytes as `(encoding, text)`: `utf8` when valid UTF-8, else `base64`.
pub fn encode_bytes(bytes: &[u8]) -> (&'static str, String) {
    match std::str::from_utf8(bytes) {
        Ok(s) => ("utf8", s.to_string()),
        Err(_) => ("base64", base64(bytes)),
    }
}

/// JSON for optional bytes: `null`, or `{"encoding": …, "data": …}`.
pub fn bytes_json(bytes: Option<&[u8]>) -> Value {
    match bytes {
        None => Value::Null,
        Some(b) => {
            let (encoding, data) = encode_bytes(b);
            json!({ "encoding": encoding, "data": data, "len": b.len() })
        }
    }
}

/// A task as JSON: every field of [`TaskInfo`], with payload and result
/// encoded by [`bytes_json`] instead of arrays of numbers.
pub fn task_json(task: &TaskInfo) -> Value {
    let mut v = serde_json::to_value(task).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut v {
        map.insert("payload".into(), bytes_json(task.payload.as_deref()));
        map.insert("result".into(), bytes_json(task.result.as_deref()));
    }
    v
}

/// Human rendering of optional bytes for `key: value` listings.
pub fn bytes_human(bytes: Option<&[u8]>) -> String {
    match bytes {
        None => "(none)".to_string(),
        Some(b) => match encode_bytes(b) {
            ("utf8", s) => format!("{s:?} ({} bytes, utf8)", b.len()),
            (enc, s) => format!("{s} ({} bytes, {enc})", b.len()),
        },
    }
}

/// Prints a task as aligned `field: value` lines.
pub fn print_task(task: &TaskInfo) {
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let optn = |v: Option<u64>| v.map_or_else(|| "-".into(), |n| n.to_string());
    let rows: Vec<(&str, String)> = vec![
        ("queue", task.queue.clone()),
        ("offset", task.offset.to_string()),
        ("id", task.id.clone()),
        ("key", task.key.clone()),
        ("shard", task.shard.to_string()),
        ("state", task.state.as_str().to_string()),
        ("priority", task.priority.to_string()),
        (
            "attempt",
            format!("{} of {}", task.attempt, task.max_attempts),
        ),
        ("not_before", format_ts(task.not_before)),
        ("idempotency_key", opt(&task.idempotency_key)),
        ("enqueued_at", format_ts(task.enqueued_at)),
        ("leased_at", format_ts(task.leased_at)),
        ("started_at", format_ts(task.started_at)),
        ("committed_at", format_ts(task.committed_at)),
        ("lease_expires_at", format_ts(task.lease_expires_at)),
        ("fence", task.fence.to_string()),
        ("worker", opt(&task.worker)),
        ("redriven_from", optn(task.redriven_from)),
        ("redriven_to", optn(task.redriven_to)),
        ("payload", bytes_human(task.payload.as_deref())),
        ("result", bytes_human(task.result.as_deref())),
    ];
    for (k, v) in rows {
        println!("{k:<17} {v}");
    }
    if task.headers.is_empty() {
        println!("{:<17} (none)", "headers");
    } else {
        println!("headers");
        for (k, v) in &task.headers {
            println!("  {k}={v}");
        }
    }
}

/// Prints a fault history, oldest first.
pub fn print_faults(faults: &[Fault]) {
    if faults.is_empty() {
        println!("faults            (none)");
        return;
    }
    println!("faults");
    for f in faults {
        println!(
            "  attempt {} {} at {} by {} (retryable={}): {}",
            f.attempt,
            serde_json::to_value(f.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            format_ts(f.at),
            f.worker,
            f.retryable,
            f.error.replace('\n', " ")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(format_ts(0), "-");
        assert_eq!(format_ts(1), "1970-01-01T00:00:00.001Z");
        assert_eq!(format_ts(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(format_ts(1_735_689_599_999), "2024-12-31T23:59:59.999Z");
    }

    #[test]
    fn base64_vectors() {
        // RFC 4648 test vectors.
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
        assert_eq!(encode_bytes(&[0xff, 0x00]), ("base64", "/wA=".to_string()));
        assert_eq!(encode_bytes(b"hi"), ("utf8", "hi".to_string()));
    }
}
