//! Segment files: their names, their header, crash-safe creation with
//! preallocation, and the scan that checks every frame of one segment.
//!
//! ```text
//! header (48 bytes): magic "ORDQWAL\0" ‖ version u32 LE (1) ‖ 0u32 ‖
//!                    base_lsn u64 LE ‖ log_id [16] ‖ CRC32C(bytes 0..40) u32 LE ‖ 0u32
//! then frames (frame.rs), then zeros (the file grows by zero-filled
//! chunks ahead of the appends).
//! ```

use super::frame::{self, Commit, Decoded, KIND_COMMIT};
use crate::error::{Error, Result};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Bytes of a segment header; the first frame starts here.
pub const HEADER: u64 = 48;
const MAGIC: &[u8; 8] = b"ORDQWAL\0";
/// Segment format version: 2 binds every frame's CRC to the log id (1,
/// written by development builds only, did not).
const VERSION: u32 = 2;

/// A segment's file name: its base LSN, zero-padded so names sort.
pub fn name(base: u64) -> String {
    format!("{base:020}.seg")
}

/// The base LSN of a segment file name, if it is one.
pub fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

fn header(base: u64, log_id: &[u8; 16]) -> [u8; HEADER as usize] {
    let mut h = [0u8; HEADER as usize];
    h[0..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&base.to_le_bytes());
    h[24..40].copy_from_slice(log_id);
    let crc = crc32c::crc32c(&h[0..40]);
    h[40..44].copy_from_slice(&crc.to_le_bytes());
    h
}

/// The frame CRC seed of a segment: from the log id in its header (a
/// checked header; zeros for one too short).
pub fn seed_of(buf: &[u8]) -> u32 {
    let id: [u8; 16] = buf
        .get(24..40)
        .and_then(|b| b.try_into().ok())
        .unwrap_or([0; 16]);
    frame::seed(&id)
}

/// Checks a segment header against the expected base LSN and log id.
pub fn check_header(buf: &[u8], path: &Path, base: u64, log_id: &[u8; 16]) -> Result<()> {
    let bad = |why: &str| Error::Corrupt(format!("{}: {why}", path.display()));
    let h = buf
        .get(..HEADER as usize)
        .ok_or_else(|| bad("shorter than a segment header"))?;
    if h[12..16] != [0; 4] || h[44..48] != [0; 4] {
        return Err(bad("segment header reserved bytes are not zero"));
    }
    if &h[0..8] != MAGIC {
        return Err(bad("not an ordq log segment (bad magic)"));
    }
    let crc = u32::from_le_bytes(h[40..44].try_into().expect("4 bytes"));
    if crc32c::crc32c(&h[0..40]) != crc {
        return Err(bad("segment header CRC32C mismatch"));
    }
    let version = u32::from_le_bytes(h[8..12].try_into().expect("4 bytes"));
    if version < VERSION {
        return Err(bad(&format!(
            "segment format version {version} (a development build's, frames not bound to the log id) is not read by this build"
        )));
    }
    if version != VERSION {
        return Err(Error::FormatTooNew {
            found: version,
            supported: VERSION,
        });
    }
    if u64::from_le_bytes(h[16..24].try_into().expect("8 bytes")) != base {
        return Err(bad(
            "segment header names another base LSN than its file name",
        ));
    }
    if &h[24..40] != log_id {
        return Err(bad("segment belongs to another database (log id differs)"));
    }
    Ok(())
}

/// Bytes a segment grows by at a time: written as zeros ahead of the
/// appends, so an append overwrites allocated, written blocks and its
/// `fdatasync` has no file size or extent change to record.
pub const CHUNK: u64 = 1 << 20;

/// The unit zeros are written in: one page. The page cache sizes a folio
/// by the write that creates it (large folios, Linux 6.x ext4), and
/// writeback writes a dirty folio whole: zeros written 64 KiB at a time
/// made every later 500-byte append + `fdatasync` write 64 KiB to disk.
const ZERO_UNIT: u64 = 4096;

