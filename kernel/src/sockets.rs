//! Raw sockets the daemons speak their protocols on, and source-specific MLD memberships.
//!
//! - [`MhSocket`]: Mobility Header (IPPROTO_MH). This kernel has no CONFIG_IPV6_MIP6, so it
//!   does not know the protocol at all; we make it compute and verify the MH checksum
//!   (`IPV6_CHECKSUM` at offset 4) like any raw protocol.
//! - [`IcmpSocket`]: ICMPv6 (ND and MLD) with a pass-only type filter, the received hop limit
//!   (ND requires 255) and an optional Router Alert hop-by-hop option (MLD).
//! - [`PimSocket`]: PIMv2 (IPPROTO_PIM) on ff02::d, checksum at offset 2.
//! - [`SsmMembership`]: (S,G) joins; the kernel then sends the MLDv2 reports itself.
//!
//! All sockets are non-blocking, close-on-exec and driven by tokio's `AsyncFd`, so they must
//! be created inside a tokio runtime (and inside the network namespace they belong to).
//! Received packets are attributed by the `IPV6_PKTINFO` interface index, never by the scope
//! id of the sender's address.
mod error;
mod icmp;
mod mh;
mod nflog;
mod pim;
mod raw;
mod ssm;
pub(crate) mod sys;

pub use error::{Result, SocketError};
pub use icmp::{IcmpSocket, ALL_MLDV2_ROUTERS, ALL_NODES, ALL_ROUTERS};
pub use mh::MhSocket;
pub use nflog::NflogSocket;
pub use pim::{PimSocket, ALL_PIM_ROUTERS};
pub use raw::{PacketInfo, Received};
pub use ssm::SsmMembership;
