//! Which kernel features mipcast relies on are present, found by trying them.
//!
//! Kernel configs are not reliably readable (/proc/config.gz is optional, modules load on
//! demand), so every feature is tested by doing the real thing once in a throwaway corner —
//! a route in an otherwise unused table, a rule pointing at it, a socket option — and undoing
//! it. Afterwards nothing is left (the empty probe table is invisible; the kernel never frees
//! an IPv6 table until its namespace goes). A daemon calls [`Capabilities::require`] at start
//! and fails with a sentence naming the kernel option instead of an errno later.
use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv6Addr;
use std::os::fd::AsRawFd;

use ipnetwork::Ipv6Network;
use netlink_packet_route::link::{
    InfoData, InfoIpTunnel, InfoKind, LinkAttribute, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::route::{KObject, Kernel, RouteError, RTPROT_MIPCAST};

/// A table and rule preference nothing else uses; the probe's objects live there for
/// microseconds and no rule ever sends traffic into the table.
const PROBE_TABLE: u32 = 0x7fff_fff0;
const PROBE_PREF: u32 = 0x7fff_fff0;
/// Documentation addresses (RFC 3849) for the probe's destinations.
const PROBE_DST: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0xffff, 0, 0, 0, 1);
const PROBE_PEER: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0xffff, 0, 0, 0, 2);
const PROBE_LINK: &str = "mcprobe6tnl";
const MRT6_VERSION: libc::c_int = 206;
const MRT6_TABLE: libc::c_int = 209;
/// The IPv6 multicast routing table every namespace has (RT6_TABLE_DFLT = main): selecting it
/// with MRT6_TABLE creates nothing.
const MRT6_DEFAULT_TABLE: u32 = 254;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Feature {
    /// `encap seg6 mode encap.red` routes (our IPv6-in-IPv6 encapsulation).
    Seg6Encap,
    /// `encap seg6local action End.DT6` routes (our decapsulation).
    Seg6Local,
    /// Source-specific routes (`from` prefix).
    SourceRoutes,
    /// Policy rules with an `ipproto` selector.
    IpprotoRules,
    /// The IPv6 multicast routing socket (MRT6).
    Mrt6,
    /// Several IPv6 multicast routing tables (MRT6_TABLE).
    Mrt6Tables,
    /// The ip6tnl tunnel device.
    Ip6Tnl,
}

impl Feature {
    pub const ALL: [Feature; 7] = [
        Feature::Seg6Encap,
        Feature::Seg6Local,
        Feature::SourceRoutes,
        Feature::IpprotoRules,
        Feature::Mrt6,
        Feature::Mrt6Tables,
        Feature::Ip6Tnl,
    ];

    /// The kernel option(s) that provide the feature.
    pub fn config(self) -> &'static str {
        match self {
            Feature::Seg6Encap | Feature::Seg6Local => "CONFIG_IPV6_SEG6_LWTUNNEL",
            Feature::SourceRoutes => "CONFIG_IPV6_SUBTREES",
            Feature::IpprotoRules => "CONFIG_IPV6_MULTIPLE_TABLES (and Linux 4.17 or later)",
            Feature::Mrt6 => "CONFIG_IPV6_MROUTE",
            Feature::Mrt6Tables => "CONFIG_IPV6_MROUTE_MULTIPLE_TABLES",
            Feature::Ip6Tnl => "CONFIG_IPV6_TUNNEL",
        }
    }
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Feature::Seg6Encap => "seg6 encapsulation routes (encap seg6 mode encap.red)",
            Feature::Seg6Local => "seg6local End.DT6 decapsulation routes",
            Feature::SourceRoutes => "source-specific IPv6 routes",
            Feature::IpprotoRules => "IPv6 policy rules with an ipproto selector",
            Feature::Mrt6 => "IPv6 multicast routing (MRT6 socket)",
            Feature::Mrt6Tables => "multiple IPv6 multicast routing tables",
            Feature::Ip6Tnl => "ip6tnl tunnel devices",
        })
    }
}

/// What [`probe`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    pub seg6: bool,
    pub seg6local: bool,
    pub source_routes: bool,
    pub ipproto_rules: bool,
    pub mrt6: bool,
    pub mrt6_tables: bool,
    pub ip6tnl: bool,
    /// For each absent feature, what the kernel answered when we tried it.
    pub answers: BTreeMap<Feature, String>,
}

