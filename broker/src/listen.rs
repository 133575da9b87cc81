//! Listen addresses and the sockets behind them: parsing `unix://` and
//! `tcp://` URIs, binding a Unix socket safely (mode 0600, private
//! directory, no stolen live socket) and the stream type both kinds of
//! connection share.

use ordq_core::error::{Error, Result};
pub(crate) use ordq_wire::stream::Stream;
use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// Longest Unix socket path, bytes (`sun_path` holds 108 with the NUL).
const MAX_UNIX_PATH: usize = 107;

/// Where the broker listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// A Unix socket at an absolute path (`unix:///run/ordq/ordq.sock`).
    Unix(PathBuf),
    /// A TCP address (`tcp://127.0.0.1:7420`); port 0 picks a free port.
    Tcp(SocketAddr),
}

impl Listen {
    /// Parses `unix:///absolute/path` or `tcp://host:port` (a host name
    /// is resolved now; its first address is used).
    pub fn parse(uri: &str) -> Result<Listen> {
        if let Some(path) = uri.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(Error::InvalidArgument(format!(
                    "listen address {uri:?}: a Unix socket path must be absolute (unix:///path/to/ordq.sock); abstract sockets are not supported"
                )));
            }
            if path.contains('\0') {
                return Err(Error::InvalidArgument(format!(
                    "listen address {uri:?}: the path contains a NUL byte"
                )));
            }
            if path.ends_with('/') {
                return Err(Error::InvalidArgument(format!(
                    "listen address {uri:?}: the path names a directory, not a socket file"
                )));
            }
            if path.len() > MAX_UNIX_PATH {
                return Err(Error::InvalidArgument(format!(
                    "listen address {uri:?}: a Unix socket path is limited to {MAX_UNIX_PATH} bytes, this one has {}",
                    path.len()
                )));
            }
            return Ok(Listen::Unix(PathBuf::from(path)));
        }
        if let Some(hostport) = uri.strip_prefix("tcp://") {
            let mut addrs = hostport.to_socket_addrs().map_err(|e| {
                Error::InvalidArgument(format!(
                    "listen address {uri:?}: expected tcp://host:port ({e})"
                ))
            })?;
            return addrs.next().map(Listen::Tcp).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "listen address {uri:?}: the host resolves to no address"
                ))
            });
        }
        Err(Error::InvalidArgument(format!(
            "unsupported listen address {uri:?}: use unix:///absolute/path or tcp://host:port"
        )))
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Listen::Unix(p) => write!(f, "unix://{}", p.display()),
            Listen::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

/// The identity of a file, to remove only the socket this broker made.
type FileId = (u64, u64);

/// A bound, listening socket.
pub(crate) enum Listener {
    /// A Unix socket and the file it created.
    Unix {
        listener: UnixListener,
        path: PathBuf,
        file: FileId,
    },
    /// A TCP socket.
    Tcp(TcpListener),
}

fn in_use(what: &str) -> Error {
    Error::AlreadyExists(format!(
        "{what} is in use: another broker (or program) is listening there"
    ))
}

/// Refuses a socket directory others could write into (they could
/// replace the socket with their own).
fn check_socket_dir(dir: &Path) -> Result<()> {
    let meta = std::fs::metadata(dir)
        .map_err(|e| Error::InvalidArgument(format!("socket directory {}: {e}", dir.display())))?;
    if !meta.is_dir() {
        return Err(Error::InvalidArgument(format!(
            "socket directory {} is not a directory",
            dir.display()
        )));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(Error::InvalidArgument(format!(
            "socket directory {} is group- or world-writable (mode {mode:04o}); put the socket in a private directory (e.g. `mkdir -m 0700 /run/ordq`)",
            dir.display()
        )));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me && meta.uid() != 0 {
        return Err(Error::InvalidArgument(format!(
            "socket directory {} belongs to uid {}, not to this user ({me}) or root",
            dir.display(),
            meta.uid()
        )));
    }
    Ok(())
}

/// Removes a socket file nothing listens on; refuses a live one or a
/// file that is not a socket.
fn clear_stale(path: &Path) -> Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(Error::InvalidArgument(format!(
                "socket path {}: {e}",
                path.display()
            )))
        }
    };
    if !meta.file_type().is_socket() {
        return Err(Error::InvalidArgument(format!(
            "socket path {} exists and is not a socket; refusing to replace it",
            path.display()
        )));
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(in_use(&format!("unix://{}", path.display()))),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => std::fs::remove_file(path)
            .map_err(|e| {
                Error::InvalidArgument(format!(
                    "cannot remove stale socket {}: {e}",
                    path.display()
                ))
            }),
        Err(e) => Err(Error::InvalidArgument(format!(
            "socket path {} exists and cannot be checked ({e}); remove it if no broker uses it",
            path.display()
        ))),
    }
}

fn last_os_error(what: &str, path: &Path) -> Error {
    let e = io::Error::last_os_error();
    if e.kind() == io::ErrorKind::AddrInUse {
        return in_use(&format!("unix://{}", path.display()));
    }
    Error::Io(format!("{what} {}: {e}", path.display()))
}

