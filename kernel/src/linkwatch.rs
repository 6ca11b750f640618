//! Interface and address change notifications: the kernel's rtnetlink multicast groups
//! `RTNLGRP_LINK` (RTM_NEWLINK / RTM_DELLINK) and `RTNLGRP_IPV6_IFADDR` (RTM_NEWADDR /
//! RTM_DELADDR), so that a daemon learns of a carrier loss or a new address within the
//! kernel's notification latency (well under a millisecond) instead of at its next poll.
//!
//! A notification socket can overflow (ENOBUFS) when the kernel sends more than its receive
//! buffer holds: events are then lost. Callers keep a slow poll as a safety net.
//!
//! Carrier changes are not always prompt: the kernel's linkwatch work that sends them runs at
//! once only for "urgent" devices (for a veth, one whose ifindex differs from its peer's) and
//! otherwise at most once a second, so a carrier loss within a second of the previous link
//! event is announced up to a second late (measured here: 180-260 ms). A daemon that must
//! see a carrier loss within milliseconds reads the carrier bit as well (the mobile node's
//! `CarrierWatch`), which the kernel updates synchronously.
use futures::channel::mpsc::UnboundedReceiver;
use futures::StreamExt;
use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_route::link::{LinkFlags, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;
use rtnetlink::sys::SocketAddr;
use rtnetlink::MulticastGroup;

/// One notification, reduced to what the daemons act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkEvent {
    /// RTM_NEWLINK / RTM_DELLINK: the interface's state now. `up` is administratively up
    /// with carrier (IFF_UP and IFF_LOWER_UP); a deleted link is down.
    Link { ifindex: u32, up: bool },
    /// RTM_NEWADDR / RTM_DELADDR for an IPv6 address (added, removed, or its flags changed,
    /// e.g. no longer tentative after DAD).
    Address { ifindex: u32 },
}

/// The subscription. Dropping it closes the socket.
pub struct LinkWatch {
    messages: UnboundedReceiver<(NetlinkMessage<RouteNetlinkMessage>, SocketAddr)>,
    /// The connection task ends with the socket; keep it cancellable with the watch.
    task: tokio::task::JoinHandle<()>,
}

impl Drop for LinkWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl LinkWatch {
    /// Subscribes in the calling thread's network namespace; spawns the connection task on
    /// the current tokio runtime.
    pub fn open() -> std::io::Result<LinkWatch> {
        let (conn, _handle, messages) = rtnetlink::new_multicast_connection(&[
            MulticastGroup::Link,
            MulticastGroup::Ipv6Ifaddr,
        ])?;
        let task = tokio::spawn(conn);
        Ok(LinkWatch { messages, task })
    }

    /// The next event; None once the connection ended (the caller falls back to polling).
    pub async fn next(&mut self) -> Option<LinkEvent> {
        loop {
            let (msg, _) = self.messages.next().await?;
            if let Some(ev) = event_of(&msg) {
                return Some(ev);
            }
        }
    }
}

fn event_of(msg: &NetlinkMessage<RouteNetlinkMessage>) -> Option<LinkEvent> {
    let NetlinkPayload::InnerMessage(inner) = &msg.payload else {
        return None;
    };
    match inner {
        RouteNetlinkMessage::NewLink(l) => Some(LinkEvent::Link {
            ifindex: l.header.index,
            up: link_up(l),
        }),
        RouteNetlinkMessage::DelLink(l) => Some(LinkEvent::Link {
            ifindex: l.header.index,
            up: false,
        }),
        RouteNetlinkMessage::NewAddress(a) | RouteNetlinkMessage::DelAddress(a) => {
            Some(LinkEvent::Address {
                ifindex: a.header.index,
            })
        }
        _ => None,
    }
}

/// Administratively up with carrier. The carrier flag, not the operational state: the
/// kernel derives the latter in deferred work (see the module notes), the flag is current
/// when the message is built.
pub fn link_up(l: &LinkMessage) -> bool {
    l.header.flags.contains(LinkFlags::Up | LinkFlags::LowerUp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_route::link::{LinkAttribute, State};

    fn link(flags: LinkFlags, oper: State) -> NetlinkMessage<RouteNetlinkMessage> {
        // The operational state is ignored (it lags); it is set to show that.
        let mut l = LinkMessage::default();
        l.header.index = 7;
        l.header.flags = flags;
        l.attributes.push(LinkAttribute::OperState(oper));
        NetlinkMessage::from(RouteNetlinkMessage::NewLink(l))
    }

    #[test]
    fn carrier_loss_and_admin_down_are_down() {
        let up = LinkFlags::Up | LinkFlags::Running | LinkFlags::LowerUp;
        assert_eq!(
            event_of(&link(up, State::LowerLayerDown)),
            Some(LinkEvent::Link {
                ifindex: 7,
                up: true
            })
        );
        // The peer of a veth went down: admin up, no carrier.
        assert_eq!(
            event_of(&link(LinkFlags::Up, State::LowerLayerDown)),
            Some(LinkEvent::Link {
                ifindex: 7,
                up: false
            })
        );
        assert_eq!(
            event_of(&link(LinkFlags::empty(), State::Down)),
            Some(LinkEvent::Link {
                ifindex: 7,
                up: false
            })
        );
        assert_eq!(
            event_of(&link(LinkFlags::LowerUp, State::Up)),
            Some(LinkEvent::Link {
                ifindex: 7,
                up: false
            })
        );
    }
}
