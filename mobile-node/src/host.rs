//! Host configuration the kernel crate does not cover: addresses (tagged with our protocol
//! number through IFA_PROTO, so a restart finds and removes exactly ours) and the default
//! route for native traffic, over rtnetlink; interface facts from sysfs.
use std::net::{IpAddr, Ipv6Addr};

use futures::TryStreamExt;
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressMessage, AddressProtocol,
};
use netlink_packet_route::route::RouteProtocol;
use netlink_packet_route::AddressFamily;
use rtnetlink::{Handle, RouteMessageBuilder};

use crate::core::kernel::{Address, DefaultRoute};

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("opening an rtnetlink socket: {0}")]
    Socket(std::io::Error),
    #[error("{op}: {source}")]
    Netlink {
        op: String,
        source: rtnetlink::Error,
    },
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

/// rtnetlink handle of the calling thread's namespace.
#[derive(Clone)]
pub struct Host {
    handle: Handle,
    protocol: u8,
}

fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => Some(-m.raw_code()),
        _ => None,
    }
}

impl Host {
    /// Connects and spawns the connection task on the current tokio runtime.
    pub fn connect(protocol: u8) -> Result<Host, HostError> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(HostError::Socket)?;
        tokio::spawn(conn);
        Ok(Host { handle, protocol })
    }

    /// Adds the address (no DAD: the node owns these addresses by construction), tagged ours;
    /// an existing identical address is success.
    pub async fn add_address(&self, a: &Address) -> Result<(), HostError> {
        let mut req = self
            .handle
            .address()
            .add(a.ifindex, IpAddr::V6(a.addr), a.prefix_len)
            .replace();
        let m = req.message_mut();
        m.attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
        m.attributes
            .push(AddressAttribute::Protocol(AddressProtocol::Other(
                self.protocol,
            )));
        req.execute().await.map_err(|source| HostError::Netlink {
            op: format!(
                "adding {}/{} on ifindex {}",
                a.addr, a.prefix_len, a.ifindex
            ),
            source,
        })
    }

    /// Deletes the address; an absent one is success.
    pub async fn remove_address(&self, a: &Address) -> Result<(), HostError> {
        let mut m = AddressMessage::default();
        m.header.family = AddressFamily::Inet6;
        m.header.index = a.ifindex;
        m.header.prefix_len = a.prefix_len;
        m.attributes
            .push(AddressAttribute::Address(IpAddr::V6(a.addr)));
        match self.handle.address().del(m).execute().await {
            Err(e)
                if matches!(
                    errno(&e),
                    Some(libc::EADDRNOTAVAIL | libc::ENODEV | libc::ENOENT)
                ) =>
            {
                Ok(())
            }
            other => other.map_err(|source| HostError::Netlink {
                op: format!(
                    "removing {}/{} from ifindex {}",
                    a.addr, a.prefix_len, a.ifindex
                ),
                source,
            }),
        }
    }

    /// Every IPv6 address carrying our tag.
    pub async fn our_addresses(&self) -> Result<Vec<Address>, HostError> {
        let mut out = Vec::new();
        let mut stream = self.handle.address().get().execute();
        let err = |source| HostError::Netlink {
            op: "listing addresses".to_owned(),
            source,
        };
        while let Some(m) = stream.try_next().await.map_err(err)? {
            if m.header.family != AddressFamily::Inet6 {
                continue;
            }
            let ours = m.attributes.iter().any(
                |a| matches!(a, AddressAttribute::Protocol(p) if u8::from(*p) == self.protocol),
            );
            let addr = m.attributes.iter().find_map(|a| match a {
                AddressAttribute::Address(IpAddr::V6(v)) => Some(*v),
                _ => None,
            });
            if let (true, Some(addr)) = (ours, addr) {
                out.push(Address {
                    ifindex: m.header.index,
                    addr,
                    prefix_len: m.header.prefix_len,
                });
            }
        }
        Ok(out)
    }

    fn default_route(&self, r: &DefaultRoute) -> netlink_packet_route::route::RouteMessage {
        RouteMessageBuilder::<Ipv6Addr>::new()
            .destination_prefix(Ipv6Addr::UNSPECIFIED, 0)
            .gateway(r.gateway)
            .output_interface(r.ifindex)
            .protocol(RouteProtocol::Other(self.protocol))
            .build()
    }

    /// Installs (or replaces) the main table's default route. Tagged ours, so the kernel
    /// crate's shutdown sweep removes it with our other routes.
    pub async fn set_default_route(&self, r: &DefaultRoute) -> Result<(), HostError> {
        self.handle
            .route()
            .add(self.default_route(r))
            .replace()
            .execute()
            .await
            .map_err(|source| HostError::Netlink {
                op: format!(
                    "setting the default route via {} dev {}",
                    r.gateway, r.ifindex
                ),
                source,
            })
    }

    pub async fn remove_default_route(&self, r: &DefaultRoute) -> Result<(), HostError> {
        match self
            .handle
            .route()
            .del(self.default_route(r))
            .execute()
            .await
        {
            Err(e) if matches!(errno(&e), Some(libc::ESRCH | libc::ENOENT | libc::ENODEV)) => {
                Ok(())
            }
            other => other.map_err(|source| HostError::Netlink {
                op: format!("removing the default route via {}", r.gateway),
                source,
            }),
        }
    }
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

/// Whether the interface can carry traffic: operstate up (or unknown, for links without
/// carrier reporting) and administratively up.
pub fn link_up(name: &str) -> bool {
    let oper =
        std::fs::read_to_string(format!("/sys/class/net/{name}/operstate")).unwrap_or_default();
    let flags = std::fs::read_to_string(format!("/sys/class/net/{name}/flags")).unwrap_or_default();
    let admin_up =
        u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).is_ok_and(|f| f & 1 != 0);
    admin_up && matches!(oper.trim(), "up" | "unknown")
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
