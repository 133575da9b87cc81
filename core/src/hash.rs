//! The stable key hash (shard and lane choice) and the log's chain hash.
//! Test vectors live in `docs/FORMAT.md` and in this module's tests.

/// 32-byte BLAKE3 digest.
pub type Digest = [u8; 32];

/// The chain's genesis "previous hash": 32 zero bytes.
pub const GENESIS: Digest = [0u8; 32];

/// Stable 64-bit hash of a task key: the first 8 bytes of
/// `BLAKE3(key as UTF-8)`, read little-endian.
pub fn key_hash(key: &str) -> u64 {
    let h = blake3::hash(key.as_bytes());
    u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes"))
}

/// Shard of a key: `key_hash(key) mod shards`.
pub fn shard_of(key: &str, shards: u32) -> u32 {
    (key_hash(key) % shards as u64) as u32
}

/// BLAKE3 of bytes.
pub fn digest(bytes: &[u8]) -> Digest {
    *blake3::hash(bytes).as_bytes()
}

/// Chain link: `BLAKE3(prev || body)`.
pub fn chain(prev: &Digest, body: &[u8]) -> Digest {
    let mut h = blake3::Hasher::new();
    h.update(prev);
    h.update(body);
    *h.finalize().as_bytes()
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(D[(b >> 4) as usize] as char);
        s.push(D[(b & 15) as usize] as char);
    }
    s
}

/// Bytes of lower- or upper-case hex; `None` if it is not hex.
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Task id: hex of the first 16 bytes of the task's record hash.
pub fn task_id(record_hash: &Digest) -> String {
    hex(&record_hash[..16])
}

/// SplitMix64 finaliser, mapped to `[0, 1)`: deterministic jitter from a
/// fencing value, so retries spread without a random source.
pub fn unit_from(seed: u64) -> f64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectors published in docs/FORMAT.md; every binding must agree.
    pub(crate) const VECTORS: &[(&str, u64, u32)] = &[
        ("", 0xa6a1_f9f5_b949_13af, 15),
        ("a", 0x53a4_69d9_dd2f_7617, 7),
        ("user-1", 0x5826_52fd_0524_859d, 13),
        ("order:42", 0x14b1_a396_4618_de6a, 10),
        ("ключ", 0x3f21_ceab_3dcf_6d28, 8),
        ("🦀", 0xf7ca_d528_06c9_aba4, 4),
    ];

    #[test]
    fn key_hash_vectors() {
        for &(k, h, shard16) in VECTORS {
            assert_eq!(key_hash(k), h, "{k:?}");
            assert_eq!(shard_of(k, 16), shard16, "{k:?}");
        }
        assert_eq!(hex(&digest(b"")[..8]), "af1349b9f5f9a1a6");
    }

    #[test]
    fn unit_is_in_range_and_spread() {
        let mut lo = 0;
        for s in 0..10_000u64 {
            let u = unit_from(s);
            assert!((0.0..1.0).contains(&u));
            if u < 0.5 {
                lo += 1;
            }
        }
        assert!((4_500..5_500).contains(&lo), "{lo}");
    }

    #[test]
    fn chain_depends_on_prev_and_body() {
        let a = chain(&GENESIS, b"x");
        assert_ne!(a, chain(&GENESIS, b"y"));
        assert_ne!(a, chain(&a, b"x"));
    }
}
