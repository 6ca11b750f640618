//! Link quality from the radio: each link with `quality_source: nl80211` reads the signal of
//! its access point from the kernel's nl80211 family at the quality poll interval.
//!
//! The family is probed once at start. Where the kernel has no wireless stack, each such link
//! is named in a warning and falls back to its `quality_file` if it has one, else to the
//! control socket if one is configured, else to no reading at all (it scores as a link
//! without a quality source); the daemon runs on either way.
use std::collections::HashSet;

use mipcast_kernel::nl80211::{quality_from_dbm, Nl80211, Probe};

use crate::config::{Config, InterfaceConfig, QualitySource};

/// The nl80211 readings of the links that asked for them and got them.
pub struct Radio {
    nl: Nl80211,
    /// Links whose last station query failed: warned about once, not every poll.
    failing: HashSet<u32>,
}

/// Probes nl80211 if any link asks for it. Returns the radio (None when no link asked or the
/// kernel has no nl80211) and, per configured interface in order, whether it reads nl80211.
pub async fn probe(cfg: &Config) -> (Option<Radio>, Vec<bool>) {
    let wants: Vec<bool> = cfg
        .interfaces
        .iter()
        .map(|i| i.quality_source == Some(QualitySource::Nl80211))
        .collect();
    if !wants.contains(&true) {
        return (None, wants);
    }
    match Nl80211::probe().await {
        Probe::Available(nl) => {
            for ifc in cfg.interfaces.iter().filter(|i| wants_nl80211(i)) {
                tracing::info!(link = %ifc.name, "quality from the nl80211 signal of the access point");
            }
            (
                Some(Radio {
                    nl,
                    failing: HashSet::new(),
                }),
                wants,
            )
        }
        Probe::NotAvailable(why) => {
            for ifc in cfg.interfaces.iter().filter(|i| wants_nl80211(i)) {
                let fallback = fallback(ifc, cfg.control_socket.is_some());
                tracing::warn!(
                    link = %ifc.name,
                    reason = %why,
                    "quality_source nl80211: nl80211 is not available on this kernel; the link falls back to {fallback}"
                );
            }
            (None, vec![false; wants.len()])
        }
    }
}

fn wants_nl80211(ifc: &InterfaceConfig) -> bool {
    ifc.quality_source == Some(QualitySource::Nl80211)
}

/// Where an nl80211 link's readings come from when the kernel has no nl80211, for the log.
/// The shell needs no switch for it: a link that does not read nl80211 reads its quality file
/// (if any) at each poll, and the control socket sets any link.
fn fallback(ifc: &InterfaceConfig, control_socket: bool) -> String {
    match (&ifc.quality_file, control_socket) {
        (Some(f), _) => format!("its quality_file {}", f.display()),
        (None, true) => "the control socket".to_owned(),
        (None, false) => "no reading (scored as a link without a quality source)".to_owned(),
    }
}

impl Radio {
    /// The link's quality now: its access point's signal on the 0-100 scale; None when not
    /// associated, without a signal, or when the query fails (warned once until it works
    /// again).
    pub async fn quality(&mut self, ifindex: u32, name: &str) -> Option<u8> {
        match self.nl.station_signal(ifindex).await {
            Ok(dbm) => {
                if self.failing.remove(&ifindex) {
                    tracing::info!(link = %name, "nl80211 station readings work again");
                }
                dbm.map(quality_from_dbm)
            }
            Err(e) => {
                if self.failing.insert(ifindex) {
                    tracing::warn!(link = %name, error = %e, "nl80211 station query failed; the link has no quality reading until it works");
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(file: Option<&str>) -> InterfaceConfig {
        InterfaceConfig {
            name: "wlan0".to_owned(),
            preference: 50,
            cost: 0,
            quality_file: file.map(Into::into),
            quality_source: Some(QualitySource::Nl80211),
        }
    }

    #[test]
    fn fallback_is_file_then_control_socket_then_nothing() {
        assert_eq!(
            fallback(&link(Some("/run/q")), true),
            "its quality_file /run/q"
        );
        assert_eq!(fallback(&link(None), true), "the control socket");
        assert!(fallback(&link(None), false).starts_with("no reading"));
    }
}
