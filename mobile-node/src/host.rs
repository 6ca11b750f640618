//! Interface facts the daemon polls from sysfs (MAC address, link state) and the link
//! quality files. Kernel state (addresses, the default route) goes through
//! `mipcast_kernel::route` like every other object we install.

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("interface {name}: reading {what} from sysfs: {source}")]
    Sysfs {
        name: String,
        what: &'static str,
        source: std::io::Error,
    },
    #[error("interface {name}: {what} in sysfs is not a MAC address: {text:?}")]
    BadMac {
        name: String,
        what: &'static str,
        text: String,
    },
}

/// The interface's MAC address (for SLAAC and the terminal group).
pub fn mac_of(name: &str) -> Result<[u8; 6], HostError> {
    let text =
        std::fs::read_to_string(format!("/sys/class/net/{name}/address")).map_err(|source| {
            HostError::Sysfs {
                name: name.to_owned(),
                what: "address",
                source,
            }
        })?;
    parse_mac(text.trim()).ok_or_else(|| HostError::BadMac {
        name: name.to_owned(),
        what: "address",
        text,
    })
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut out {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// Whether the interface can carry traffic: administratively up with carrier (the carrier
/// bit, current; the operational state follows it in deferred kernel work).
pub fn link_up(name: &str) -> bool {
    let flags = std::fs::read_to_string(format!("/sys/class/net/{name}/flags")).unwrap_or_default();
    let admin_up =
        u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).is_ok_and(|f| f & 1 != 0);
    // Unreadable (EINVAL) while administratively down.
    let carrier = std::fs::read_to_string(format!("/sys/class/net/{name}/carrier"))
        .is_ok_and(|c| c.trim() == "1");
    admin_up && carrier
}

/// A quality file's reading: an integer 0-100 (clamped); None when absent or unreadable.
pub fn read_quality(path: &std::path::Path) -> Option<u8> {
    let text = std::fs::read_to_string(path).ok()?;
    let v: i64 = text.trim().parse().ok()?;
    u8::try_from(v.clamp(0, 100)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_parse_strictly() {
        assert_eq!(parse_mac("02:00:00:00:01:00"), Some([2, 0, 0, 0, 1, 0]));
        assert_eq!(parse_mac("02:00:00:00:01"), None);
        assert_eq!(parse_mac("02:00:00:00:01:00:07"), None);
        assert_eq!(parse_mac("zz:00:00:00:01:00"), None);
    }
}
