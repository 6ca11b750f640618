//! A paced TCP stream with an echo: a client in one namespace writes a chunk every
//! `interval` to a server in another, which sends every byte back. Both directions record
//! when bytes arrive, so a test can measure the largest interruption around a handover and
//! check that data keeps flowing (and that the connection was never reset).
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::Netns;

/// Arrival log: (when, how many bytes) per successful read.
type Arrivals = Arc<Mutex<Vec<(Instant, usize)>>>;

/// Reads and writes block at most this long, so a stop request is seen promptly; a longer
/// pause of the path is not an error.
const POLL: Duration = Duration::from_millis(100);
/// A write blocked this long means the connection is dead, not paused by a handover.
const WRITE_STALL: Duration = Duration::from_secs(30);

pub struct TcpFlow {
    stop: Arc<AtomicBool>,
    /// Bytes arriving at the server (downlink when the server is the mobile node).
    down: Arrivals,
    /// Echoed bytes arriving back at the client.
    back: Arrivals,
    errors: Arc<Mutex<Vec<String>>>,
    streams: Vec<TcpStream>,
    threads: Vec<JoinHandle<()>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Errors that only mean "nothing arrived within the poll interval".
fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
    )
}

impl TcpFlow {
    /// Listens on `[addr]:port` in `server_ns`, connects from `client_ns`, and starts writing
    /// `chunk` bytes every `interval`.
    pub fn start(
        server_ns: &Netns,
        client_ns: &Netns,
        addr: Ipv6Addr,
        port: u16,
        chunk: usize,
        interval: Duration,
    ) -> Result<TcpFlow, String> {
        // Sockets stay in the namespace they were created in, whatever thread uses them later.
        let listener = server_ns
            .enter(|| TcpListener::bind((addr, port)))
            .map_err(|e| format!("listen on [{addr}]:{port}: {e}"))?;
        let target = SocketAddr::from((addr, port));
        let client = client_ns
            .enter(|| TcpStream::connect_timeout(&target, Duration::from_secs(10)))
            .map_err(|e| format!("connect to {target} from {}: {e}", client_ns.name()))?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let deadline = Instant::now() + Duration::from_secs(5);
        let server = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if is_timeout(&e) && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(e) => return Err(format!("accept on {target}: {e}")),
            }
        };
        for s in [&server, &client] {
            s.set_nonblocking(false).map_err(|e| e.to_string())?;
            s.set_nodelay(true).map_err(|e| e.to_string())?;
            s.set_read_timeout(Some(POLL)).map_err(|e| e.to_string())?;
            s.set_write_timeout(Some(WRITE_STALL))
                .map_err(|e| e.to_string())?;
        }
        let mut flow = TcpFlow {
            stop: Arc::new(AtomicBool::new(false)),
            down: Arrivals::default(),
            back: Arrivals::default(),
            errors: Arc::default(),
            streams: vec![],
            threads: vec![],
        };
        let clone = |s: &TcpStream| s.try_clone().map_err(|e| e.to_string());
        let (server_w, client_r) = (clone(&server)?, clone(&client)?);
        flow.streams = vec![clone(&server)?, clone(&client)?];
        flow.spawn_echo(server, server_w);
        flow.spawn_reader(client_r, Arc::clone(&flow.back), "client read");
        flow.spawn_writer(client, chunk, interval);
        Ok(flow)
    }

    fn spawn_echo(&mut self, mut rx: TcpStream, mut tx: TcpStream) {
        let (stop, log, errors) = (
            Arc::clone(&self.stop),
            Arc::clone(&self.down),
            Arc::clone(&self.errors),
        );
        self.threads.push(std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while !stop.load(Ordering::Relaxed) {
                match rx.read(&mut buf) {
                    Ok(0) => {
                        if !stop.load(Ordering::Relaxed) {
                            lock(&errors).push("server: peer closed the connection".into());
                        }
                        return;
                    }
                    Ok(n) => {
                        lock(&log).push((Instant::now(), n));
                        if let Err(e) = tx.write_all(buf.get(..n).unwrap_or_default()) {
                            lock(&errors).push(format!("server echo: {e}"));
                            return;
                        }
                    }
                    Err(e) if is_timeout(&e) => {}
                    Err(e) => {
                        lock(&errors).push(format!("server read: {e}"));
                        return;
                    }
                }
            }
        }));
    }

    fn spawn_reader(&mut self, mut rx: TcpStream, log: Arrivals, who: &'static str) {
        let (stop, errors) = (Arc::clone(&self.stop), Arc::clone(&self.errors));
        self.threads.push(std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while !stop.load(Ordering::Relaxed) {
                match rx.read(&mut buf) {
                    Ok(0) => {
                        if !stop.load(Ordering::Relaxed) {
                            lock(&errors).push(format!("{who}: peer closed the connection"));
                        }
                        return;
                    }
                    Ok(n) => lock(&log).push((Instant::now(), n)),
                    Err(e) if is_timeout(&e) => {}
                    Err(e) => {
                        lock(&errors).push(format!("{who}: {e}"));
                        return;
                    }
                }
            }
        }));
    }

    fn spawn_writer(&mut self, mut tx: TcpStream, chunk: usize, interval: Duration) {
        let (stop, errors) = (Arc::clone(&self.stop), Arc::clone(&self.errors));
        self.threads.push(std::thread::spawn(move || {
            // A recognisable pattern, so a capture shows which bytes are the test's.
            let data: Vec<u8> = (0..chunk).map(|i| (i % 251) as u8).collect();
            while !stop.load(Ordering::Relaxed) {
                if let Err(e) = tx.write_all(&data) {
                    if !stop.load(Ordering::Relaxed) {
                        lock(&errors).push(format!("client write: {e}"));
                    }
                    return;
                }
                std::thread::sleep(interval);
            }
        }));
    }

    /// Bytes the server has received so far.
    pub fn received(&self) -> u64 {
        total(&self.down, None)
    }

    /// Echoed bytes the client has received so far.
    pub fn echoed(&self) -> u64 {
        total(&self.back, None)
    }

    /// Bytes the server received in `[from, to)`.
    pub fn received_between(&self, from: Instant, to: Instant) -> u64 {
        total(&self.down, Some((from, to)))
    }

    /// Echoed bytes the client received in `[from, to)`.
    pub fn echoed_between(&self, from: Instant, to: Instant) -> u64 {
        total(&self.back, Some((from, to)))
    }

    /// The longest time without a byte arriving at the server within `[from, to]`
    /// (the window's edges count as arrivals, so a flow that stopped shows it).
    pub fn largest_gap(&self, from: Instant, to: Instant) -> Gap {
        largest_gap(&lock(&self.down), from, to)
    }

    /// The same for the echoed bytes arriving back at the client.
    pub fn largest_echo_gap(&self, from: Instant, to: Instant) -> Gap {
        largest_gap(&lock(&self.back), from, to)
    }

    /// Connection errors seen so far (resets, unexpected closes, stalled writes).
    pub fn errors(&self) -> Vec<String> {
        lock(&self.errors).clone()
    }

    /// Stops all threads and closes both ends; returns the errors seen.
    pub fn stop(mut self) -> Vec<String> {
        self.halt();
        self.errors()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for s in &self.streams {
            let _ = s.shutdown(Shutdown::Both);
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for TcpFlow {
    fn drop(&mut self) {
        self.halt();
    }
}

fn total(log: &Arrivals, window: Option<(Instant, Instant)>) -> u64 {
    lock(log)
        .iter()
        .filter(|(t, _)| window.is_none_or(|(a, b)| *t >= a && *t < b))
        .map(|(_, n)| *n as u64)
        .sum()
}

/// A silence in a flow: it began `start` and lasted `length`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    pub start: Instant,
    pub length: Duration,
}

impl Gap {
    /// Where the gap began relative to `t` (e.g. the moment of a move), in ms, signed.
    pub fn offset_ms(&self, t: Instant) -> f64 {
        match self.start.checked_duration_since(t) {
            Some(d) => d.as_secs_f64() * 1000.0,
            None => -(t.saturating_duration_since(self.start).as_secs_f64() * 1000.0),
        }
    }

    pub fn ms(&self) -> f64 {
        self.length.as_secs_f64() * 1000.0
    }
}

fn largest_gap(arrivals: &[(Instant, usize)], from: Instant, to: Instant) -> Gap {
    let mut last = from;
    let mut worst = Gap {
        start: from,
        length: Duration::ZERO,
    };
    for (t, _) in arrivals.iter().filter(|(t, _)| *t >= from && *t <= to) {
        let length = t.saturating_duration_since(last);
        if length > worst.length {
            worst = Gap {
                start: last,
                length,
            };
        }
        last = *t;
    }
    let tail = to.saturating_duration_since(last);
    if tail > worst.length {
        worst = Gap {
            start: last,
            length: tail,
        };
    }
    worst
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gap_counts_window_edges_and_the_longest_silence() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let log = vec![(ms(10), 1), (ms(20), 1), (ms(250), 1), (ms(260), 1)];
        assert_eq!(
            largest_gap(&log, ms(0), ms(300)),
            Gap {
                start: ms(20),
                length: Duration::from_millis(230)
            }
        );
        assert_eq!(
            largest_gap(&log, ms(0), ms(600)),
            Gap {
                start: ms(260),
                length: Duration::from_millis(340)
            }
        );
        assert_eq!(
            largest_gap(&[], ms(0), ms(100)),
            Gap {
                start: ms(0),
                length: Duration::from_millis(100)
            }
        );
    }
}
