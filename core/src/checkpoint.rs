//! Checkpoint records: at every state checkpoint the writer appends one to
//! the segment log, naming the heads of every queue's two hash chains, the
//! fencing counter and the previous checkpoint's hash, so the checkpoints
//! form a chain of their own. With a signing key (Ed25519) each is signed;
//! `ordq verify` checks the chain, the signatures and that every
//! checkpoint's heads are what replaying the log up to it gives.
//!
//! ```text
//! record body (kind 20): json_len u32 LE ‖ json ‖ sig_len u8 (0 or 64) ‖ signature
//! hash      = BLAKE3(json)                        (the chain's genesis: 32 zero bytes)
//! signature = Ed25519(SIGN_CONTEXT ‖ log_id ‖ json)
//! ```

use crate::error::{Error, Result};
use crate::hash::{self, Digest};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

/// Record kind of a checkpoint in the segment log.
pub const KIND_CHECKPOINT: u8 = 20;

/// Prefix of every signed message: ties a signature to this use.
pub const SIGN_CONTEXT: &[u8] = b"ordq-checkpoint-v1\0";

/// Meta key: sequence number of the last checkpoint (u64 LE).
pub const META_SEQ: &str = "checkpoint_seq";
/// Meta key: hash of the last checkpoint (32 bytes).
pub const META_HEAD: &str = "checkpoint_head";
/// Meta key: the Ed25519 public key checkpoints are signed with (32 bytes),
/// recorded the first time the database is opened with a signing key.
pub const META_PUBKEY: &str = "signing_pubkey";

/// One queue's heads in a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueHeads {
    /// Queue id.
    pub id: u32,
    /// Queue name.
    pub name: String,
    /// Offset the next enqueue gets (the log chain holds offsets below it).
    pub next_offset: u64,
    /// Hash of the log record at `next_offset - 1` (hex; genesis if none).
    pub log_head: String,
    /// Sequence number the next event gets.
    pub next_event: u64,
    /// Hash of the event at `next_event - 1` (hex; genesis if none).
    pub event_head: String,
    /// Every offset below this is done or dead.
    pub watermark: u64,
}

/// The signed content of a checkpoint (canonical JSON: fields in this
/// order, no spaces, as serde_json writes them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Version (1).
    pub v: u32,
    /// Sequence number: 1 for the first checkpoint, +1 for each next.
    pub seq: u64,
    /// Time of the checkpoint, ms.
    pub at: u64,
    /// LSN of this record: the checkpoint covers every record before it.
    pub lsn: u64,
    /// Hash of the previous checkpoint (hex; genesis for the first).
    pub prev: String,
    /// The next fencing value.
    pub fence: u64,
    /// Key id of the signing key (hex of the first 8 bytes of BLAKE3 of
    /// the public key), if signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Every queue, by id.
    pub queues: Vec<QueueHeads>,
}

/// A checkpoint as stored: its JSON and signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The canonical JSON that is hashed and signed.
    pub json: Vec<u8>,
    /// The Ed25519 signature, if signed.
    pub signature: Option<[u8; 64]>,
}

impl Stored {
    /// The record body.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(5 + self.json.len() + 64);
        b.extend_from_slice(&(self.json.len() as u32).to_le_bytes());
        b.extend_from_slice(&self.json);
        match &self.signature {
            Some(s) => {
                b.push(64);
                b.extend_from_slice(s);
            }
            None => b.push(0),
        }
        b
    }

    /// Parses a record body.
    pub fn decode(body: &[u8]) -> Result<Stored> {
        let bad = |why: &str| Error::Corrupt(format!("checkpoint record: {why}"));
        let n = body.get(..4).ok_or_else(|| bad("truncated"))?;
        let n = u32::from_le_bytes(n.try_into().expect("4 bytes")) as usize;
        let json = body.get(4..4 + n).ok_or_else(|| bad("truncated JSON"))?;
        let rest = &body[4 + n..];
        let signature = match rest {
            [0] => None,
            [64, sig @ ..] if sig.len() == 64 => Some(sig.try_into().expect("64 bytes")),
            _ => return Err(bad("bad signature field")),
        };
        Ok(Stored {
            json: json.to_vec(),
            signature,
        })
    }

    /// The checkpoint's content.
    pub fn checkpoint(&self) -> Result<Checkpoint> {
        serde_json::from_slice(&self.json)
            .map_err(|e| Error::Corrupt(format!("checkpoint record: {e}")))
    }

    /// `BLAKE3(json)`.
    pub fn hash(&self) -> Digest {
        hash::digest(&self.json)
    }
}

