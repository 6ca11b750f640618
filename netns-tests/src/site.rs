//! The whole mipcast system in network namespaces, with the real daemon binaries: a
//! correspondent, a home agent, two sites (MMA + pim-lite routers) and a mobile node with one
//! interface on each of the three access links.
//!
//! ```text
//!                         hl (home link host, 2001:db8:99::2)
//!                          | home0   home link 2001:db8:99::/64: HA 2001:db8:99::1, HoA ::100
//!  cn --wan0----wan0-- ha (home-agent)
//!  2001:db8:f0::2  ::1  | m1                                   | m2
//!                       | 2001:db8:f1::/64                     | 2001:db8:f2::/64
//!                  wan0 |                                 wan0 |
//!                 mma1 (mma, 2001:db8:1::1 on site0)      mma2 (mma, 2001:db8:2::1 on site0)
//!                 site0 | 2001:db8:1::/64                site0 | 2001:db8:2::/64
//!                   up0 |                                  up0 |
//!                 c1 (pim-lite core)                      a3 (pim-lite core + access)
//!             d1 /          \ d2  2001:db8:1:11::/64,        | acc0 2001:db8:2:3::/64
//!           up0 /            \ up0          2001:db8:1:12::/64|
//!   a1 (pim-lite access)   a2 (pim-lite access)               |
//!     | acc0 2001:db8:1:1::/64  | acc0 2001:db8:1:2::/64      |
//!     e1 ------------------- mn (mobile-node) e2 ------------ e3
//! ```
//! mma1 and mma2 also have a direct link (peer0, 2001:db8:f3::1 / ::2; each routes the other
//! site's /48 over it). The WAN links (cn--ha, ha--mma1/mma2, mma1--mma2) get a one-way delay
//! from [`SiteOptions::wan_delay_ms`] (a [`crate::delay`] element; none by default). With
//! [`SiteOptions::home_link`] the home link is a bridge (br0) in `home`, which also runs a
//! pim-lite access router advertising the home prefix, and the terminal has a fourth
//! interface, e4, on it: there it is at home.
//!
//! With [`SiteOptions::home_site_mma`] as well, the home site has another subnet (002 FIG 8):
//! an MMA of the home site (mma0, wan0 on the home link at 2001:db8:99::3, its address
//! 2001:db8:99:f0::1 on its site link) and behind it a0 (pim-lite core + access) advertising
//! 2001:db8:99:f5::/64 with mma0 as MAP; the terminal's fifth interface, e5, is on that link.
//! The home agent routes 2001:db8:99:f0::/60 through mma0.
//!
//! With [`SiteOptions::wan_router`] the home agent is off the correspondent–site path (issue
//! 12's benchmark): a `wan` router namespace ([`Site::wan_router`]) joins the correspondent,
//! the home agent and both sites, and the home agent has one WAN link, to that router:
//!
//! ```text
//!  cn --wan0----cn0-- wan --ha0----wan0-- ha (home-agent) --home0-- home
//!  2001:db8:f0::2  ::1  | |  2001:db8:f4::1  ::2
//!                    m1 | | m2     (2001:db8:f1::1, 2001:db8:f2::1, as the HA has them by default)
//!               mma1 wan0 mma2 wan0
//! ```
//! Traffic through the home agent crosses the router–HA link twice each way (in, and back out
//! tunnelled); route-optimised traffic (correspondent <-> MMA) never does. Both tunnels reach an
//! MMA on its one WAN interface, where its (MMA, G) forwarding entries expect them. The WAN
//! delays apply to cn–wan ([`WanDelays::cn_ha`]), wan–mma1/mma2 ([`WanDelays::ha_sites`]) and
//! wan–ha ([`WanRouter::ha_ms`], [`WanLink::WanHa`]).
//!
//! Site 1 is 2001:db8:1::/48 behind mma1, site 2 is 2001:db8:2::/48 behind mma2. The MMA
//! address sits on the MMA's site interface, so the first pim-lite router sees the tree's
//! source S = MMA as directly connected. The access routers advertise their prefix and the
//! site's MMA (MAP option); the mobile node forms its on-link addresses from the RAs and
//! picks its link from the quality files (`<dir>/q/e1.quality` ...).
use std::net::{Ipv6Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use crate::delay::{DelayConfig, DelayLink};
use crate::kstate::Snapshot;
pub use crate::kstate::{mfc, MfcEntry};
use crate::wait::{wait_for, WaitError};
use crate::{veth, Daemon, Netns};

/// The addressing plan of the diagram above.
pub mod addr {
    use std::net::Ipv6Addr;

    pub const CN: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xf0, 0, 0, 0, 0, 2);
    pub const HA_WAN: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xf0, 0, 0, 0, 0, 1);
    /// The home agent's address on the home link (tunnel endpoint, BU destination).
    pub const HA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x99, 0, 0, 0, 0, 1);
    pub const HOME_HOST: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x99, 0, 0, 0, 0, 2);
    pub const HOA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x99, 0, 0, 0, 0, 0x100);
    pub const HOME_PREFIX: &str = "2001:db8:99::/64";
    pub const MMA1: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);
    pub const MMA2: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 1);
    pub const SITE1: &str = "2001:db8:1::/48";
    pub const SITE2: &str = "2001:db8:2::/48";
    /// Access link prefixes of a1, a2, a3 (the routers are ::1 on them).
    pub const ACCESS: [&str; 3] = ["2001:db8:1:1::", "2001:db8:1:2::", "2001:db8:2:3::"];
    pub const GROUP_PREFIX: &str = "ff35::/64";
    /// The MMAs' addresses on their direct link (peer0).
    pub const MMA_PEER1: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xf3, 0, 0, 0, 0, 1);
    pub const MMA_PEER2: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xf3, 0, 0, 0, 0, 2);
    /// The home site's MMA ([`super::SiteOptions::home_site_mma`]), on its site link.
    pub const MMA0: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x99, 0xf0, 0, 0, 0, 1);
    /// mma0's address on the home link (its WAN side).
    pub const MMA0_HOME: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x99, 0, 0, 0, 0, 3);
    /// With [`super::SiteOptions::wan_router`]: the WAN router's and the home agent's
    /// addresses on their link (the router also takes [`HA_WAN`] on the correspondent's link).
    pub const WAN_HA_ROUTER: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xf4, 0, 0, 0, 0, 1);
    pub const HA_WAN_OFF_PATH: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xf4, 0, 0, 0, 0, 2);
    /// The home site's subnets behind mma0 (its site link and a0's access link).
    pub const HOME_SITE_SUBNETS: &str = "2001:db8:99:f0::/60";
    /// a0's access link prefix (the router is ::1 on it).
    pub const HOME_SITE_ACCESS: &str = "2001:db8:99:f5::";
}

