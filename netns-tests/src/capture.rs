//! tcpdump captures inside a namespace, read back with tshark.
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::wait::{wait_for, WaitError};
use crate::{Daemon, Netns};

/// A running tcpdump writing a pcap; [`Capture::finish`] stops it so the file is complete.
pub struct Capture {
    daemon: Daemon,
    file: PathBuf,
}

impl Capture {
    /// Starts `tcpdump -i ifname <filter>` into `file` and waits until it is armed.
    pub fn start(
        ns: &Netns,
        ifname: &str,
        filter: &str,
        file: &Path,
    ) -> Result<Capture, WaitError> {
        let log = file.with_extension("tcpdump.log");
        let path = file.to_string_lossy();
        // --immediate-mode: without it packets wait in the ring's current block and a short
        // capture stopped early records none of them.
        let mut args = vec!["-i", ifname, "-n", "-U", "--immediate-mode", "-w", &path];
        if !filter.is_empty() {
            args.push(filter);
        }
        let child = ns.spawn("tcpdump", &args, Some(&log));
        let cap = Capture {
            daemon: Daemon(child),
            file: file.to_path_buf(),
        };
        wait_for(
            &format!("tcpdump on {ifname} in {}", ns.name()),
            Duration::from_secs(5),
            || {
                std::fs::read_to_string(&log)
                    .ok()
                    .filter(|l| l.contains("listening on"))
                    .map(|_| ())
            },
        )?;
        Ok(cap)
    }

    /// Stops the capture (SIGINT flushes the file) and returns its path.
    pub fn finish(mut self) -> PathBuf {
        // Packets already on the wire need a moment to reach the capture buffer.
        std::thread::sleep(Duration::from_millis(200));
        let _ = self
            .daemon
            .signal_and_wait(libc::SIGINT, Duration::from_secs(5));
        self.file.clone()
    }
}

/// tshark's `-T fields` output for the packets matching `display_filter`, one Vec per packet
/// (a field with several occurrences, e.g. the inner and outer IPv6 source, is comma-joined).
pub fn tshark_fields(
    pcap: &Path,
    display_filter: &str,
    fields: &[&str],
) -> Result<Vec<Vec<String>>, String> {
    let mut cmd = std::process::Command::new("tshark");
    cmd.arg("-r")
        .arg(pcap)
        .args(["-Y", display_filter, "-T", "fields"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run tshark: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "tshark on {}: {}",
            pcap.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect())
}
