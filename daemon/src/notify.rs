//! systemd's readiness protocol (sd_notify(3)): one datagram such as `READY=1` to the Unix
//! socket named by $NOTIFY_SOCKET. A few lines with std's `UnixDatagram`; a crate (sd-notify,
//! libsystemd) would add a dependency for the same thing.
use std::os::unix::net::UnixDatagram;

/// Tells the service manager the daemon is up (`Type=notify` units); no-op outside systemd.
pub fn ready() {
    notify("READY=1");
}

fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(e) = send(&path, state) {
        tracing::warn!(socket = ?path, error = %e, "cannot notify the service manager");
    }
}

/// Sends `state` to the socket at `path` (a file system path, or `@name` for an abstract one).
pub fn send(path: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    let socket = UnixDatagram::unbound()?;
    let bytes = path.as_encoded_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        socket.send_to_addr(state.as_bytes(), &addr)?;
    } else {
        socket.send_to(state.as_bytes(), path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn sends_one_datagram() {
        let dir = std::env::temp_dir().join(format!("mipcast-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let server = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        super::send(path.as_os_str(), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
