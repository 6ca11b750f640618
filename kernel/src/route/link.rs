//! An interface's administrative state (`ip link set dev X up|down`), for a mobile node that
//! brings a prepared candidate link up before it may need it (issue 14).
use netlink_packet_core::{NLM_F_ACK, NLM_F_REQUEST};
use netlink_packet_route::link::{LinkFlags, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;

use super::{Kernel, RouteError};

impl Kernel {
    /// Whether the interface `ifindex` is administratively up (IFF_UP).
    pub async fn link_admin_up(&self, ifindex: u32) -> Result<bool, RouteError> {
        let mut m = LinkMessage::default();
        m.header.index = ifindex;
        let replies = self
            .nl
            .query(RouteNetlinkMessage::GetLink(m), false)
            .await
            .map_err(|e| e.request(format!("looking up interface {ifindex}")))?;
        replies
            .into_iter()
            .find_map(|r| match r {
                RouteNetlinkMessage::NewLink(l) => Some(l.header.flags.contains(LinkFlags::Up)),
                _ => None,
            })
            .ok_or_else(|| RouteError::NoSuchInterface(ifindex.to_string()))
    }

    /// Sets the interface administratively up or down. Returns false, changing nothing, when
    /// it already was: the caller can tell an interface it raised from one it found up.
    pub async fn set_link_admin(&self, ifindex: u32, up: bool) -> Result<bool, RouteError> {
        if self.link_admin_up(ifindex).await? == up {
            return Ok(false);
        }
        let mut m = LinkMessage::default();
        m.header.index = ifindex;
        m.header.change_mask = LinkFlags::Up;
        if up {
            m.header.flags = LinkFlags::Up;
        }
        self.nl
            .ack(RouteNetlinkMessage::SetLink(m), NLM_F_REQUEST | NLM_F_ACK)
            .await
            .map_err(|e| {
                e.request(format!(
                    "setting interface {ifindex} {}",
                    if up { "up" } else { "down" }
                ))
            })?;
        Ok(true)
    }
}
