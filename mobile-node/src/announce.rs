//! Unsolicited Neighbor Advertisements for the addresses the node puts on its links
//! (RFC 4861 §7.2.6).
//!
//! The node adds its on-link (care-of) addresses without Duplicate Address Detection, the
//! moment a Router Advertisement gives it the prefix, so the kernel announces nothing. When
//! its link has just come back, the access router may already be resolving the address (a
//! packet for it arrived first) and its Neighbor Solicitation, sent before the address was
//! ours, went unanswered: the router retries only after its RetransTimer (1 s), and the
//! packets it queues meanwhile (the home agent's Binding Acknowledgement first among them, in
//! plain Mobile IPv6) overflow its small queue and are dropped (issue 11 item 6: ~670 ms gap
//! and a BU retransmission on about one return in three). An unsolicited advertisement with
//! the override flag completes such an entry at once; a router with no entry ignores it.
//! The same holds for the home address put on the home link (RFC 6275 §11.5.4 asks for this
//! advertisement when returning home).
use std::collections::BTreeMap;

use mipcast_kernel::sockets::{IcmpSocket, PacketInfo, ALL_NODES};
use mipcast_wire::nd::NeighborAdvert;

use crate::core::kernel::Address;

/// Sends one unsolicited advertisement for `a` out of its interface; false when there is
/// nothing to announce (no link-layer address: the loopback's home address) or the send
/// failed (logged: a router that asks will still get the kernel's answer).
pub(crate) async fn unsolicited_na(
    icmp: &IcmpSocket,
    macs: &BTreeMap<u32, [u8; 6]>,
    a: &Address,
) -> bool {
    let Some(mac) = macs.get(&a.ifindex) else {
        return false;
    };
    let na = NeighborAdvert {
        // A host's advertisement; the kernel's own answers say what its forwarding setting
        // says, and the flag matters only for routers' default router lists.
        router: false,
        solicited: false,
        override_flag: true,
        target: a.addr,
        target_lladdr: Some(*mac),
    };
    let mut buf = vec![0u8; na.buffer_len()];
    let n = match na.emit(&mut buf) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "building a neighbor advertisement");
            return false;
        }
    };
    buf.truncate(n);
    // From the address itself: the advertisement's source must be the interface's.
    let info = PacketInfo::on(a.ifindex).with_source(a.addr);
    match icmp.send_to(&buf, ALL_NODES, info).await {
        Ok(()) => {
            tracing::debug!(addr = %a.addr, ifindex = a.ifindex, "unsolicited neighbor advertisement sent");
            true
        }
        Err(e) => {
            tracing::debug!(addr = %a.addr, ifindex = a.ifindex, error = %e, "unsolicited neighbor advertisement not sent");
            false
        }
    }
}