/// Builds the stored form of `c`, signed with `key` for the database
/// whose log id is `log_id`.
pub fn seal(c: &Checkpoint, key: Option<&SigningKey>, log_id: &[u8; 16]) -> Stored {
    let json = serde_json::to_vec(c).expect("a checkpoint serializes");
    let signature = key.map(|k| k.sign(&message(log_id, &json)).to_bytes());
    Stored { json, signature }
}

/// Checks `s`'s signature with `key` (strict Ed25519 verification).
pub fn verify_signature(s: &Stored, key: &VerifyingKey, log_id: &[u8; 16]) -> bool {
    match &s.signature {
        Some(sig) => key
            .verify_strict(&message(log_id, &s.json), &Signature::from_bytes(sig))
            .is_ok(),
        None => false,
    }
}

fn message(log_id: &[u8; 16], json: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(SIGN_CONTEXT.len() + 16 + json.len());
    m.extend_from_slice(SIGN_CONTEXT);
    m.extend_from_slice(log_id);
    m.extend_from_slice(json);
    m
}

/// Key id of a public key: hex of the first 8 bytes of its BLAKE3.
pub fn key_id(key: &VerifyingKey) -> String {
    hash::hex(&hash::digest(key.as_bytes())[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoint {
        Checkpoint {
            v: 1,
            seq: 3,
            at: 1_764_298_365_000,
            lsn: 4711,
            prev: hash::hex(&hash::GENESIS),
            fence: 42,
            key_id: None,
            queues: vec![QueueHeads {
                id: 1,
                name: "q".into(),
                next_offset: 10,
                log_head: hash::hex(&[7; 32]),
                next_event: 4,
                event_head: hash::hex(&[9; 32]),
                watermark: 6,
            }],
        }
    }

    #[test]
    fn a_sealed_checkpoint_round_trips_and_verifies_only_with_its_key_and_log() {
        let key = SigningKey::from_bytes(&[5; 32]);
        let other = SigningKey::from_bytes(&[6; 32]);
        let s = seal(&sample(), Some(&key), &[1; 16]);
        let back = Stored::decode(&s.encode()).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.checkpoint().unwrap(), sample());
        assert!(verify_signature(&back, &key.verifying_key(), &[1; 16]));
        assert!(!verify_signature(&back, &other.verifying_key(), &[1; 16]));
        assert!(!verify_signature(&back, &key.verifying_key(), &[2; 16]));
        let mut flipped = back.clone();
        flipped.json[10] ^= 1;
        assert!(!verify_signature(&flipped, &key.verifying_key(), &[1; 16]));
        let unsigned = seal(&sample(), None, &[1; 16]);
        assert_eq!(Stored::decode(&unsigned.encode()).unwrap().signature, None);
        assert!(!verify_signature(&unsigned, &key.verifying_key(), &[1; 16]));
    }

    #[test]
    fn bad_bodies_are_corrupt() {
        let s = seal(&sample(), None, &[1; 16]).encode();
        for cut in [0, 3, 10, s.len() - 1] {
            assert!(Stored::decode(&s[..cut]).is_err(), "cut {cut}");
        }
        let mut b = s.clone();
        *b.last_mut().unwrap() = 7;
        assert!(Stored::decode(&b).is_err());
    }
}
