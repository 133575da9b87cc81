//! The broker: serves one [`crate::Db`] to many processes over the wire
//! protocol ([`crate::protocol`]) on Unix sockets and TCP.