impl Capabilities {
    pub fn has(&self, feature: Feature) -> bool {
        match feature {
            Feature::Seg6Encap => self.seg6,
            Feature::Seg6Local => self.seg6local,
            Feature::SourceRoutes => self.source_routes,
            Feature::IpprotoRules => self.ipproto_rules,
            Feature::Mrt6 => self.mrt6,
            Feature::Mrt6Tables => self.mrt6_tables,
            Feature::Ip6Tnl => self.ip6tnl,
        }
    }

    /// Ok when every feature is present; otherwise one sentence per missing feature, e.g.
    /// "this kernel lacks ip6tnl tunnel devices: build it with CONFIG_IPV6_TUNNEL (trying
    /// gave: Operation not supported)".
    pub fn require(&self, features: &[Feature]) -> Result<(), String> {
        let missing: Vec<String> = features
            .iter()
            .filter(|f| !self.has(**f))
            .map(|f| {
                let answer = self
                    .answers
                    .get(f)
                    .map(|a| format!(" (trying gave: {a})"))
                    .unwrap_or_default();
                format!(
                    "this kernel lacks {f}: build it with {}{answer}",
                    f.config()
                )
            })
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(missing.join("; "))
        }
    }

    fn set(&mut self, feature: Feature, outcome: Result<(), String>) {
        let present = outcome.is_ok();
        match feature {
            Feature::Seg6Encap => self.seg6 = present,
            Feature::Seg6Local => self.seg6local = present,
            Feature::SourceRoutes => self.source_routes = present,
            Feature::IpprotoRules => self.ipproto_rules = present,
            Feature::Mrt6 => self.mrt6 = present,
            Feature::Mrt6Tables => self.mrt6_tables = present,
            Feature::Ip6Tnl => self.ip6tnl = present,
        }
        if let Err(answer) = outcome {
            self.answers.insert(feature, answer);
        }
    }
}

/// Probes the calling thread's network namespace (needs CAP_NET_ADMIN and CAP_NET_RAW, like
/// the daemons; without them features read as absent with "Operation not permitted").
pub async fn probe() -> Result<Capabilities, RouteError> {
    let kernel = Kernel::connect(RTPROT_MIPCAST).await?;
    let lo = kernel.ifindex("lo").await?;
    let mut caps = Capabilities::default();

    let encap = KObject::EncapRoute {
        dst: Ipv6Network::from(PROBE_DST),
        src: None,
        tunnel_dst: PROBE_PEER,
        oif: lo,
        table: PROBE_TABLE,
    };
    caps.set(Feature::Seg6Encap, try_object(&kernel, encap).await);
    let decap = KObject::DecapRoute {
        local: PROBE_DST,
        oif: lo,
        table: PROBE_TABLE,
        inner_table: PROBE_TABLE,
    };
    caps.set(Feature::Seg6Local, try_object(&kernel, decap).await);
    let rule = KObject::Rule {
        pref: PROBE_PREF,
        from: None,
        to: Some(Ipv6Network::from(PROBE_DST)),
        ipproto: Some(41),
        table: PROBE_TABLE,
    };
    caps.set(Feature::IpprotoRules, try_object(&kernel, rule).await);
    caps.set(Feature::SourceRoutes, try_source_route(&kernel).await);
    caps.set(Feature::Mrt6, mrt6_sockopt(false));
    caps.set(Feature::Mrt6Tables, mrt6_sockopt(true));
    caps.set(Feature::Ip6Tnl, try_ip6tnl(&kernel).await);
    Ok(caps)
}

async fn try_object(kernel: &Kernel, obj: KObject) -> Result<(), String> {
    // A probe that crashed half-way may have left it; ours by tag, so safe to clear.
    let _ = kernel.delete(&obj).await;
    kernel.add(&obj).await.map_err(|e| answer(&e))?;
    if let Err(e) = kernel.delete(&obj).await {
        tracing::warn!("probe could not remove its {obj}: {e}");
    }
    Ok(())
}

