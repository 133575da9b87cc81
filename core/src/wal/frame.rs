//! Frames: how one record sits in a segment file, and its CRC32C.
//!
//! ```text
//! body_len u32 LE ‖ crc u32 LE ‖ kind u8 ‖ reserved [0; 3] ‖ body
//! crc = CRC32C(log_id [16] ‖ lsn u64 LE ‖ kind ‖ reserved ‖ body)
//! ```
//!
//! The record's log sequence number (LSN) is not stored: it is the
//! segment's base LSN plus the frame's index. It and the log id (the
//! database's, in every segment header) are inside the CRC, so a frame
//! copied to another place (reordered) or from another database's log
//! (spliced) fails its check. The log id's part is computed once: the
//! [`seed`].
//! An all-zero header is the end of the written data (segments are
//! preallocated with zeros); kind 0 is never written.

/// Bytes of a frame header.
pub const HEADER: usize = 12;

/// Frame kind of the marker that ends every commit group; its body is
/// [`Commit`]. Kinds 1..=15 are the log's own, 16 and up the engine's.
pub const KIND_COMMIT: u8 = 1;

/// Largest frame body, bytes (a record is at most a few MiB: payloads and
/// results are capped far below this).
pub const MAX_BODY: usize = 1 << 30;

/// Bytes of a [`Commit`] body.
pub const COMMIT_BODY: usize = 20;

/// A block of zeros, to find unwritten space by whole blocks.
const ZERO_BLOCK: [u8; 4096] = [0; 4096];

/// One past the last non-zero byte of `buf` (0 when all zero).
pub fn written_len(buf: &[u8]) -> usize {
    let mut end = buf.len();
    while end > 0 {
        let start = end.saturating_sub(ZERO_BLOCK.len());
        if buf[start..end] != ZERO_BLOCK[..end - start] {
            return start
                + buf[start..end]
                    .iter()
                    .rposition(|&b| b != 0)
                    .map_or(0, |i| i + 1);
        }
        end = start;
    }
    0
}

/// The CRC state after a log's id: what every frame CRC of that log
/// starts from.
pub fn seed(log_id: &[u8; 16]) -> u32 {
    crc32c::crc32c(log_id)
}

/// The CRC of a frame at `lsn` of the log with `seed`.
pub fn crc(seed: u32, lsn: u64, kind: u8, body: &[u8]) -> u32 {
    let mut head = [0u8; 12];
    head[..8].copy_from_slice(&lsn.to_le_bytes());
    head[8] = kind;
    crc32c::crc32c_append(crc32c::crc32c_append(seed, &head), body)
}

/// Appends one frame to `out`.
pub fn encode(out: &mut Vec<u8>, seed: u32, lsn: u64, kind: u8, body: &[u8]) {
    debug_assert!(kind != 0 && body.len() <= MAX_BODY);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc(seed, lsn, kind, body).to_le_bytes());
    out.extend_from_slice(&[kind, 0, 0, 0]);
    out.extend_from_slice(body);
}

/// What is found at a position of a segment.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A whole frame with a valid CRC; `len` is its size with the header.
    Frame {
        /// Frame kind.
        kind: u8,
        /// Frame body.
        body: &'a [u8],
        /// Header plus body, bytes.
        len: usize,
    },
    /// An all-zero header: nothing was written here.
    End,
    /// Too few bytes left for the header or the body it announces.
    Short,
    /// A header or CRC that does not check out; the reason.
    Bad(String),
}

/// Decodes the frame at the start of `buf`, expected to carry `lsn` of
/// the log with `seed`.
pub fn decode(buf: &[u8], seed: u32, lsn: u64) -> Decoded<'_> {
    if buf.len() < HEADER {
        return if buf.iter().all(|&b| b == 0) {
            Decoded::End
        } else {
            Decoded::Short
        };
    }
    let head = &buf[..HEADER];
    if head.iter().all(|&b| b == 0) {
        return Decoded::End;
    }
    let len = u32::from_le_bytes(head[0..4].try_into().expect("4 bytes")) as usize;
    let want = u32::from_le_bytes(head[4..8].try_into().expect("4 bytes"));
    let kind = head[8];
    if kind == 0 || head[9..12] != [0, 0, 0] {
        return Decoded::Bad(format!("bad frame header {head:02x?}"));
    }
    if len > MAX_BODY {
        return Decoded::Bad(format!("frame length {len} over the limit {MAX_BODY}"));
    }
    let Some(body) = buf.get(HEADER..HEADER + len) else {
        return Decoded::Short;
    };
    let got = crc(seed, lsn, kind, body);
    if got != want {
        return Decoded::Bad(format!(
            "CRC32C mismatch (stored {want:08x}, computed {got:08x})"
        ));
    }
    Decoded::Frame {
        kind,
        body,
        len: HEADER + len,
    }
}

/// The body of a commit marker: which frames its group holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Commit {
    /// LSN of the marker itself (also inside its CRC; stored so a scan
    /// can check a marker found at an unknown place).
    pub lsn: u64,
    /// LSN of the group's first frame.
    pub first: u64,
    /// Frames of the group before the marker.
    pub frames: u32,
}