/// Writes zeros from `from` up to `to`, growing the file, in page-sized
/// writes aligned to pages (see [`ZERO_UNIT`]).
pub fn zero_fill(f: &File, from: u64, to: u64) -> Result<()> {
    static ZEROS: [u8; ZERO_UNIT as usize] = [0; ZERO_UNIT as usize];
    let mut at = from;
    while at < to {
        let page_end = (at / ZERO_UNIT + 1) * ZERO_UNIT;
        let n = (to.min(page_end) - at) as usize;
        f.write_all_at(&ZEROS[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

/// fsyncs a directory, so a file created or removed in it stays so.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// Creates segment `base` in `dir`: written under a temporary name,
/// synced, renamed, and the directory synced, so a crash leaves either no
/// segment or a whole empty one.
pub fn create(dir: &Path, base: u64, log_id: &[u8; 16]) -> Result<File> {
    let path = dir.join(name(base));
    let tmp = dir.join(format!("{}.tmp", name(base)));
    let _ = fs::remove_file(&tmp);
    {
        let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.write_all(&header(base, log_id))?;
        zero_fill(&f, HEADER, CHUNK)?;
        f.sync_all()?;
    }
    if path.exists() {
        let _ = fs::remove_file(&tmp);
        return Err(Error::Corrupt(format!(
            "{}: segment exists already",
            path.display()
        )));
    }
    fs::rename(&tmp, &path)?;
    sync_dir(dir)?;
    Ok(OpenOptions::new().read(true).write(true).open(&path)?)
}

/// Removes temporary segment files of interrupted creations.
pub fn sweep_temps(dir: &Path) -> Result<()> {
    for e in fs::read_dir(dir)? {
        let e = e?;
        if e.file_name().to_string_lossy().ends_with(".seg.tmp") {
            fs::remove_file(e.path())?;
        }
    }
    Ok(())
}

/// The segments of `dir`, sorted by base LSN; other files are refused
/// except temporaries.
pub fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut v = Vec::new();
    for e in fs::read_dir(dir)? {
        let e = e?;
        let n = e.file_name().to_string_lossy().into_owned();
        match parse_name(&n) {
            Some(base) => v.push((base, e.path())),
            None if n.ends_with(".seg.tmp") => {}
            None => {
                return Err(Error::Corrupt(format!(
                    "{}: unexpected file in the log directory",
                    e.path().display()
                )))
            }
        }
    }
    v.sort();
    Ok(v)
}

/// What a scan of one segment found.
#[derive(Debug)]
pub struct Scan {
    /// LSN after the last frame of the last whole group.
    pub next_lsn: u64,
    /// Byte position after the last whole group.
    pub end: u64,
    /// Set when something follows the last whole group: bytes from `end`
    /// to the last non-zero byte, frames of an unfinished group (whole
    /// frames after the last commit marker), and why the scan stopped.
    pub tail: Option<Tail>,
}

/// Data after the last whole group of a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tail {
    /// Bytes from the end of the last group to the last non-zero byte.
    pub bytes: u64,
    /// Whole frames of the unfinished group.
    pub frames: u32,
    /// Why the scan stopped there.
    pub why: String,
}

/// Checks every frame of a segment's bytes (header included) and finds
/// the end of its last whole group. A bad or missing frame followed
/// anywhere later by the commit marker of a later group is corruption:
/// the writer starts a group only once the one before it is synced (see
/// the module docs of `wal`), so that group, and the damaged one before
/// it, were acknowledged. Otherwise what follows the last whole group is
/// the `tail` (an unfinished group), for the caller to judge.
pub fn scan(buf: &[u8], path: &Path, base: u64) -> Result<Scan> {
    let seed = seed_of(buf);
    let mut pos = HEADER as usize;
    let mut lsn = base;
    let (mut end, mut end_lsn, mut group_first) = (pos, lsn, lsn);
    let why = loop {
        match frame::decode(&buf[pos.min(buf.len())..], seed, lsn) {
            Decoded::Frame { kind, body, len } => {
                if kind == KIND_COMMIT {
                    let want = Commit {
                        lsn,
                        first: group_first,
                        frames: (lsn - group_first) as u32,
                    };
                    if Commit::decode(body) != Some(want) {
                        return Err(Error::Corrupt(format!(
                            "{} at byte {pos}: commit marker of LSN {lsn} does not close the group from LSN {group_first}",
                            path.display()
                        )));
                    }
                    end = pos + len;
                    end_lsn = lsn + 1;
                    group_first = lsn + 1;
                }
                pos += len;
                lsn += 1;
            }
            Decoded::End => break None,
            Decoded::Short => break Some(format!("frame at byte {pos} is cut short")),
            Decoded::Bad(why) => break Some(format!("frame at byte {pos}: {why}")),
        }
    };
    let stop = pos.min(buf.len());
    if let Some((at, c)) = frame::find_commit(&buf[stop..], seed, end_lsn) {
        return Err(Error::Corrupt(format!(
            "{} at byte {stop}: {}; a commit marker (LSN {}) follows at byte {}: acknowledged data after a damaged frame",
            path.display(),
            why.unwrap_or_else(|| "frames missing (zeros)".into()),
            c.lsn,
            stop + at
        )));
    }
    let last_nonzero = frame::written_len(buf);
    let tail = (last_nonzero > end || why.is_some()).then(|| Tail {
        bytes: last_nonzero.saturating_sub(end) as u64,
        frames: (lsn - end_lsn) as u32,
        why: why.unwrap_or_else(|| "an unfinished group (no commit marker)".into()),
    });
    Ok(Scan {
        next_lsn: end_lsn,
        end: end as u64,
        tail,
    })
}

/// Cuts a segment back to `end` (zeros after it, up to its length) and
/// syncs it.
pub fn cut(f: &File, end: u64) -> Result<()> {
    let len = f.metadata()?.len();
    zero_fill(f, end, len)?;
    f.sync_all()?;
    Ok(())
}

/// Reads a segment's header only.
pub fn read_header(f: &File) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; HEADER as usize];
    let n = f.read_at(&mut buf, 0)?;
    buf.truncate(n);
    Ok(buf)
}

/// Reads a whole segment file.
pub fn read(f: &File) -> Result<Vec<u8>> {
    let len = f.metadata()?.len() as usize;
    let mut buf = vec![0u8; len];
    f.read_exact_at(&mut buf, 0)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_and_parse() {
        assert_eq!(name(42), "00000000000000000042.seg");
        assert_eq!(parse_name(&name(u64::MAX)), Some(u64::MAX));
        assert_eq!(parse_name("42.seg"), None);
        assert_eq!(parse_name("0000000000000000004x.seg"), None);
        assert!(name(9) < name(10));
    }

    #[test]
    fn headers_check_magic_crc_base_and_id() {
        let id = [7u8; 16];
        let p = Path::new("s");
        let h = header(5, &id);
        check_header(&h, p, 5, &id).unwrap();
        assert!(check_header(&h, p, 6, &id).is_err());
        assert!(check_header(&h, p, 5, &[8u8; 16]).is_err());
        assert!(check_header(&h[..47], p, 5, &id).is_err());
        for i in 0..HEADER as usize {
            let mut g = h;
            g[i] ^= 0x10;
            assert!(check_header(&g, p, 5, &id).is_err(), "byte {i}");
        }
    }
}
