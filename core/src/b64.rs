//! Bytes as standard base64 with padding: how payloads and results look
//! in JSON (task listings, the wire protocol, the C ABI's task JSON).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serializer};

/// Encodes bytes.
pub fn encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Decodes a base64 string, naming `what` in the error.
pub fn decode(text: &str, what: &str) -> crate::Result<Vec<u8>> {
    STANDARD
        .decode(text)
        .map_err(|e| crate::Error::InvalidArgument(format!("{what} is not valid base64: {e}")))
}

/// `Vec<u8>` as a base64 string.
pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&encode(b))
}

/// A base64 string as `Vec<u8>`.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
    STANDARD
        .decode(s.as_bytes())
        .map_err(serde::de::Error::custom)
}

/// `Option<Vec<u8>>` as a base64 string or null.
pub mod opt {
    use super::*;

    /// Serialises `Some` as base64, `None` as null.
    pub fn serialize<S: Serializer>(b: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match b {
            Some(b) => s.serialize_some(&encode(b)),
            None => s.serialize_none(),
        }
    }

    /// Reads a base64 string or null.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        match Option::<std::borrow::Cow<'de, str>>::deserialize(d)? {
            Some(s) => STANDARD
                .decode(s.as_bytes())
                .map(Some)
                .map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}