impl Commit {
    /// The marker's body.
    pub fn encode(&self) -> [u8; COMMIT_BODY] {
        let mut b = [0u8; COMMIT_BODY];
        b[0..8].copy_from_slice(&self.lsn.to_le_bytes());
        b[8..16].copy_from_slice(&self.first.to_le_bytes());
        b[16..20].copy_from_slice(&self.frames.to_le_bytes());
        b
    }

    /// Reads a marker's body; `None` when it has the wrong size or its
    /// fields contradict each other.
    pub fn decode(body: &[u8]) -> Option<Commit> {
        if body.len() != COMMIT_BODY {
            return None;
        }
        let c = Commit {
            lsn: u64::from_le_bytes(body[0..8].try_into().ok()?),
            first: u64::from_le_bytes(body[8..16].try_into().ok()?),
            frames: u32::from_le_bytes(body[16..20].try_into().ok()?),
        };
        (c.first.checked_add(u64::from(c.frames)) == Some(c.lsn)).then_some(c)
    }
}

/// The first valid commit marker anywhere in `buf` (at any byte
/// position) of a group that starts after LSN `after`: used after a bad
/// frame to tell a torn tail (nothing but the unfinished group after it)
/// from corruption (a later, so acknowledged, group after it).
pub fn find_commit(buf: &[u8], seed: u32, after: u64) -> Option<(usize, Commit)> {
    let frame = HEADER + COMMIT_BODY;
    if buf.len() < frame {
        return None;
    }
    let mut i = 0;
    while i + frame <= buf.len() {
        // Zeros (most of a segment's unwritten end) are skipped by blocks.
        if i % ZERO_BLOCK.len() == 0 {
            let end = (i + ZERO_BLOCK.len()).min(buf.len());
            if buf[i..end] == ZERO_BLOCK[..end - i] {
                i = end;
                continue;
            }
        }
        if buf[i] != COMMIT_BODY as u8 {
            i += 1;
            continue;
        }
        let h = &buf[i..i + HEADER];
        if h[0..4] == (COMMIT_BODY as u32).to_le_bytes() && h[8..12] == [KIND_COMMIT, 0, 0, 0] {
            if let Some(c) = Commit::decode(&buf[i + HEADER..i + frame]) {
                if c.first > after {
                    if let Decoded::Frame { .. } = decode(&buf[i..i + frame], seed, c.lsn) {
                        return Some((i, c));
                    }
                }
            }
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_bind_their_lsn() {
        let s = seed(&[1; 16]);
        let mut v = Vec::new();
        encode(&mut v, s, 7, 16, b"hello");
        assert_eq!(v.len(), HEADER + 5);
        assert_eq!(
            decode(&v, s, 7),
            Decoded::Frame {
                kind: 16,
                body: b"hello",
                len: HEADER + 5
            }
        );
        // The same bytes read as another LSN (moved, reordered) fail, and
        // so do they in another database's log (spliced).
        assert!(matches!(decode(&v, s, 8), Decoded::Bad(_)));
        assert!(matches!(decode(&v, seed(&[2; 16]), 7), Decoded::Bad(_)));
        // Every single bit flip is caught.
        for i in 0..v.len() * 8 {
            let mut w = v.clone();
            w[i / 8] ^= 1 << (i % 8);
            assert!(
                !matches!(decode(&w, s, 7), Decoded::Frame { .. }),
                "flip of bit {i} accepted"
            );
        }
        // Cut anywhere: short, never a frame.
        for n in 1..v.len() {
            assert!(matches!(
                decode(&v[..n], s, 7),
                Decoded::Short | Decoded::Bad(_)
            ));
        }
        assert_eq!(decode(&[0u8; 40], s, 7), Decoded::End);
        assert_eq!(decode(&[], s, 7), Decoded::End);
    }

    #[test]
    fn written_len_finds_the_last_non_zero_byte() {
        assert_eq!(written_len(&[0u8; 10_000]), 0);
        for at in [0usize, 1, 4095, 4096, 4097, 9_999] {
            let mut b = vec![0u8; 10_000];
            b[at] = 3;
            assert_eq!(written_len(&b), at + 1, "{at}");
        }
    }

    #[test]
    fn commit_markers_are_found_at_any_position() {
        let c = Commit {
            lsn: 12,
            first: 9,
            frames: 3,
        };
        assert_eq!(Commit::decode(&c.encode()), Some(c));
        assert_eq!(Commit::decode(&Commit { lsn: 13, ..c }.encode()), None);
        let s = seed(&[1; 16]);
        let mut buf = vec![0xAB; 37];
        encode(&mut buf, s, 12, KIND_COMMIT, &c.encode());
        buf.extend_from_slice(&[1, 2, 3]);
        assert_eq!(find_commit(&buf, s, 8), Some((37, c)));
        assert_eq!(find_commit(&buf, seed(&[2; 16]), 8), None);
        // The marker of the group that starts at `after` itself is not
        // a later group.
        assert_eq!(find_commit(&buf, s, 9), None);
        buf[40] ^= 1;
        assert_eq!(find_commit(&buf, s, 8), None);
    }
}
