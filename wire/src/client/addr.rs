//! Broker addresses: `unix:///path` and `tcp://host:port`, parsed and
//! dialled.

use super::remaining;
use crate::stream::Stream;
use ordq_core::error::{Error, Result};
use std::io::{self};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A broker address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Addr {
    /// A Unix domain socket path.
    Unix(PathBuf),
    /// `host:port`, resolved at every connect.
    Tcp(String),
}

impl Addr {
    /// Parses `unix:///path` or `tcp://host:port`.
    pub(super) fn parse(uri: &str) -> Result<Addr> {
        let bad = |why: &str| {
            Err(Error::InvalidArgument(format!(
                "broker address {uri:?} {why}; use unix:///path/to/ordq.sock or tcp://host:port"
            )))
        };
        if let Some(path) = uri.strip_prefix("unix://") {
            if path.is_empty() {
                return bad("names no socket path");
            }
            if path.contains('\0') {
                return bad("contains a NUL byte");
            }
            return Ok(Addr::Unix(PathBuf::from(path)));
        }
        if let Some(hp) = uri.strip_prefix("tcp://") {
            let Some((host, port)) = hp.rsplit_once(':') else {
                return bad("has no port");
            };
            if host.is_empty() {
                return bad("has no host");
            }
            if host.contains(['/', '?', '#', '@']) {
                return bad("has more than host:port");
            }
            if port.parse::<u16>().is_err() {
                return bad("has no valid port (0..=65535)");
            }
            return Ok(Addr::Tcp(hp.to_string()));
        }
        bad("is not a broker address")
    }

    /// Opens a socket, giving up at `deadline`.
    pub(super) fn dial(&self, deadline: Instant) -> io::Result<Stream> {
        match self {
            Addr::Unix(p) => UnixStream::connect(p).map(Stream::Unix),
            Addr::Tcp(hp) => {
                let mut last = None;
                for sa in hp.to_socket_addrs()? {
                    let left = remaining(deadline).max(Duration::from_millis(1));
                    match TcpStream::connect_timeout(&sa, left) {
                        Ok(s) => {
                            s.set_nodelay(true)?;
                            return Ok(Stream::Tcp(s));
                        }
                        Err(e) => last = Some(e),
                    }
                }
                Err(last.unwrap_or_else(|| {
                    io::Error::new(io::ErrorKind::NotFound, "host resolved to no address")
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse() {
        assert_eq!(
            Addr::parse("unix:///run/ordq.sock").unwrap(),
            Addr::Unix("/run/ordq.sock".into())
        );
        assert_eq!(
            Addr::parse("tcp://127.0.0.1:7420").unwrap(),
            Addr::Tcp("127.0.0.1:7420".into())
        );
        assert_eq!(
            Addr::parse("tcp://[::1]:7420").unwrap(),
            Addr::Tcp("[::1]:7420".into())
        );
        assert_eq!(
            Addr::parse("tcp://localhost:1").unwrap(),
            Addr::Tcp("localhost:1".into())
        );
        for bad in [
            "unix://",
            "tcp://host",
            "tcp://:7420",
            "tcp://h:99999",
            "tcp://h:7420/x",
            "tcp://u@h:1",
            "http://h:1",
            "/tmp/x.sock",
        ] {
            let e = Addr::parse(bad).unwrap_err();
            assert!(matches!(e, Error::InvalidArgument(_)), "{bad}: {e}");
        }
    }
}
