//! Linux kernel layer for mipcast: everything the daemons install in, or read from, the kernel.
//!
//! - [`route`]: rtnetlink routes, rules and proxy-ND entries (seg6 encap, seg6local End.DT6
//!   decap, source-specific routes), the seg6 tunnel source, tagging with our routing-protocol
//!   number, list/reconcile/remove-ours, batched installs. Also the two plain host objects a
//!   mobile node needs, handled the same way: `KObject::Address` (an IPv6 address, no DAD,
//!   tagged through IFA_PROTO so a restart finds it) and `KObject::GatewayRoute` (a route via
//!   a router, e.g. the default route for native traffic).
//! - [`sockets`]: raw Mobility Header, ICMPv6 and PIM sockets, source-specific MLD joins.
//! - [`linkwatch`]: interface and address change notifications (rtnetlink multicast groups).
//! - [`mrt6`]: the IPv6 multicast routing table (MIFs, MFC entries, upcalls, counters).
//! - [`mrule`]: the multicast routing rule that selects a non-default MRT6 table.
//! - [`nft`]: the nftables rule that marks multicast-tunnelled packets as host-addressed.
//! - [`packet`]: the home link's packet socket that sees Neighbor Solicitations for any
//!   address (the home agent's user-space neighbour proxy).
//! - [`probe`]: which of the kernel features we rely on are present, in sentences.
//! - [`nl80211`]: a Wi-Fi link's signal strength as a 0-100 quality, where the kernel has a
//!   wireless stack (probed).
pub mod linkwatch;
pub mod mrt6;
pub mod mrule;
pub mod nft;
pub mod nl80211;
pub mod packet;
pub mod probe;
pub mod route;
pub mod sockets;