/// Binds a Unix socket whose file is created with mode 0600: the socket's
/// own mode is set before `bind` (Linux creates the file with it), and
/// the file is chmod-ed again after.
fn bind_unix(path: &Path) -> Result<Listener> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    check_socket_dir(dir)?;
    clear_stale(path)?;
    // SAFETY: plain socket(2); the result is checked before use and owned
    // by an OwnedFd from then on.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(last_os_error("cannot create socket for", path));
    }
    // SAFETY: fd is a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: an all-zero sockaddr_un is valid; the path (checked shorter
    // than sun_path) is copied in with its terminating NUL left zero.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_encoded_bytes();
    if bytes.len() >= addr.sun_path.len() {
        return Err(Error::InvalidArgument(format!(
            "socket path {} is too long",
            path.display()
        )));
    }
    for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1;
    // SAFETY: fd is valid; addr is a valid sockaddr_un of at least `len`
    // bytes; listen takes the same fd.
    unsafe {
        if libc::fchmod(fd.as_raw_fd(), 0o600) != 0 {
            return Err(last_os_error("cannot set the mode of socket", path));
        }
        if libc::bind(
            fd.as_raw_fd(),
            &addr as *const libc::sockaddr_un as *const libc::sockaddr,
            len as libc::socklen_t,
        ) != 0
        {
            return Err(last_os_error("cannot bind", path));
        }
        if libc::listen(fd.as_raw_fd(), 1024) != 0 {
            let e = last_os_error("cannot listen on", path);
            let _ = std::fs::remove_file(path);
            return Err(e);
        }
    }
    let listener = UnixListener::from(fd);
    let meta = std::fs::symlink_metadata(path)
        .map_err(|e| Error::Io(format!("socket {}: {e}", path.display())))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::Io(format!("cannot chmod socket {}: {e}", path.display())))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::Io(format!("socket {}: {e}", path.display())))?;
    Ok(Listener::Unix {
        listener,
        path: path.to_path_buf(),
        file: (meta.dev(), meta.ino()),
    })
}

fn bind_tcp(addr: SocketAddr) -> Result<Listener> {
    let l = TcpListener::bind(addr).map_err(|e| {
        if e.kind() == io::ErrorKind::AddrInUse {
            in_use(&format!("tcp://{addr}"))
        } else {
            Error::Io(format!("cannot listen on tcp://{addr}: {e}"))
        }
    })?;
    l.set_nonblocking(true)
        .map_err(|e| Error::Io(format!("tcp://{addr}: {e}")))?;
    Ok(Listener::Tcp(l))
}

impl Listener {
    /// Binds `l` (checks on tokens and remote addresses are the caller's).
    pub(crate) fn bind(l: &Listen) -> Result<Listener> {
        match l {
            Listen::Unix(p) => bind_unix(p),
            Listen::Tcp(a) => bind_tcp(*a),
        }
    }

    /// The bound address as a URI (port 0 resolved).
    pub(crate) fn uri(&self) -> String {
        match self {
            Listener::Unix { path, .. } => format!("unix://{}", path.display()),
            Listener::Tcp(l) => match l.local_addr() {
                Ok(a) => format!("tcp://{a}"),
                Err(_) => "tcp://?".to_string(),
            },
        }
    }

    /// Accepts one connection; `WouldBlock` when none is waiting.
    pub(crate) fn accept(&self) -> io::Result<Stream> {
        match self {
            Listener::Unix { listener, .. } => {
                let (s, _) = listener.accept()?;
                s.set_nonblocking(false)?;
                Ok(Stream::Unix(s))
            }
            Listener::Tcp(l) => {
                let (s, _) = l.accept()?;
                s.set_nonblocking(false)?;
                s.set_nodelay(true)?;
                keepalive(&s);
                Ok(Stream::Tcp(s))
            }
        }
    }

    /// Removes the socket file if it is still the one this listener made.
    pub(crate) fn remove_file(&self) {
        if let Listener::Unix { path, file, .. } = self {
            if let Ok(m) = std::fs::symlink_metadata(path) {
                if (m.dev(), m.ino()) == *file {
                    let _ = std::fs::remove_file(path);
                }
            }
        }
    }
}

impl AsRawFd for Listener {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Listener::Unix { listener, .. } => listener.as_raw_fd(),
            Listener::Tcp(l) => l.as_raw_fd(),
        }
    }
}

/// Turns on TCP keepalive (first probe after 60 s idle, then every 10 s,
/// 6 probes), so a vanished peer's connection is closed in about two
/// minutes instead of holding a connection slot for ever. Best effort.
fn keepalive(s: &TcpStream) {
    let fd = s.as_raw_fd();
    let set = |level: libc::c_int, name: libc::c_int, v: libc::c_int| {
        // SAFETY: fd is a valid socket; the option value is a c_int of
        // the size passed.
        unsafe {
            libc::setsockopt(
                fd,
                level,
                name,
                (&v as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    };
    set(libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1);
    set(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, 60);
    set(libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, 10);
    set(libc::IPPROTO_TCP, libc::TCP_KEEPCNT, 6);
}

/// Whether a TCP listen address is reachable only from this host.
pub(crate) fn is_loopback(a: &SocketAddr) -> bool {
    a.ip().is_loopback()
}