/// An unreachable route with a source prefix: no encapsulation, so only IPV6_SUBTREES matters.
async fn try_source_route(kernel: &Kernel) -> Result<(), String> {
    let mut m = RouteMessage::default();
    m.header.address_family = AddressFamily::Inet6;
    m.header.protocol = RouteProtocol::from(RTPROT_MIPCAST);
    m.header.kind = RouteType::Unreachable;
    m.header.destination_prefix_length = 128;
    m.header.source_prefix_length = 128;
    m.attributes
        .push(RouteAttribute::Destination(RouteAddress::Inet6(PROBE_DST)));
    m.attributes
        .push(RouteAttribute::Source(RouteAddress::Inet6(PROBE_PEER)));
    m.attributes.push(RouteAttribute::Table(PROBE_TABLE));
    let what = "probing source-specific routes";
    let _ = kernel
        .request_raw(RouteNetlinkMessage::DelRoute(m.clone()), false, what)
        .await;
    kernel
        .request_raw(RouteNetlinkMessage::NewRoute(m.clone()), true, what)
        .await
        .map_err(|e| answer(&e))?;
    if let Err(e) = kernel
        .request_raw(RouteNetlinkMessage::DelRoute(m), false, what)
        .await
    {
        tracing::warn!("probe could not remove its source-specific route: {e}");
    }
    Ok(())
}

/// MRT6_VERSION is answered by any kernel with IPv6 multicast routing, without MRT6_INIT (so
/// without touching a running multicast router); selecting the default table with MRT6_TABLE
/// only works with multiple tables and creates nothing.
fn mrt6_sockopt(tables: bool) -> Result<(), String> {
    let socket = socket2::Socket::new(
        socket2::Domain::IPV6,
        socket2::Type::RAW,
        Some(socket2::Protocol::ICMPV6),
    )
    .map_err(|e| errno_text(e.raw_os_error()))?;
    let fd = socket.as_raw_fd();
    let rc = if tables {
        let table: u32 = MRT6_DEFAULT_TABLE;
        // SAFETY: setsockopt reads exactly size_of::<u32>() bytes from a live local.
        unsafe {
            libc::setsockopt(
                fd,
                libc::IPPROTO_IPV6,
                MRT6_TABLE,
                (&table as *const u32).cast(),
                std::mem::size_of::<u32>() as libc::socklen_t,
            )
        }
    } else {
        let mut version: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into a live local of that size.
        unsafe {
            libc::getsockopt(
                fd,
                libc::IPPROTO_IPV6,
                MRT6_VERSION,
                (&mut version as *mut libc::c_int).cast(),
                &mut len,
            )
        }
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(errno_text(std::io::Error::last_os_error().raw_os_error()))
    }
}

/// The fallback device `ip6tnl0` exists in every namespace once the driver is loaded;
/// otherwise creating a tunnel (which loads a modular driver) is the only real test.
async fn try_ip6tnl(kernel: &Kernel) -> Result<(), String> {
    if kernel.ifindex("ip6tnl0").await.is_ok() {
        return Ok(());
    }
    let mut m = LinkMessage::default();
    m.attributes
        .push(LinkAttribute::IfName(PROBE_LINK.to_owned()));
    m.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Ip6Tnl),
        LinkInfo::Data(InfoData::IpTunnel(vec![InfoIpTunnel::Remote(
            PROBE_PEER.into(),
        )])),
    ]));
    kernel
        .request_raw(RouteNetlinkMessage::NewLink(m), true, "probing ip6tnl")
        .await
        .map_err(|e| answer(&e))?;
    match kernel.ifindex(PROBE_LINK).await {
        Ok(index) => {
            let mut del = LinkMessage::default();
            del.header.index = index;
            if let Err(e) = kernel
                .request_raw(
                    RouteNetlinkMessage::DelLink(del),
                    false,
                    "removing the ip6tnl probe",
                )
                .await
            {
                tracing::warn!("{e}");
            }
        }
        Err(e) => tracing::warn!("probe lost its ip6tnl device: {e}"),
    }
    Ok(())
}

fn answer(e: &RouteError) -> String {
    match e {
        RouteError::Object { text, .. } | RouteError::Request { text, .. } => text.clone(),
        other => other.to_string(),
    }
}

fn errno_text(errno: Option<i32>) -> String {
    errno.map_or_else(
        || "unknown error".to_owned(),
        |e| nix::errno::Errno::from_raw(e).desc().to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn require_names_the_missing_option() {
        let mut caps = Capabilities {
            seg6: true,
            ..Default::default()
        };
        caps.set(Feature::Ip6Tnl, Err("Operation not supported".into()));
        assert_eq!(caps.require(&[Feature::Seg6Encap]), Ok(()));
        let err = caps
            .require(&[Feature::Seg6Encap, Feature::Ip6Tnl])
            .unwrap_err();
        assert_eq!(
            err,
            "this kernel lacks ip6tnl tunnel devices: build it with CONFIG_IPV6_TUNNEL \
             (trying gave: Operation not supported)"
        );
    }
}
