use std::net::Ipv6Addr;
use std::os::fd::AsFd;

use socket2::{Domain, Socket, Type};

use super::error::{Result, SocketError};
use super::sys;

/// Source-specific multicast memberships held by one UDP socket. While the socket holds
/// (S,G) on an interface, the kernel's MLDv2 host side reports INCLUDE {S} for G there (and
/// answers queries); dropping the socket leaves every group it joined.
///
/// The kernel caps sources per group and socket (`net.ipv6.mld_max_msf`, 64 by default) and
/// charges memberships to `net.core.optmem_max`.
pub struct SsmMembership {
    socket: Socket,
}

impl SsmMembership {
    pub fn new() -> Result<SsmMembership> {
        let socket = Socket::new(Domain::IPV6, Type::DGRAM, None)
            .map_err(|e| SocketError::os("socket(AF_INET6, SOCK_DGRAM) for MLD memberships", e))?;
        Ok(SsmMembership { socket })
    }

    /// Joins (source, group) on `ifindex` (MCAST_JOIN_SOURCE_GROUP).
    pub fn join(&self, ifindex: u32, group: Ipv6Addr, source: Ipv6Addr) -> Result<()> {
        let req = group_source_req(ifindex, group, source);
        sys::set_opt(
            self.socket.as_fd(),
            libc::IPPROTO_IPV6,
            libc::MCAST_JOIN_SOURCE_GROUP,
            &req,
            &format!("MCAST_JOIN_SOURCE_GROUP ({source}, {group}) on ifindex {ifindex}"),
        )
    }

    /// Leaves (source, group) on `ifindex` (MCAST_LEAVE_SOURCE_GROUP).
    pub fn leave(&self, ifindex: u32, group: Ipv6Addr, source: Ipv6Addr) -> Result<()> {
        let req = group_source_req(ifindex, group, source);
        sys::set_opt(
            self.socket.as_fd(),
            libc::IPPROTO_IPV6,
            libc::MCAST_LEAVE_SOURCE_GROUP,
            &req,
            &format!("MCAST_LEAVE_SOURCE_GROUP ({source}, {group}) on ifindex {ifindex}"),
        )
    }
}

fn group_source_req(ifindex: u32, group: Ipv6Addr, source: Ipv6Addr) -> libc::group_source_req {
    libc::group_source_req {
        gsr_interface: ifindex,
        gsr_group: sys::sockaddr_storage_v6(group),
        gsr_source: sys::sockaddr_storage_v6(source),
    }
}
