//! The Linux capabilities a daemon needs, checked at start so that a daemon started without
//! them says which one it lacks, instead of failing later with "Operation not permitted" (or,
//! worse, reporting a kernel feature as missing because the probe was refused).
use std::fmt;

/// A capability the daemons use; the number is its bit in the kernel's capability sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    NetAdmin = 12,
    NetRaw = 13,
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Capability::NetAdmin => "CAP_NET_ADMIN",
            Capability::NetRaw => "CAP_NET_RAW",
        })
    }
}

/// The effective capability set of this process (the `CapEff` line of /proc/self/status).
pub fn effective() -> Result<u64, String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("/proc/self/status: {e}"))?;
    parse_cap_eff(&status).ok_or_else(|| "/proc/self/status: no CapEff line".to_owned())
}

fn parse_cap_eff(status: &str) -> Option<u64> {
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

/// Every `(capability, what needs it)` of `needed` that `effective` lacks, as one message per
/// line; Ok when none is missing.
pub fn check(daemon: &str, effective: u64, needed: &[(Capability, &str)]) -> Result<(), String> {
    let missing: Vec<String> = needed
        .iter()
        .filter(|(cap, _)| effective & (1u64 << *cap as u32) == 0)
        .map(|(cap, why)| {
            format!(
                "{daemon}: missing capability {cap} (needed for {why}); run it as root, or give it \
                 {cap} (systemd: AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW, as in the mipcast-{daemon}.service unit)"
            )
        })
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_each_missing_capability() {
        let status = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t0000000000002000\n";
        let eff = parse_cap_eff(status).unwrap();
        assert_eq!(eff, 1 << 13);
        let needed = [
            (Capability::NetAdmin, "routes"),
            (Capability::NetRaw, "raw sockets"),
        ];
        let err = check("mma", eff, &needed).unwrap_err();
        assert!(
            err.starts_with("mma: missing capability CAP_NET_ADMIN (needed for routes)"),
            "{err}"
        );
        assert!(!err.contains("missing capability CAP_NET_RAW"), "{err}");
        assert!(check("mma", (1 << 12) | (1 << 13), &needed).is_ok());
    }
}