pub const HOME_AGENT: &str = "home-agent";
pub const MMA: &str = "mma";
pub const MOBILE_NODE: &str = "mobile-node";
pub const PIM_LITE: &str = "pim-lite";
/// The correspondent agent, in `cn` with [`SiteOptions::correspondent_agent`].
pub const CORRESPONDENT: &str = "correspondent";

const SPI_HA: u32 = 1000;
const SPI_MMA: u32 = 1001;
/// The MMA–MMA association ([`SiteOptions::mma_peers`]).
pub const SPI_MMA_PEER: u32 = 5000;
/// The MMAs' associations with the correspondent agent.
pub const SPI_CN_MMA1: u32 = 2001;
pub const SPI_CN_MMA2: u32 = 2002;
/// The key of both (in `<dir>/cn-mma.key`, hex).
pub const KEY_CN_MMA: [u8; 32] = [0x5e; 32];

/// The namespaces of the site, by role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Node {
    Cn,
    Home,
    Ha,
    Mma1,
    C1,
    A1,
    A2,
    Mma2,
    A3,
    Mn,
    /// The home site's MMA and its access router ([`SiteOptions::home_site_mma`]).
    Mma0,
    A0,
}

impl Node {
    pub const ALL: [Node; 12] = [
        Node::Cn,
        Node::Home,
        Node::Ha,
        Node::Mma1,
        Node::C1,
        Node::A1,
        Node::A2,
        Node::Mma2,
        Node::A3,
        Node::Mn,
        Node::Mma0,
        Node::A0,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Node::Cn => "cn",
            Node::Home => "home",
            Node::Ha => "ha",
            Node::Mma1 => "mma1",
            Node::C1 => "c1",
            Node::A1 => "a1",
            Node::A2 => "a2",
            Node::Mma2 => "mma2",
            Node::A3 => "a3",
            Node::Mn => "mn",
            Node::Mma0 => "mma0",
            Node::A0 => "a0",
        }
    }

    /// The daemon binary running in this namespace in the default topology, if any (see
    /// [`Site::daemon_of`] for the optional nodes).
    pub fn daemon(self) -> Option<&'static str> {
        match self {
            Node::Ha => Some(HOME_AGENT),
            Node::Mma1 | Node::Mma2 => Some(MMA),
            Node::C1 | Node::A1 | Node::A2 | Node::A3 => Some(PIM_LITE),
            Node::Mn => Some(MOBILE_NODE),
            Node::Cn | Node::Home | Node::Mma0 | Node::A0 => None,
        }
    }

    /// Start order: agents and routers before the terminal, which needs their RAs.
    const DAEMONS: [Node; 10] = [
        Node::Ha,
        Node::Mma1,
        Node::Mma2,
        Node::Mma0,
        Node::A0,
        Node::C1,
        Node::A1,
        Node::A2,
        Node::A3,
        Node::Mn,
    ];
}

#[derive(Debug)]
pub enum SiteError {
    /// A daemon binary is not where the build puts it.
    MissingBinary(PathBuf),
    Setup(String),
    DaemonExited {
        node: &'static str,
        status: ExitStatus,
        log: String,
    },
    Wait(WaitError),
}

impl std::fmt::Display for SiteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SiteError::MissingBinary(p) => write!(
                f,
                "{} not found: run `cargo build --workspace` first (`cargo build --release --workspace` for release)",
                p.display()
            ),
            SiteError::Setup(e) => write!(f, "topology setup: {e}"),
            SiteError::DaemonExited { node, status, log } => write!(f, "the daemon in {node} exited ({status}):\n{log}"),
            SiteError::Wait(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for SiteError {}

impl From<WaitError> for SiteError {
    fn from(e: WaitError) -> Self {
        SiteError::Wait(e)
    }
}

/// The directory holding the daemon binaries of the build that produced the running
/// executable: `target/<profile>/` (a test binary lives one level down, in `deps/`).
pub fn daemon_dir() -> Result<PathBuf, SiteError> {
    let exe = std::env::current_exe().map_err(|e| SiteError::Setup(format!("current_exe: {e}")))?;
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    for bin in [HOME_AGENT, MMA, MOBILE_NODE, PIM_LITE] {
        let p = dir.join(bin);
        if !p.is_file() {
            return Err(SiteError::MissingBinary(p));
        }
    }
    Ok(dir)
}

/// One-way delays, in milliseconds, of the WAN links (both directions). 0: a plain veth, no
/// relay (unless [`SiteOptions::wan_relays`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WanDelays {
    /// cn -- ha.
    pub cn_ha: u64,
    /// ha -- mma1 and ha -- mma2.
    pub ha_sites: u64,
    /// mma1 -- mma2 (the sites' direct link).
    pub site_site: u64,
}

impl WanDelays {
    /// The same delay on every WAN link.
    pub fn all(ms: u64) -> WanDelays {
        WanDelays {
            cn_ha: ms,
            ha_sites: ms,
            site_site: ms,
        }
    }
}

/// The WAN links, for [`Site::wan_link`]. With [`SiteOptions::wan_router`], `CnHa` is
/// cn–wan, `HaMma1`/`HaMma2` are wan–mma1/mma2 and `WanHa` is wan–ha.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WanLink {
    CnHa,
    HaMma1,
    HaMma2,
    Mma1Mma2,
    /// The WAN router's link to the home agent (only with [`SiteOptions::wan_router`]).
    WanHa,
}

