//! The segment log: an append-only write-ahead log of framed records in
//! segment files, written in commit groups.
//!
//! A database `NAME.ordq` keeps its log in the directory `NAME.ordq.log/`:
//! segment files named by the LSN (log sequence number) of their first
//! frame, each a header and then frames ([`frame`]); every frame has the
//! next LSN, and its CRC32C covers its LSN, so frames cannot be moved.
//!
//! **Groups.** Records are appended to an open group ([`Wal::append`]);
//! [`Wal::commit`] closes it with a commit marker frame naming the group's
//! frames and writes the whole group with one `write`; [`Wal::sync`]
//! makes it durable (`fdatasync`). A group is acknowledged only after its
//! sync, and **the next group is written only after the previous one's
//! sync returned** (it may be collected meanwhile): so at most one group
//! is ever unsynced, and the recovery rule below can tell a torn tail
//! from corruption. A group never spans segments: one that does not fit
//! in the active segment starts a new one (a group larger than a whole
//! segment makes that segment larger).
//!
//! **Recovery** ([`Wal::open`]). Every segment is scanned and every frame
//! checked. What follows the last commit marker of the last segment is an
//! unfinished group: it is cut (zeroed) and reported in [`Recovery`].
//! A damaged frame followed anywhere in its segment by the commit marker of
//! a later group, a sealed segment that does not end with a whole group, a
//! missing segment, or a segment of another database is corruption: the
//! log refuses to open ([`Error::Corrupt`]) and nothing is cut. What the
//! segment alone cannot tell apart is damage inside the last synced group
//! from a torn unsynced one; the engine's state checkpoint, which records
//! the LSN it covers, catches a cut below that LSN.
//!
//! A failed write or sync is never retried as if it worked: the log
//! refuses every later call with the first error.

pub mod frame;
pub mod segment;

use crate::error::{Error, Result};
use frame::{Commit, KIND_COMMIT};
use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Default segment size: 64 MiB (a segment grows to it by zero-filled
/// chunks, then the next one starts).
pub const DEFAULT_SEGMENT_SIZE: u64 = 64 << 20;

/// The log directory of the database file `db`: `NAME.ordq.log`.
pub fn dir_of(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".log");
    PathBuf::from(name)
}

/// One record read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its log sequence number.
    pub lsn: u64,
    /// Its kind (16 and up: the engine's record types).
    pub kind: u8,
    /// Its body.
    pub body: Vec<u8>,
}

/// Where the log stands after a commit: the next LSN and the segment
/// position it will be written at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// The next LSN.
    pub lsn: u64,
    /// Base LSN of the segment holding it.
    pub segment: u64,
    /// Byte offset in that segment.
    pub offset: u64,
}

/// What opening found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Segments in the log.
    pub segments: usize,
    /// LSN after the last whole group.
    pub next_lsn: u64,
    /// An unfinished group cut from the end, if any.
    pub torn: Option<Torn>,
}

/// An unfinished group that opening cut from the end of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Torn {
    /// The segment file it was cut from.
    pub segment: PathBuf,
    /// Byte offset where the cut starts (the end of the last whole group).
    pub offset: u64,
    /// Non-zero bytes that were cut.
    pub bytes: u64,
    /// Whole frames of the unfinished group that were cut.
    pub frames: u32,
    /// Why the scan stopped.
    pub why: String,
}

/// What [`Wal::remove_below`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Removed {
    /// Segment files removed.
    pub segments: usize,
    /// Their total size in bytes.
    pub bytes: u64,
}

/// The segment log of one database, open for appending.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    log_id: [u8; 16],
    /// Frame CRC seed of this log ([`frame::seed`] of the log id).
    seed: u32,
    segment_size: u64,
    /// Base LSNs of every segment, ascending; the last is active.
    segments: Vec<u64>,
    active: File,
    /// Write position in the active segment.
    pos: u64,
    /// Length of the active segment file (zeros from `pos` on).
    allocated: u64,
    next_lsn: u64,
    group: Vec<u8>,
    group_first: u64,
    failed: Option<Error>,
}

