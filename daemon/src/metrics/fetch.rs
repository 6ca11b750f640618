//! One blocking HTTP GET for the daemons' `status` subcommands.
//!
//! Hand-written HTTP/1.0 over a std `TcpStream`: the only peer is our own [`MetricsServer`]
//! (which answers a 1.0 request with a plain, non-chunked body and closes), and this avoids
//! pulling hyper's client stack and a runtime into every binary for a single request.
//!
//! [`MetricsServer`]: super::MetricsServer

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(5);
/// Status pages are small; a bigger answer means we are not talking to a mipcast daemon.
const MAX_RESPONSE: u64 = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("http://{addr}{path}: {source}")]
    Io {
        addr: SocketAddr,
        path: String,
        source: io::Error,
    },
    #[error("http://{addr}{path}: not an HTTP response")]
    Malformed { addr: SocketAddr, path: String },
    #[error("http://{addr}{path}: HTTP {status}: {body}")]
    Status {
        addr: SocketAddr,
        path: String,
        status: u16,
        body: String,
    },
}

/// GETs `path` (e.g. `/status`) from `addr` and returns the body of a 200 answer.
pub fn fetch(addr: SocketAddr, path: &str) -> Result<String, FetchError> {
    let io_err = |source| FetchError::Io {
        addr,
        path: path.to_owned(),
        source,
    };
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(io_err)?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(io_err)?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(io_err)?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").map_err(io_err)?;
    let mut raw = Vec::new();
    stream
        .take(MAX_RESPONSE)
        .read_to_end(&mut raw)
        .map_err(io_err)?;

    let malformed = || FetchError::Malformed {
        addr,
        path: path.to_owned(),
    };
    let text = String::from_utf8(raw).map_err(|_| malformed())?;
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(malformed)?;
    let status_line = head.lines().next().ok_or_else(malformed)?;
    let status: u16 = match status_line.split(' ').collect::<Vec<_>>().as_slice() {
        [version, code, ..] if version.starts_with("HTTP/1.") => {
            code.parse().map_err(|_| malformed())?
        }
        _ => return Err(malformed()),
    };
    if status != 200 {
        return Err(FetchError::Status {
            addr,
            path: path.to_owned(),
            status,
            body: body.trim_end().to_owned(),
        });
    }
    Ok(body.to_owned())
}
