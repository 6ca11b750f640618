//! A daemon's control socket: a Unix stream socket on which a local tool (`mma advise`,
//! `mobile-node quality set`) sends one request line and reads one reply line. Only root and
//! the daemon's user can connect (mode 600).
//!
//! A task accepts and reads; requests reach the daemon's main loop through a channel (so
//! `select!` on it is cancel-safe), and the loop answers each through its [`Request::reply`].
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

/// A request line longer than this is refused (they are a few dozen bytes).
const MAX_LINE: usize = 4096;

/// One request and the way back to its client.
#[derive(Debug)]
pub struct Request {
    pub line: String,
    reply: oneshot::Sender<String>,
}

impl Request {
    /// Sends the reply line to the client (dropped silently if it went away).
    pub fn reply(self, line: String) {
        let _ = self.reply.send(line);
    }
}

/// The listening socket; removes its file when dropped.
#[derive(Debug)]
pub struct ControlSocket {
    path: PathBuf,
    requests: mpsc::Receiver<Request>,
    task: tokio::task::JoinHandle<()>,
}

impl ControlSocket {
    /// Binds `path` (a stale socket file left by a crashed predecessor is replaced) with
    /// mode 600 and starts accepting. Must run inside a tokio runtime.
    pub fn bind(path: &Path) -> io::Result<ControlSocket> {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        let (tx, requests) = mpsc::channel(16);
        let task = tokio::spawn(accept_loop(listener, tx));
        Ok(ControlSocket {
            path: path.to_owned(),
            requests,
            task,
        })
    }

    /// The next request (cancel-safe).
    pub async fn next(&mut self) -> Option<Request> {
        self.requests.recv().await
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn accept_loop(listener: UnixListener, tx: mpsc::Sender<Request>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let tx = tx.clone();
        // One task per client: a client that never writes holds only its own task.
        tokio::spawn(async move {
            let _ = serve(stream, tx).await;
        });
    }
}

async fn serve(stream: UnixStream, tx: mpsc::Sender<Request>) -> io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = tokio::io::BufReader::new(read).take(MAX_LINE as u64);
    reader.read_line(&mut line).await?;
    let (reply, answer) = oneshot::channel();
    let request = Request {
        line: line.trim_end().to_owned(),
        reply,
    };
    if tx.send(request).await.is_err() {
        return Ok(());
    }
    if let Ok(mut answer) = answer.await {
        answer.push('\n');
        write.write_all(answer.as_bytes()).await?;
    }
    Ok(())
}

/// The client side: sends `line` to the daemon at `path` and returns its reply line.
pub fn request(path: &Path, line: &str, timeout: Duration) -> io::Result<String> {
    let mut stream = std::os::unix::net::UnixStream::connect(path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "{}: {e} (is the daemon running with this control_socket?)",
                path.display()
            ),
        )
    })?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(line.as_bytes())?;
    stream.write_all(b"\n")?;
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply)?;
    if reply.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the daemon closed the control socket without a reply",
        ));
    }
    Ok(reply.trim_end().to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_line_gets_its_reply_and_the_file_goes_with_the_socket() {
        let dir = std::env::temp_dir().join(format!("mipcast-control-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ctl.sock");
        let mut server = ControlSocket::bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let client_path = path.clone();
        let client = std::thread::spawn(move || {
            request(&client_path, "{\"ping\":1}", Duration::from_secs(5))
        });
        let req = server.next().await.unwrap();
        assert_eq!(req.line, "{\"ping\":1}");
        req.reply("pong".to_owned());
        // The reply travels on the spawned task; let the runtime run it.
        let reply = tokio::task::spawn_blocking(move || client.join().unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(reply, "pong");
        drop(server);
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
