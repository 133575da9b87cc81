//! Reading the whole segment log for verification: every frame checked,
//! records grouped by their commit markers.

use super::{Findings, ProblemClass};
use crate::error::{Error, Result};
use crate::tables::{META, META_LOG_ID};
use crate::wal::frame::{self, Decoded, KIND_COMMIT};
use crate::wal::{segment, Record};
use std::fs::File;
use std::path::Path;

/// Where a whole group ends: the LSN after it, and the byte after it in
/// its segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GroupEnd {
    /// The LSN after the group.
    pub lsn: u64,
    /// Base LSN of its segment.
    pub segment: u64,
    /// The byte after it in that segment.
    pub offset: u64,
}

/// What reading the log found.
pub(crate) struct Read {
    /// Segment files.
    pub segments: usize,
    /// LSN of the first frame kept.
    pub first_lsn: u64,
    /// Frames read below the end.
    pub frames: u64,
    /// Every record of every whole group below the end, in order.
    pub records: Vec<Record>,
    /// The end of every whole group, in order.
    pub groups: Vec<GroupEnd>,
}

/// The snapshot's log id.
pub(crate) fn log_id(snapshot: &redb::ReadTransaction) -> Result<[u8; 16]> {
    let meta = snapshot.open_table(META)?;
    let v = meta
        .get(META_LOG_ID)?
        .ok_or_else(|| Error::Corrupt("meta log_id missing".into()))?;
    v.value()
        .try_into()
        .map_err(|_| Error::Corrupt("meta log_id is not 16 bytes".into()))
}

/// Reads every segment of `dir` up to LSN `end` (`u64::MAX`: all of it).
pub(crate) fn read(dir: &Path, log_id: &[u8; 16], end: u64, f: &mut Findings) -> Result<Read> {
    let segs = segment::list(dir)?;
    let mut out = Read {
        segments: segs.len(),
        first_lsn: segs.first().map_or(0, |s| s.0),
        frames: 0,
        records: Vec::new(),
        groups: Vec::new(),
    };
    let seed = frame::seed(log_id);
    let mut lsn = out.first_lsn;
    for (i, (base, path)) in segs.iter().enumerate() {
        if lsn >= end {
            break;
        }
        let at = |pos: usize| format!("{} byte {pos}", path.display());
        if *base != lsn {
            f.add(
                ProblemClass::Log,
                at(0),
                format!("starts at LSN {base}, the log before it ends at LSN {lsn} (a segment is missing or out of place)"),
            );
            lsn = *base;
        }
        let buf = segment::read(&File::open(path)?)?;
        if let Err(e) = segment::check_header(&buf, path, *base, log_id) {
            f.add(ProblemClass::Log, at(0), e.to_string());
            continue;
        }
        let mut pos = segment::HEADER as usize;
        let mut group = Vec::new();
        let last = i + 1 == segs.len();
        while lsn < end {
            match frame::decode(buf.get(pos..).unwrap_or(&[]), seed, lsn) {
                Decoded::Frame { kind, body, len } => {
                    out.frames += 1;
                    if kind == KIND_COMMIT {
                        out.records.append(&mut group);
                        out.groups.push(GroupEnd {
                            lsn: lsn + 1,
                            segment: *base,
                            offset: (pos + len) as u64,
                        });
                    } else {
                        group.push(Record {
                            lsn,
                            kind,
                            body: body.to_vec(),
                        });
                    }
                    pos += len;
                    lsn += 1;
                }
                // `end` MAX: read to wherever the log ends.
                Decoded::End if !last || end == u64::MAX => break,
                Decoded::End => {
                    f.add(
                        ProblemClass::Log,
                        at(pos),
                        format!("the log ends at LSN {lsn}, before the state's LSN {end}"),
                    );
                    break;
                }
                Decoded::Short | Decoded::Bad(_) => {
                    let why = match frame::decode(&buf[pos..], seed, lsn) {
                        Decoded::Bad(w) => w,
                        _ => "frame cut short".into(),
                    };
                    f.add(ProblemClass::Log, at(pos), format!("LSN {lsn}: {why}"));
                    return Ok(out);
                }
            }
        }
        if !group.is_empty() {
            f.add(
                ProblemClass::Log,
                at(pos),
                format!("a group of {} records has no commit marker", group.len()),
            );
        }
    }
    Ok(out)
}