impl WanLink {
    pub const ALL: [WanLink; 5] = [
        WanLink::CnHa,
        WanLink::HaMma1,
        WanLink::HaMma2,
        WanLink::Mma1Mma2,
        WanLink::WanHa,
    ];
}

/// [`SiteOptions::wan_router`]: the home agent off the correspondent–site path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WanRouter {
    /// One-way delay of the router–HA link (both directions), ms; 0: a plain veth (unless
    /// [`SiteOptions::wan_relays`]).
    pub ha_ms: u64,
}

pub struct SiteOptions {
    /// Short tag in the namespace names (`mc<tag><node>...`).
    pub tag: String,
    /// One-way delays of the WAN links; default 0 everywhere (plain veths).
    pub wan_delay_ms: WanDelays,
    /// Put a delay element on every WAN link even at 0 ms, so that [`Site::wan_link`] can
    /// count the Mobility Header messages crossing it.
    pub wan_relays: bool,
    /// Give the terminal a fourth interface, e4, on the home link (the `home` namespace
    /// becomes a bridge between the home agent, its host and e4, and runs a pim-lite access
    /// router advertising the home prefix). e4's quality starts at 0.
    pub home_link: bool,
    /// With `home_link`: the home site's other subnet (002 FIG 8), an MMA of the home site
    /// (mma0) serving an access link (a0) where the terminal has a fifth interface, e5
    /// (quality 0 at start).
    pub home_site_mma: bool,
    /// The mobile node's `mode`: `site` (default) or `mipv6` (plain RFC 6275, the baseline).
    pub mn_mode: String,
    /// Make mma1 and mma2 each other's `peers` for context transfer (issue 12 §3), with an
    /// MMA–MMA security association of their own (SPI 5000). Off by default.
    pub mma_peers: bool,
    /// Where the daemon binaries are; default: [`daemon_dir`].
    pub bin_dir: Option<PathBuf>,
    /// `--log-level` of every daemon.
    pub log_level: String,
    /// Keep the working directory (configs, logs) after the site is dropped.
    pub keep_dir: bool,
    /// Run the correspondent agent in `cn` (started right after the home agent), accepting
    /// route-optimisation BUs from both MMAs ([`SPI_CN_MMA1`], [`SPI_CN_MMA2`]) for the home
    /// prefix.
    pub correspondent_agent: bool,
    /// Put a WAN router between the correspondent, the home agent and the sites, so that the
    /// home agent is off the correspondent–site path (see the module documentation). None
    /// (default): the `ha` namespace is the WAN router.
    pub wan_router: Option<WanRouter>,
}

impl SiteOptions {
    pub fn new(tag: &str) -> SiteOptions {
        // MIPCAST_KEEP_SITE_DIR=1 keeps configs, logs and captures for a post-mortem.
        let keep_dir = std::env::var_os("MIPCAST_KEEP_SITE_DIR").is_some_and(|v| v == "1");
        SiteOptions {
            tag: tag.to_owned(),
            wan_delay_ms: WanDelays::default(),
            wan_relays: false,
            home_link: false,
            home_site_mma: false,
            mn_mode: "site".into(),
            mma_peers: false,
            bin_dir: None,
            log_level: "info".into(),
            keep_dir,
            correspondent_agent: false,
            wan_router: None,
        }
    }
}

struct Running {
    node: Node,
    daemon: Daemon,
}

/// The topology; dropping it stops the daemons (SIGTERM, then SIGKILL) and deletes the
/// namespaces.
pub struct Site {
    // Declared before the namespaces: daemons must be gone before their namespace is.
    daemons: Vec<Running>,
    // The delay elements: stopped before the namespaces they join go.
    wan: Vec<(WanLink, DelayLink)>,
    pub cn: Netns,
    pub home: Netns,
    pub ha: Netns,
    pub mma1: Netns,
    pub c1: Netns,
    pub a1: Netns,
    pub a2: Netns,
    pub mma2: Netns,
    pub a3: Netns,
    pub mn: Netns,
    pub mma0: Netns,
    pub a0: Netns,
    /// The WAN router, with [`SiteOptions::wan_router`] (no daemon runs there).
    pub wan_router: Option<Netns>,
    /// Configs, keys, quality files, logs and state files.
    pub dir: PathBuf,
    bins: PathBuf,
    log_level: String,
    keep_dir: bool,
    baseline: Vec<(Node, Snapshot)>,
    home_link: bool,
    home_site_mma: bool,
    mn_mode: String,
    mma_peers: bool,
    correspondent_agent: bool,
}

fn setup<T>(r: Result<T, String>) -> Result<T, SiteError> {
    r.map_err(SiteError::Setup)
}

