//! Carrier loss within milliseconds.
//!
//! Link notifications over netlink ([`mipcast_kernel::linkwatch`]) are the primary source,
//! but the kernel sends a carrier change at once only for "urgent" devices and otherwise at
//! most once a second after the previous link event: a break-before-make move that follows
//! a link coming back was seen 180-260 ms late. The carrier bit itself
//! (`/sys/class/net/IF/carrier`) changes synchronously, so a task reads it every
//! [`CARRIER_POLL`] through file descriptors kept open (one `pread` per interface: a few
//! microseconds) and reports changes only. It reads interface state nothing else gives
//! promptly; it is not a substitute for the notifications (addresses, deleted links).
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::Duration;

use tokio::sync::mpsc;

/// Between two reads of the carrier bits: the bound on carrier-loss detection.
pub const CARRIER_POLL: Duration = Duration::from_millis(2);

/// A change of an interface's carrier: (ifindex, administratively up with carrier).
pub type CarrierChange = (u32, bool);

/// Starts the task on the current tokio runtime; it ends when the receiver is dropped.
pub fn watch(links: &[(u32, String)]) -> mpsc::UnboundedReceiver<CarrierChange> {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut files: Vec<(u32, String, Option<File>, Option<bool>)> = links
        .iter()
        .map(|(i, n)| (*i, n.clone(), None, None))
        .collect();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(CARRIER_POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            for (ifindex, name, file, last) in &mut files {
                let up = carrier(name, file);
                if *last != Some(up) {
                    *last = Some(up);
                    if tx.send((*ifindex, up)).is_err() {
                        return;
                    }
                }
            }
        }
    });
    rx
}

/// Whether the interface is up with carrier: the file reads "1". It cannot be read
/// (EINVAL) while the interface is administratively down, which is down too.
fn carrier(name: &str, file: &mut Option<File>) -> bool {
    if file.is_none() {
        *file = File::open(format!("/sys/class/net/{name}/carrier")).ok();
    }
    let mut buf = [0u8; 4];
    match file.as_ref().map(|f| f.read_at(&mut buf, 0)) {
        Some(Ok(n)) => buf.get(..n).is_some_and(|b| b.starts_with(b"1")),
        Some(Err(_)) => false,
        None => false,
    }
}
