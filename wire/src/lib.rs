//! # ordq-wire
//!
//! How ordq talks across processes: the broker's wire protocol
//! ([`protocol`]: newline-delimited JSON frames, one request or response
//! per line, bytes as base64; specified in docs/PROTOCOL.md) and the
//! remote client ([`client::Client`]), which implements
//! [`ordq_core::Engine`] over a Unix or TCP connection so callers (the C
//! ABI, the CLI) use a broker exactly as they use a local database.
//!
//! This crate depends on ordq-core's public types only; the server side
//! lives in ordq-broker.
//!
//! ```no_run
//! use ordq_core::{ClaimOptions, Engine};
//! use ordq_wire::client::{Client, ClientOptions};
//! let q = Client::connect("unix:///run/ordq/ordq.sock", ClientOptions::default())?;
//! for lease in q.claim("emails", "worker-1", ClaimOptions::default())? {
//!     q.complete(lease.token, b"sent")?;
//! }
//! # Ok::<(), ordq_core::Error>(())
//! ```
#![warn(missing_docs)]

pub mod client;
pub mod protocol;
pub mod stream;

pub use client::{Client, ClientOptions};
pub use protocol::{DEFAULT_MAX_FRAME, PROTOCOL_VERSION};
pub use stream::Stream;