impl Site {
    /// Creates namespaces, links, static routes, configs, keys and quality files (e1 = 100,
    /// e2 = e3 = 0, so the terminal starts on a1), and records the kernel state every
    /// namespace has before any daemon runs. Starts no daemon.
    pub fn build(opts: &SiteOptions) -> Result<Site, SiteError> {
        let bins = match &opts.bin_dir {
            Some(d) => d.clone(),
            None => daemon_dir()?,
        };
        let dir =
            std::env::temp_dir().join(format!("mipcast-site-{}-{}", opts.tag, std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("q"))
            .map_err(|e| SiteError::Setup(format!("{}: {e}", dir.display())))?;
        let ns = |n: Node| Netns::new(&format!("{}{}", opts.tag, n.name()));
        if !matches!(opts.mn_mode.as_str(), "site" | "mipv6") {
            return Err(SiteError::Setup(format!(
                "mobile node mode {:?}: expected site or mipv6",
                opts.mn_mode
            )));
        }
        if opts.home_site_mma && !opts.home_link {
            return Err(SiteError::Setup(
                "home_site_mma needs home_link (mma0 sits on the home link)".into(),
            ));
        }
        let mut site = Site {
            daemons: Vec::new(),
            wan: Vec::new(),
            cn: ns(Node::Cn),
            home: ns(Node::Home),
            ha: ns(Node::Ha),
            mma1: ns(Node::Mma1),
            c1: ns(Node::C1),
            a1: ns(Node::A1),
            a2: ns(Node::A2),
            mma2: ns(Node::Mma2),
            a3: ns(Node::A3),
            mn: ns(Node::Mn),
            mma0: ns(Node::Mma0),
            a0: ns(Node::A0),
            wan_router: opts
                .wan_router
                .map(|_| Netns::new(&format!("{}wan", opts.tag))),
            dir,
            bins,
            log_level: opts.log_level.clone(),
            keep_dir: opts.keep_dir,
            baseline: Vec::new(),
            home_link: opts.home_link,
            home_site_mma: opts.home_site_mma,
            mn_mode: opts.mn_mode.clone(),
            mma_peers: opts.mma_peers,
            correspondent_agent: opts.correspondent_agent,
        };
        if site.correspondent_agent && !site.bins.join(CORRESPONDENT).is_file() {
            return Err(SiteError::MissingBinary(site.bins.join(CORRESPONDENT)));
        }
        site.wire(opts)?;
        site.write_configs()?;
        for (ifname, q) in [("e1", 100), ("e2", 0), ("e3", 0), ("e4", 0), ("e5", 0)] {
            site.set_quality(ifname, q)?;
        }
        if opts.home_link {
            site.wait_ipv6_ready(Node::Home, "br0")?;
            site.wait_ipv6_ready(Node::Mn, "e4")?;
        }
        if opts.home_site_mma {
            for (node, ifname) in [
                (Node::Mma0, "wan0"),
                (Node::A0, "up0"),
                (Node::A0, "acc0"),
                (Node::Mn, "e5"),
            ] {
                site.wait_ipv6_ready(node, ifname)?;
            }
        }
        for (node, ifs) in [
            (Node::C1, &["up0", "d1", "d2"][..]),
            (Node::A1, &["up0", "acc0"][..]),
            (Node::A2, &["up0", "acc0"][..]),
            (Node::A3, &["up0", "acc0"][..]),
            (Node::Mn, &["e1", "e2", "e3"][..]),
        ] {
            for ifname in ifs {
                site.wait_ipv6_ready(node, ifname)?;
            }
        }
        for n in Node::ALL {
            let snap = setup(Snapshot::take(site.ns(n)))?;
            site.baseline.push((n, snap));
        }
        Ok(site)
    }

    pub fn ns(&self, n: Node) -> &Netns {
        match n {
            Node::Cn => &self.cn,
            Node::Home => &self.home,
            Node::Ha => &self.ha,
            Node::Mma1 => &self.mma1,
            Node::C1 => &self.c1,
            Node::A1 => &self.a1,
            Node::A2 => &self.a2,
            Node::Mma2 => &self.mma2,
            Node::A3 => &self.a3,
            Node::Mn => &self.mn,
            Node::Mma0 => &self.mma0,
            Node::A0 => &self.a0,
        }
    }

    /// A WAN link: a plain veth, or a delay element when it has a delay (or relays are
    /// asked for everywhere). With a WAN router, `Node::Ha` as an end means the router, except
    /// for the far (b) end of [`WanLink::WanHa`], which is the home agent itself.
    #[allow(clippy::too_many_arguments)] // the two ends as `veth` takes them
    fn wan(
        &mut self,
        opts: &SiteOptions,
        link: WanLink,
        a: Node,
        a_if: &str,
        a_addr: &str,
        b: Node,
        b_if: &str,
        b_addr: &str,
    ) -> Result<(), SiteError> {
        let ms = match link {
            WanLink::CnHa => opts.wan_delay_ms.cn_ha,
            WanLink::HaMma1 | WanLink::HaMma2 => opts.wan_delay_ms.ha_sites,
            WanLink::Mma1Mma2 => opts.wan_delay_ms.site_site,
            WanLink::WanHa => opts.wan_router.unwrap_or_default().ha_ms,
        };
        let router = self.wan_router.as_ref();
        let na = match (a, router) {
            (Node::Ha, Some(r)) => r,
            _ => self.ns(a),
        };
        let nb = match (b, router) {
            (Node::Ha, Some(r)) if link != WanLink::WanHa => r,
            _ => self.ns(b),
        };
        if ms == 0 && !opts.wan_relays {
            veth(na, a_if, a_addr, nb, b_if, b_addr);
            return Ok(());
        }
        let cfg = DelayConfig {
            seed: 1 + link as u64,
            ..DelayConfig::symmetric_ms(ms)
        };
        let tag = format!("{}w{}", opts.tag, link as u8);
        let d = DelayLink::new(&tag, na, a_if, a_addr, nb, b_if, b_addr, cfg)
            .map_err(|e| SiteError::Setup(format!("delay element {link:?}: {e}")))?;
        self.wan.push((link, d));
        Ok(())
    }

    /// The delay element on a WAN link, if it has one (a delay, or [`SiteOptions::wan_relays`]).
    pub fn wan_link(&self, link: WanLink) -> Option<&DelayLink> {
        self.wan.iter().find(|(l, _)| *l == link).map(|(_, d)| d)
    }

    fn wire(&mut self, opts: &SiteOptions) -> Result<(), SiteError> {
        use addr::*;
        self.wan(
            opts,
            WanLink::CnHa,
            Node::Cn,
            "wan0",
            &format!("{CN}/64"),
            Node::Ha,
            if opts.wan_router.is_some() {
                "cn0"
            } else {
                "wan0"
            },
            &format!("{HA_WAN}/64"),
        )?;
        if opts.wan_router.is_some() {
            self.wan(
                opts,
                WanLink::WanHa,
                Node::Ha,
                "ha0",
                &format!("{WAN_HA_ROUTER}/64"),
                Node::Ha,
                "wan0",
                &format!("{HA_WAN_OFF_PATH}/64"),
            )?;
        }
        veth(
            &self.home,
            "home0",
            &format!("{HOME_HOST}/64"),
            &self.ha,
            "home0",
            &format!("{HA}/64"),
        );
        self.wan(
            opts,
            WanLink::HaMma1,
            Node::Ha,
            "m1",
            "2001:db8:f1::1/64",
            Node::Mma1,
            "wan0",
            "2001:db8:f1::2/64",
        )?;
        self.wan(
            opts,
            WanLink::HaMma2,
            Node::Ha,
            "m2",
            "2001:db8:f2::1/64",
            Node::Mma2,
            "wan0",
            "2001:db8:f2::2/64",
        )?;
        self.wan(
            opts,
            WanLink::Mma1Mma2,
            Node::Mma1,
            "peer0",
            &format!("{MMA_PEER1}/64"),
            Node::Mma2,
            "peer0",
            &format!("{MMA_PEER2}/64"),
        )?;
        veth(
            &self.mma1,
            "site0",
            &format!("{MMA1}/64"),
            &self.c1,
            "up0",
            "2001:db8:1::2/64",
        );
        veth(
            &self.c1,
            "d1",
            "2001:db8:1:11::1/64",
            &self.a1,
            "up0",
            "2001:db8:1:11::2/64",
        );
        veth(
            &self.c1,
            "d2",
            "2001:db8:1:12::1/64",
            &self.a2,
            "up0",
            "2001:db8:1:12::2/64",
        );
        veth(
            &self.mma2,
            "site0",
            &format!("{MMA2}/64"),
            &self.a3,
            "up0",
            "2001:db8:2::2/64",
        );
        // The terminal's interfaces get their addresses from the mobile-node daemon (SLAAC
        // from the RAs), nothing here.
        veth(
            &self.a1,
            "acc0",
            &format!("{}1/64", ACCESS[0]),
            &self.mn,
            "e1",
            "",
        );
        veth(
            &self.a2,
            "acc0",
            &format!("{}1/64", ACCESS[1]),
            &self.mn,
            "e2",
            "",
        );
        veth(
            &self.a3,
            "acc0",
            &format!("{}1/64", ACCESS[2]),
            &self.mn,
            "e3",
            "",
        );

        self.cn.sh(&format!("ip -6 route add default via {HA_WAN}"));
        self.home.sh(&format!("ip -6 route add default via {HA}"));
        let sites = format!(
            "ip -6 route add {SITE1} via 2001:db8:f1::2 && ip -6 route add {SITE2} via 2001:db8:f2::2"
        );
        match &self.wan_router {
            None => {
                self.ha.sh(&sites);
            }
            Some(router) => {
                router.sh(&format!(
                    "{sites} && ip -6 route add {HOME_PREFIX} via {HA_WAN_OFF_PATH} && \
                     ip -6 route add {HOME_SITE_SUBNETS} via {HA_WAN_OFF_PATH}"
                ));
                self.ha
                    .sh(&format!("ip -6 route add default via {WAN_HA_ROUTER}"));
            }
        }
        self.mma1.sh(&format!("ip -6 route add default via 2001:db8:f1::1 && ip -6 route add {SITE1} via 2001:db8:1::2 && ip -6 route add {SITE2} via {MMA_PEER2}"));
        self.mma2.sh(&format!("ip -6 route add default via 2001:db8:f2::1 && ip -6 route add {SITE2} via 2001:db8:2::2 && ip -6 route add {SITE1} via {MMA_PEER1}"));
        self.c1.sh(&format!(
            "ip -6 route add default via {MMA1} && ip -6 route add {}/64 via 2001:db8:1:11::2 && \
             ip -6 route add {}/64 via 2001:db8:1:12::2",
            ACCESS[0], ACCESS[1]
        ));
        self.a1.sh("ip -6 route add default via 2001:db8:1:11::1");
        self.a2.sh("ip -6 route add default via 2001:db8:1:12::1");
        self.a3.sh(&format!("ip -6 route add default via {MMA2}"));
        if opts.home_link {
            // The home link becomes a bridge in `home`: the home agent's home0, the host's
            // address and the terminal's e4 on one segment. No snooping: MLD and ND must
            // reach every port.
            self.home.sh(&format!(
                "ip link add br0 type bridge mcast_snooping 0 && ip link set home0 master br0 && \
                 ip addr del {HOME_HOST}/64 dev home0 && ip addr add {HOME_HOST}/64 dev br0 nodad && \
                 ip link set br0 up"
            ));
            veth(&self.home, "hm0", "", &self.mn, "e4", "");
            self.home.sh(&format!(
                "ip link set hm0 master br0 && ip -6 route replace default via {HA}"
            ));
        }
        if opts.home_site_mma {
            self.wire_home_site();
        }
        Ok(())
    }

    /// FIG 8: mma0 on the home link (a bridge port), a0 behind it, e5 on a0's access link.
    fn wire_home_site(&self) {
        use addr::*;
        veth(
            &self.home,
            "hs0",
            "",
            &self.mma0,
            "wan0",
            &format!("{MMA0_HOME}/64"),
        );
        self.home.sh("ip link set hs0 master br0");
        veth(
            &self.mma0,
            "site0",
            &format!("{MMA0}/64"),
            &self.a0,
            "up0",
            "2001:db8:99:f0::2/64",
        );
        veth(
            &self.a0,
            "acc0",
            &format!("{HOME_SITE_ACCESS}1/64"),
            &self.mn,
            "e5",
            "",
        );
        self.ha.sh(&format!(
            "ip -6 route add {HOME_SITE_SUBNETS} via {MMA0_HOME} dev home0"
        ));
        self.mma0.sh(&format!(
            "ip -6 route add default via {HA} && ip -6 route add {HOME_SITE_SUBNETS} via 2001:db8:99:f0::2"
        ));
        self.a0.sh(&format!("ip -6 route add default via {MMA0}"));
    }

    /// Link-local address and multicast route present: MLD, PIM and RAs can use the link.
    fn wait_ipv6_ready(&self, node: Node, ifname: &str) -> Result<(), SiteError> {
        let ns = self.ns(node);
        wait_for(
            &format!("IPv6 on {ifname} in {}", node.name()),
            Duration::from_secs(5),
            || {
                let routes = ns
                    .try_sh(&format!("ip -6 route show table local dev {ifname}"))
                    .ok()?;
                let addrs = ns
                    .try_sh(&format!("ip -6 -o addr show dev {ifname} scope link"))
                    .ok()?;
                (routes.contains("ff00::/8") && addrs.contains("inet6")).then_some(())
            },
        )?;
        Ok(())
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn config_path(&self, node: Node) -> PathBuf {
        self.path(&format!("{}.yaml", node.name()))
    }

    pub fn log_path(&self, node: Node) -> PathBuf {
        self.path(&format!("{}.log", node.name()))
    }

    fn write(&self, name: &str, text: &str, mode: u32) -> Result<PathBuf, SiteError> {
        let p = self.path(name);
        let io = |e: std::io::Error| SiteError::Setup(format!("{}: {e}", p.display()));
        std::fs::write(&p, text).map_err(io)?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).map_err(io)?;
        Ok(p)
    }

    fn write_configs(&self) -> Result<(), SiteError> {
        use addr::*;
        // Distinct keys for the two kinds of security association; the daemons refuse key
        // files other users can read.
        let key_ha = self.write("mn-ha.key", &"a5".repeat(32), 0o600)?;
        let key_mma = self.write("mn-mma.key", &"3c".repeat(32), 0o600)?;
        let d = self.dir.display();
        self.write(
            "ha.yaml",
            &format!(
                "home_link:\n  interface: home0\n  address: {HA}\n\
                 home_prefixes: [{HOME_PREFIX}]\n\
                 security_associations:\n  - spi: {SPI_HA}\n    algorithm: hmac-sha256-128\n    key_file: {k}\n    home_prefixes: [{HOA}/128]\n\
                 metrics:\n  listen: \"[::1]:9641\"\n\
                 state:\n  file: {d}/ha.state.json\n  write_delay_ms: 100\n",
                k = key_ha.display()
            ),
            0o644,
        )?;
        // Terminals' on-link addresses come from the access links only (the MMA's own
        // address must not look like a terminal's).
        let site1 = format!("{}/64, {}/64", ACCESS[0], ACCESS[1]);
        let site2 = format!("{}/64", ACCESS[2]);
        let peers = |other: Ipv6Addr| -> Result<String, SiteError> {
            if !self.mma_peers {
                return Ok(String::new());
            }
            let key = self.write("mma-mma.key", &"5a".repeat(32), 0o600)?;
            Ok(format!(
                "peers:\n  - address: {other}\n    spi: {SPI_MMA_PEER}\n    algorithm: hmac-sha256-128\n    key_file: {}\n",
                key.display()
            ))
        };
        let mut mmas = vec![
            (Node::Mma1, MMA1, site1, Some(MMA2)),
            (Node::Mma2, MMA2, site2, Some(MMA1)),
        ];
        if self.home_site_mma {
            mmas.push((Node::Mma0, MMA0, format!("{HOME_SITE_ACCESS}/64"), None));
        }
        for (node, mma, prefix, other) in mmas {
            let peers = match other {
                Some(other) => peers(other)?,
                None => String::new(),
            };
            // With the correspondent agent: route optimisation toward the CN (its agent) and
            // toward the home link's host (no agent: the MMA must back off); site MMAs only.
            let spi = match node {
                Node::Mma1 => Some(SPI_CN_MMA1),
                Node::Mma2 => Some(SPI_CN_MMA2),
                _ => None,
            };
            let ro = match spi {
                Some(spi) if self.correspondent_agent => format!(
                    "route_optimisation:\n  lifetime: 40\n  sighting_interval: 2\n  correspondents:\n\
                     \x20   - {{ prefix: {CN}/128, spi: {spi}, algorithm: hmac-sha256-128, key_file: {k} }}\n\
                     \x20   - {{ prefix: {HOME_HOST}/128, spi: {spi}, algorithm: hmac-sha256-128, key_file: {k} }}\n",
                    k = self.path("cn-mma.key").display()
                ),
                _ => String::new(),
            };
            self.write(
                &format!("{}.yaml", node.name()),
                &format!(
                    "address: {mma}\nwan_interface: wan0\nsite_interfaces: [site0]\nsite_prefixes: [{prefix}]\n\
                     group_prefix: {GROUP_PREFIX}\n\
                     home_agents:\n  - address: {HA}\n    home_prefixes: [{HOME_PREFIX}]\n\
                     security_associations:\n  - spi: {SPI_MMA}\n    algorithm: hmac-sha256-128\n    key_file: {k}\n    home_prefixes: [{HOME_PREFIX}]\n\
                     forwarding:\n  default_grace: 10\n  max_grace: 30\n\
                     metrics:\n  listen: \"[::1]:9642\"\n  mfc_poll: 1\n\
                     state:\n  file: {d}/{n}.state.json\n  write_delay_ms: 100\n{peers}{ro}",
                    k = key_mma.display(),
                    n = node.name()
                ),
                0o644,
            )?;
        }
        // Triggered Hellos at once and RPF re-checks every second: the tree forms in well
        // under a second after a join.
        let pim = "pim:\n  hello_period_secs: 30\n  triggered_hello_delay_ms: 100\n  rpf_check_interval_secs: 1\n\
                   metrics:\n  listen: \"[::1]:9644\"\n";
        if self.correspondent_agent {
            self.write_correspondent_config()?;
        }
        if self.home_link {
            self.write(
                "home.yaml",
                &format!(
                    "interfaces:\n  - name: br0\n    role: access\n\
                     \x20   mld:\n      query_interval_secs: 10\n      query_response_interval_ms: 1000\n\
                     \x20     last_listener_query_interval_ms: 300\n      fast_leave: true\n\
                     \x20   ra:\n      max_interval_ms: 1000\n      solicited_delay_max_ms: 50\n\
                     \x20     prefixes: [ {{ prefix: \"{HOME_PREFIX}\" }} ]\n{pim}"
                ),
                0o644,
            )?;
        }
        self.write(
            "c1.yaml",
            &format!("interfaces:\n  - {{ name: up0, role: core }}\n  - {{ name: d1, role: core }}\n  - {{ name: d2, role: core }}\n{pim}"),
            0o644,
        )?;
        let mut access = vec![
            (Node::A1, ACCESS[0], MMA1),
            (Node::A2, ACCESS[1], MMA1),
            (Node::A3, ACCESS[2], MMA2),
        ];
        if self.home_site_mma {
            access.push((Node::A0, HOME_SITE_ACCESS, MMA0));
        }
        for (node, prefix, mma) in access {
            self.write(
                &format!("{}.yaml", node.name()),
                &format!(
                    "interfaces:\n  - {{ name: up0, role: core }}\n  - name: acc0\n    role: access\n\
                     \x20   mld:\n      query_interval_secs: 10\n      query_response_interval_ms: 1000\n\
                     \x20     last_listener_query_interval_ms: 300\n      fast_leave: true\n\
                     \x20   ra:\n      max_interval_ms: 1000\n      solicited_delay_max_ms: 50\n\
                     \x20     prefixes: [ {{ prefix: \"{prefix}/64\" }} ]\n\
                     \x20     map: {{ address: \"{mma}\", distance: 1, preference: 10, valid_lifetime_secs: 1800 }}\n{pim}"
                ),
                0o644,
            )?;
        }
        let mut ifs = String::new();
        let n_ifs = match (self.home_link, self.home_site_mma) {
            (_, true) => 5,
            (true, false) => 4,
            (false, false) => 3,
        };
        for i in 1..=n_ifs {
            ifs.push_str(&format!(
                "  - {{ name: e{i}, preference: 50, quality_file: {d}/q/e{i}.quality }}\n"
            ));
        }
        self.write(
            "mn.yaml",
            &format!(
                "home_address: {HOA}\nhome_agent: {HA}\nhome_prefix: {HOME_PREFIX}\nmode: {mode}\n\
                 multicast_prefix: {GROUP_PREFIX}\ngroup_interface: e1\nbinding_lifetime: 300\n\
                 security_associations:\n\
                 \x20 home_agent: {{ spi: {SPI_HA}, algorithm: hmac-sha256-128, key_file: {kh} }}\n\
                 \x20 default_mma: {{ spi: {SPI_MMA}, algorithm: hmac-sha256-128, key_file: {km} }}\n\
                 interfaces:\n{ifs}\
                 selection: {{ hysteresis: 10, min_dwell_ms: 500, ra_timeout_ms: 3500 }}\n\
                 handover: {{ overlap_ms: 1000, forwarding_grace_secs: 10 }}\n\
                 metrics: {{ listen: \"[::1]:9643\" }}\n\
                 state_file: {d}/mn.state\n",
                kh = key_ha.display(),
                km = key_mma.display(),
                mode = self.mn_mode
            ),
            0o644,
        )?;
        Ok(())
    }

    fn write_correspondent_config(&self) -> Result<(), SiteError> {
        use addr::*;
        let hex: String = KEY_CN_MMA.iter().map(|b| format!("{b:02x}")).collect();
        let key = self.write("cn-mma.key", &hex, 0o600)?;
        let d = self.dir.display();
        let mut mmas = String::new();
        for (mma, spi) in [(MMA1, SPI_CN_MMA1), (MMA2, SPI_CN_MMA2)] {
            mmas.push_str(&format!(
                "  - {{ address: {mma}/128, spi: {spi}, algorithm: hmac-sha256-128, key_file: {k}, home_prefixes: [{HOME_PREFIX}] }}\n",
                k = key.display()
            ));
        }
        self.write(
            "cn.yaml",
            &format!(
                "correspondent:\n  interface: wan0\n  address: {CN}\nmmas:\n{mmas}\
                 metrics:\n  listen: \"[::1]:9645\"\n\
                 state:\n  file: {d}/cn.journal\n"
            ),
            0o644,
        )?;
        Ok(())
    }

    /// Writes the radio quality (0-100) the mobile node reads for `ifname` (e1, e2, e3);
    /// atomically, so the daemon never reads a half-written file.
    pub fn set_quality(&self, ifname: &str, quality: u8) -> Result<(), SiteError> {
        let tmp = self.path(&format!("q/.{ifname}.tmp"));
        let dst = self.path(&format!("q/{ifname}.quality"));
        std::fs::write(&tmp, format!("{quality}\n"))
            .and_then(|()| std::fs::rename(&tmp, &dst))
            .map_err(|e| SiteError::Setup(format!("{}: {e}", dst.display())))
    }

    /// Starts every daemon (home agent, MMAs, pim-lite routers, then the mobile node) and
    /// waits until each answers `/healthz`.
    pub fn start_daemons(&mut self) -> Result<(), SiteError> {
        for node in Node::DAEMONS {
            if node == Node::Mn && self.home_link {
                self.start(Node::Home)?;
            }
            self.start(node)?;
            if node == Node::Ha && self.correspondent_agent {
                self.start(Node::Cn)?;
            }
        }
        Ok(())
    }

    /// Starts the daemon of `node` alone and waits until it answers `/healthz` (for tests
    /// that play its peers themselves).
    pub fn start_node(&mut self, node: Node) -> Result<(), SiteError> {
        self.start(node)
    }

    /// Sends `signal` (e.g. `libc::SIGHUP`) to the daemon of `node`; false if none runs there.
    pub fn signal_node(&self, node: Node, signal: nix::sys::signal::Signal) -> bool {
        let Some(r) = self.daemons.iter().find(|r| r.node == node) else {
            return false;
        };
        let pid = nix::unistd::Pid::from_raw(i32::try_from(r.daemon.0.id()).unwrap_or(0));
        nix::sys::signal::kill(pid, signal).is_ok()
    }

    /// Kills the daemon of `node` with SIGKILL (a crash: it cleans nothing up) and reaps it.
    pub fn kill_node(&mut self, node: Node) -> Option<ExitStatus> {
        let i = self.daemons.iter().position(|r| r.node == node)?;
        let mut r = self.daemons.remove(i);
        r.daemon
            .signal_and_wait(libc::SIGKILL, Duration::from_secs(5))
    }

    /// The daemon running in `node` in this site (with a home link, `home` runs pim-lite).
    pub fn daemon_of(&self, node: Node) -> Option<&'static str> {
        match node {
            Node::Home if self.home_link => Some(PIM_LITE),
            Node::Cn if self.correspondent_agent => Some(CORRESPONDENT),
            Node::Mma0 if self.home_site_mma => Some(MMA),
            Node::A0 if self.home_site_mma => Some(PIM_LITE),
            _ => node.daemon(),
        }
    }

