//! [`Client`]: the broker's client, an [`crate::Engine`] over the wire
//! protocol with pipelining, reconnects and deadlines.