impl Wal {
    /// Creates an empty log in `dir` (which must not exist) for the
    /// database identified by `log_id`.
    pub fn create(dir: &Path, log_id: [u8; 16], segment_size: u64) -> Result<Wal> {
        fs::create_dir(dir).map_err(|e| Error::Io(format!("{}: {e}", dir.display())))?;
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            segment::sync_dir(parent)?;
        }
        let active = segment::create(dir, 0, &log_id)?;
        Ok(Wal {
            allocated: active.metadata()?.len(),
            dir: dir.to_path_buf(),
            log_id,
            seed: frame::seed(&log_id),
            segment_size,
            segments: vec![0],
            active,
            pos: segment::HEADER,
            next_lsn: 0,
            group: Vec::new(),
            group_first: 0,
            failed: None,
        })
    }

    /// Opens the log in `dir` and cuts an unfinished group from its end
    /// (reported in [`Recovery`]). Every frame from the segment holding
    /// LSN `from` on is checked; the segments before it (which the caller's
    /// state already covers) only by their header: `ordq verify` reads
    /// them all.
    pub fn open(
        dir: &Path,
        log_id: [u8; 16],
        segment_size: u64,
        from: u64,
    ) -> Result<(Wal, Recovery)> {
        segment::sweep_temps(dir)?;
        let segs = segment::list(dir)?;
        if segs.is_empty() {
            return Err(Error::Corrupt(format!(
                "{}: log directory has no segment",
                dir.display()
            )));
        }
        if segs[0].0 > from {
            return Err(Error::Corrupt(format!(
                "{}: the log starts at LSN {} but the state covers it only up to LSN {from} (segments removed below the checkpoint)",
                dir.display(),
                segs[0].0
            )));
        }
        let first_scanned = segs.partition_point(|(b, _)| *b <= from).max(1) - 1;
        let mut expect = segs[first_scanned].0;
        let mut last = None;
        for (i, (base, path)) in segs.iter().enumerate() {
            let is_last = i + 1 == segs.len();
            if i < first_scanned {
                let f = File::open(path)?;
                segment::check_header(&segment::read_header(&f)?, path, *base, &log_id)?;
                if segs[i + 1].0 <= *base {
                    return Err(Error::Corrupt(format!(
                        "{}: segments out of order",
                        path.display()
                    )));
                }
                continue;
            }
            if *base != expect {
                return Err(Error::Corrupt(format!(
                    "{}: starts at LSN {base} but the log before it ends at LSN {expect} (a segment is missing)",
                    path.display()
                )));
            }
            let f = fs::OpenOptions::new().read(true).write(true).open(path)?;
            let buf = segment::read(&f)?;
            segment::check_header(&buf, path, *base, &log_id)?;
            let scan = segment::scan(&buf, path, *base)?;
            if let (Some(t), false) = (&scan.tail, is_last) {
                return Err(Error::Corrupt(format!(
                    "{} at byte {}: sealed segment does not end with a whole group: {}",
                    path.display(),
                    scan.end,
                    t.why
                )));
            }
            expect = scan.next_lsn;
            if is_last {
                last = Some((f, scan, path.clone()));
            }
        }
        let (active, scan, path) = last.expect("at least one segment");
        let torn = match scan.tail {
            Some(t) => {
                segment::cut(&active, scan.end)?;
                Some(Torn {
                    segment: path,
                    offset: scan.end,
                    bytes: t.bytes,
                    frames: t.frames,
                    why: t.why,
                })
            }
            None => None,
        };
        let wal = Wal {
            dir: dir.to_path_buf(),
            log_id,
            seed: frame::seed(&log_id),
            segment_size,
            segments: segs.iter().map(|(b, _)| *b).collect(),
            allocated: active.metadata()?.len(),
            active,
            pos: scan.end,
            next_lsn: scan.next_lsn,
            group: Vec::new(),
            group_first: scan.next_lsn,
            failed: None,
        };
        let rec = Recovery {
            segments: wal.segments.len(),
            next_lsn: wal.next_lsn,
            torn,
        };
        Ok((wal, rec))
    }

    /// The id tying the log to its database (`meta.log_id`).
    pub fn log_id(&self) -> &[u8; 16] {
        &self.log_id
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The LSN the next appended record gets.
    pub fn next_lsn(&self) -> u64 {
        self.next_lsn
    }

    /// Where the next group will be written.
    pub fn position(&self) -> Position {
        Position {
            lsn: self.next_lsn,
            segment: *self.segments.last().expect("a segment"),
            offset: self.pos,
        }
    }

    /// Base LSNs of the segments, ascending.
    pub fn segments(&self) -> &[u64] {
        &self.segments
    }

    fn check(&self) -> Result<()> {
        match &self.failed {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    fn fail(&mut self, e: Error) -> Error {
        let e = match e {
            Error::Io(m) => Error::Io(format!(
                "segment log {}: {m}; the log refuses further writes (a failed write or sync is never retried as if it worked)",
                self.dir.display()
            )),
            other => other,
        };
        self.failed = Some(e.clone());
        e
    }

    /// Appends a record to the open group; returns its LSN. Nothing is
    /// written before [`Wal::commit`].
    pub fn append(&mut self, kind: u8, body: &[u8]) -> Result<u64> {
        self.check()?;
        if kind <= KIND_COMMIT || body.len() > frame::MAX_BODY {
            return Err(Error::InvalidArgument(format!(
                "log record of kind {kind} and {} bytes",
                body.len()
            )));
        }
        let lsn = self.next_lsn;
        frame::encode(&mut self.group, self.seed, lsn, kind, body);
        self.next_lsn += 1;
        Ok(lsn)
    }

    /// Closes the open group with its commit marker and writes it (one
    /// `write`, not synced); returns the position after it, or `None` when
    /// the group was empty.
    pub fn commit(&mut self) -> Result<Option<Position>> {
        self.check()?;
        if self.next_lsn == self.group_first {
            return Ok(None);
        }
        let marker = Commit {
            lsn: self.next_lsn,
            first: self.group_first,
            frames: (self.next_lsn - self.group_first) as u32,
        };
        frame::encode(
            &mut self.group,
            self.seed,
            marker.lsn,
            KIND_COMMIT,
            &marker.encode(),
        );
        let len = self.group.len() as u64;
        if self.pos + len > self.segment_size && self.pos > segment::HEADER {
            if let Err(e) = self.roll() {
                return Err(self.fail(e));
            }
        }
        if self.pos + len > self.allocated {
            let to = (self.pos + len).div_ceil(segment::CHUNK) * segment::CHUNK;
            if let Err(e) = segment::zero_fill(&self.active, self.allocated, to) {
                return Err(self.fail(e));
            }
            self.allocated = to;
        }
        #[cfg(feature = "failpoints")]
        {
            let half = &self.group[..self.group.len() / 2];
            if let Err(e) = self.active.write_all_at(half, self.pos) {
                return Err(self.fail(e.into()));
            }
            failpoint!("wal-mid-group");
        }
        if let Err(e) = self.active.write_all_at(&self.group, self.pos) {
            return Err(self.fail(e.into()));
        }
        self.pos += len;
        self.next_lsn += 1;
        self.group_first = self.next_lsn;
        self.group.clear();
        Ok(Some(self.position()))
    }

    /// Starts a new segment at the open group's first LSN, after syncing
    /// the active one.
    fn roll(&mut self) -> Result<()> {
        self.active.sync_data()?;
        let base = self.group_first;
        self.active = segment::create(&self.dir, base, &self.log_id)?;
        self.allocated = self.active.metadata()?.len();
        self.segments.push(base);
        self.pos = segment::HEADER;
        failpoint!("wal-roll");
        Ok(())
    }

    /// Bytes the segment files hold (their lengths, zero fill included).
    pub fn bytes(&self) -> Result<u64> {
        let mut n = 0;
        for &base in &self.segments {
            n += fs::metadata(self.dir.join(segment::name(base)))?.len();
        }
        Ok(n)
    }

    /// Removes the oldest sealed segments whose every record is below
    /// `lsn` (a state checkpoint covers them) and, with `older_than`, that
    /// were last written before that time. Never the active segment, never
    /// one after a segment it keeps: the log stays contiguous.
    pub fn remove_below(&mut self, lsn: u64, older_than: Option<SystemTime>) -> Result<Removed> {
        self.check()?;
        let mut r = Removed::default();
        while self.segments.len() > 1 && self.segments[1] <= lsn {
            let path = self.dir.join(segment::name(self.segments[0]));
            let meta = fs::metadata(&path)?;
            if older_than.is_some_and(|t| meta.modified().is_ok_and(|m| m > t)) {
                break;
            }
            fs::remove_file(&path)?;
            r.segments += 1;
            r.bytes += meta.len();
            self.segments.remove(0);
        }
        if r.segments > 0 {
            segment::sync_dir(&self.dir)?;
        }
        Ok(r)
    }

    /// Makes every committed group durable (`fdatasync`).
    pub fn sync(&mut self) -> Result<()> {
        self.check()?;
        failpoint!("wal-before-sync");
        match self.active.sync_data() {
            Ok(()) => Ok(()),
            Err(e) => Err(self.fail(e.into())),
        }
    }

    /// Every committed record from LSN `from` on, in order (commit
    /// markers left out), checking each frame again as it is read.
    pub fn read_from(&self, from: u64) -> Result<Vec<Record>> {
        let mut out = Vec::new();
        let start = self.segments.partition_point(|&b| b <= from).max(1) - 1;
        for &base in &self.segments[start..] {
            let path = self.dir.join(segment::name(base));
            let f = File::open(&path)?;
            let buf = segment::read(&f)?;
            segment::check_header(&buf, &path, base, &self.log_id)?;
            let mut pos = segment::HEADER as usize;
            let mut lsn = base;
            let mut group = Vec::new();
            loop {
                match frame::decode(&buf[pos.min(buf.len())..], self.seed, lsn) {
                    frame::Decoded::Frame { kind, body, len } => {
                        if kind == KIND_COMMIT {
                            out.append(&mut group);
                        } else if lsn >= from {
                            group.push(Record {
                                lsn,
                                kind,
                                body: body.to_vec(),
                            });
                        }
                        pos += len;
                        lsn += 1;
                    }
                    frame::Decoded::End | frame::Decoded::Short => break,
                    frame::Decoded::Bad(why) => {
                        return Err(Error::Corrupt(format!(
                            "{} at byte {pos}: {why}",
                            path.display()
                        )))
                    }
                }
            }
        }
        Ok(out)
    }
}