    fn start(&mut self, node: Node) -> Result<(), SiteError> {
        let Some(bin) = self.daemon_of(node) else {
            return Ok(());
        };
        let (cfg, log) = (self.config_path(node), self.log_path(node));
        let program = self.bins.join(bin);
        let child = self.ns(node).spawn(
            &program.to_string_lossy(),
            &["-c", &cfg.to_string_lossy(), "--log-level", &self.log_level],
            Some(&log),
        );
        let mut daemon = Daemon(child);
        let addr = metrics_addr(bin);
        let ns = self.ns(node);
        let ready = wait_for(
            &format!("{bin} in {} to answer /healthz", node.name()),
            Duration::from_secs(20),
            || {
                if let Ok(Some(status)) = daemon.0.try_wait() {
                    return Some(Err(status));
                }
                ns.enter(|| mipcast_daemon::metrics::fetch(addr, "/healthz").ok())
                    .map(|_| Ok(()))
            },
        )?;
        if let Err(status) = ready {
            return Err(SiteError::DaemonExited {
                node: node.name(),
                status,
                log: read(&log),
            });
        }
        self.daemons.push(Running { node, daemon });
        Ok(())
    }

    /// `<daemon> -c <config> status --json` in the node's namespace, parsed.
    pub fn status(&self, node: Node) -> Result<serde_json::Value, String> {
        let bin = self
            .daemon_of(node)
            .ok_or_else(|| format!("no daemon in {}", node.name()))?;
        let out = self.ns(node).cmd(
            &self.bins.join(bin).to_string_lossy(),
            &[
                "-c",
                &self.config_path(node).to_string_lossy(),
                "status",
                "--json",
            ],
        );
        if !out.status.success() {
            return Err(format!(
                "{bin} status in {}: {}",
                node.name(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        serde_json::from_slice(&out.stdout).map_err(|e| format!("{bin} status --json: {e}"))
    }

    /// The list `key` of the node's `status --json` (empty when the daemon does not answer or
    /// has no such list): the home agent's `bindings`, an MMA's `terminals`...
    pub fn status_list(&self, node: Node, key: &str) -> Vec<serde_json::Value> {
        self.status(node)
            .ok()
            .and_then(|s| s[key].as_array().cloned())
            .unwrap_or_default()
    }

    /// The node's resolved MFC entries (default MRT6 table).
    pub fn mfc(&self, node: Node) -> Vec<MfcEntry> {
        mfc(self.ns(node))
    }

    /// The daemon's log so far.
    pub fn log(&self, node: Node) -> String {
        read(&self.log_path(node))
    }

    pub fn ifindex(&self, node: Node, ifname: &str) -> Option<u32> {
        self.ns(node)
            .try_sh(&format!("cat /sys/class/net/{ifname}/ifindex"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// SIGTERM to every daemon, the terminal first (so it can deregister), then routers and
    /// agents; each gets `timeout` to exit. Returns each daemon's exit status (None: it had
    /// to be killed).
    pub fn stop_daemons(&mut self, timeout: Duration) -> Vec<(Node, Option<ExitStatus>)> {
        let mut out = Vec::new();
        while let Some(mut r) = self.daemons.pop() {
            let st = r.daemon.signal_and_wait(libc::SIGTERM, timeout);
            out.push((r.node, st));
        }
        out
    }

    /// Every difference between the kernel state now and before the daemons started, in any
    /// namespace (routes, rules, proxy ND, MFC/MIFs, nftables, seg6 tunnel source,
    /// addresses, proxy_ndp). Empty when the daemons cleaned up after themselves.
    pub fn leftovers(&self) -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        for (node, before) in &self.baseline {
            out.extend(Snapshot::take(self.ns(*node))?.diff(before));
        }
        Ok(out)
    }

    /// The daemons still running.
    pub fn running(&self) -> Vec<Node> {
        self.daemons.iter().map(|r| r.node).collect()
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        for (node, st) in self.stop_daemons(Duration::from_secs(5)) {
            if st.is_none() {
                eprintln!(
                    "{} in {} did not exit on SIGTERM within 5 s; killed",
                    self.daemon_of(node).unwrap_or("?"),
                    node.name()
                );
            }
        }
        if panicking {
            let cn = self.correspondent_agent.then_some(Node::Cn);
            for node in Node::DAEMONS
                .into_iter()
                .chain(cn)
                .filter(|n| self.daemon_of(*n).is_some())
            {
                let log = self.log(node);
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!(
                    "--- {} log ({}), last lines ---",
                    node.name(),
                    self.log_path(node).display()
                );
                for l in tail.iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
        if !self.keep_dir && !panicking {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// Whether a mobile node's `status --json` shows its registration with `peer` bound.
pub fn bound_with(mn_status: &serde_json::Value, peer: Ipv6Addr) -> bool {
    mn_status["registrations"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|r| r["peer"] == peer.to_string() && r["state"] == "bound")
}

/// The metrics listener each daemon is configured with above (one namespace each).
pub fn metrics_addr(bin: &str) -> SocketAddr {
    let port = match bin {
        HOME_AGENT => 9641,
        MMA => 9642,
        MOBILE_NODE => 9643,
        CORRESPONDENT => 9645,
        _ => 9644,
    };
    SocketAddr::from((Ipv6Addr::LOCALHOST, port))
}
