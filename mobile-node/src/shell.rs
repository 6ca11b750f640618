//! The tokio I/O shell: sockets, rtnetlink, nftables and MLD memberships around the pure
//! [`Core`]. Single-threaded; one loop feeds received packets, link notifications (netlink), quality polls, signals and
//! timer ticks to the core and applies its actions in order.
use mipcast_daemon::cli::RunOptions;
use mipcast_daemon::control::ControlSocket;
use std::collections::{BTreeMap, HashSet};
use std::net::Ipv6Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mipcast_daemon::clock::{Millis, SystemClock};
use mipcast_daemon::driver::{self, settle, Effects, Loop, LoopMetrics};
use mipcast_daemon::metrics::{register_build_info, MetricsServer};
use mipcast_daemon::signals::Signals;
use mipcast_daemon::state::StateFile;
use mipcast_daemon::status::status_channel;
use mipcast_kernel::linkwatch::LinkWatch;
use mipcast_kernel::nft::{NftError, NftMarker};
use mipcast_kernel::probe::Feature;
use mipcast_kernel::route::{outcome_of, Kernel, RouteError};
use mipcast_kernel::sockets::{
    IcmpSocket, MhSocket, PacketInfo, SocketError, SsmMembership, ALL_ROUTERS,
};
use mipcast_proto::{Machine, Outcome};
use mipcast_wire::group::{eui64_from_mac, terminal_group};
use mipcast_wire::nd::{self, NdOption, NdRepr};
use prometheus_client::registry::Registry;

use crate::config::Config;
use crate::core::kernel::KernelChange;
use crate::core::links::{LinkConfig, Policy};
use crate::core::reg::{Outgoing, Sa};
use crate::core::{Attach, Core, CoreConfig, Event, MetricEvent, Now, Persisted, Send, Tables};
use crate::host;
use crate::metrics::{CurrentLabels, Metrics};

mod driven;

/// How often quality files are read.
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// How often interface state is read from sysfs as well: link changes arrive as netlink
/// notifications at once ([`LinkWatch`]); the poll only catches events the notification
/// socket dropped (ENOBUFS).
const LINK_POLL_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(#[from] mipcast_daemon::config::ConfigError),
    #[error("{0}")]
    Kernel(String),
    #[error("{0}")]
    Interface(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

/// Runs the daemon until SIGTERM/SIGINT.
pub fn run(cfg: Config, opts: RunOptions) -> Result<(), StartError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| StartError::Io {
            what: "starting the tokio runtime".to_owned(),
            source,
        })?;
    rt.block_on(run_async(cfg, opts))
}

/// Interface names with their quality files, as the shell polls them.
struct PolledLink {
    ifindex: u32,
    name: String,
    quality_file: Option<PathBuf>,
    /// Reads the nl80211 signal instead of the file (after the start-up probe).
    nl80211: bool,
    up: Option<bool>,
    quality: Option<Option<u8>>,
}

/// Resolves interfaces and keys: the core's view of the configuration.
async fn core_config(
    cfg: &Config,
    kernel: &Kernel,
) -> Result<(CoreConfig, Vec<PolledLink>), StartError> {
    let mut links = Vec::new();
    let mut polled = Vec::new();
    for ifc in &cfg.interfaces {
        let ifindex = kernel
            .ifindex(&ifc.name)
            .await
            .map_err(|e| StartError::Interface(e.to_string()))?;
        let mac = host::mac_of(&ifc.name).map_err(|e| StartError::Interface(e.to_string()))?;
        links.push(LinkConfig {
            ifindex,
            name: ifc.name.clone(),
            mac,
            preference: ifc.preference,
            cost: ifc.cost,
        });
        polled.push(PolledLink {
            ifindex,
            name: ifc.name.clone(),
            quality_file: ifc.quality_file.clone(),
            nl80211: false,
            up: None,
            quality: None,
        });
    }
    let group_if = cfg
        .group_interface
        .as_ref()
        .and_then(|g| links.iter().find(|l| &l.name == g))
        .or(links.first());
    let mac = group_if
        .map(|l| l.mac)
        .ok_or_else(|| StartError::Interface("no interface configured".to_owned()))?;
    let group = terminal_group(
        cfg.multicast_prefix.addr(),
        cfg.multicast_prefix.prefix_len(),
        eui64_from_mac(mac),
    )
    .map_err(|e| StartError::Interface(format!("terminal group: {e}")))?;
    let lo_ifindex = kernel
        .ifindex("lo")
        .await
        .map_err(|e| StartError::Interface(e.to_string()))?;
    let sa = |spi,
              algorithm: mipcast_daemon::config::sa::SaAlgorithm,
              key: &mipcast_daemon::config::SecretKey| Sa {
        spi,
        algorithm: algorithm.into(),
        key: key.expose().to_vec(),
    };
    let sas = &cfg.security_associations;
    let core = CoreConfig {
        hoa: cfg.home_address,
        home_agent: cfg.home_agent,
        home_prefix: cfg.home_prefix.network(),
        group,
        mode: cfg.mode,
        lifetime_s: u32::try_from(cfg.binding_lifetime.as_secs()).unwrap_or(u32::MAX),
        ha_sa: sa(
            sas.home_agent.spi,
            sas.home_agent.algorithm,
            &sas.home_agent.key_file,
        ),
        mma_sas: sas
            .mmas
            .iter()
            .map(|m| (m.address, sa(m.spi, m.algorithm, &m.key_file)))
            .collect(),
        default_mma_sa: sas
            .default_mma
            .as_ref()
            .map(|d| sa(d.spi, d.algorithm, &d.key_file)),
        links,
        lo_ifindex,
        policy: Policy {
            hysteresis: cfg.selection.hysteresis,
            min_dwell_ms: cfg.selection.min_dwell_ms,
            ra_timeout_ms: cfg.selection.ra_timeout_ms,
            levels: cfg.selection.levels(),
            probe_interval_ms: cfg.selection.probe_interval_ms,
            loss_penalty: cfg.selection.probe_loss_penalty,
            pre_register: cfg.selection.pre_register,
            prepare_always: cfg.selection.prepare_always,
            prepare_link_up: cfg.selection.prepare_link_up,
        },
        overlap_ms: cfg.handover.overlap_ms,
        grace_s: cfg.handover.forwarding_grace_secs,
        tables: Tables {
            decap_table: cfg.kernel.decap_table,
            uplink_table: cfg.kernel.uplink_table,
            second_link_table: cfg.kernel.second_link_table,
            decap_pref: cfg.kernel.decap_rule_pref,
            uplink_pref: cfg.kernel.uplink_rule_pref,
        },
    };
    Ok((core, polled))
}

/// Everything the loop applies actions to.
struct Io {
    clock: SystemClock,
    kernel: Kernel,
    nft: NftMarker,
    ssm: SsmMembership,
    icmp: IcmpSocket,
    mh: MhSocket,
    metrics: Metrics,
    macs: BTreeMap<u32, [u8; 6]>,
    names: BTreeMap<u32, String>,
    /// Binding updates held until their source address is usable (see [`send_bu`]).
    held: std::cell::RefCell<Vec<(Now, Outgoing)>>,
    /// Router solicitations that found no source address on their link (it came up a moment
    /// ago and has no link-local address yet): sent again on the address notification.
    held_rs: std::cell::RefCell<Vec<(Now, u32)>>,
}

async fn run_async(cfg: Config, opts: RunOptions) -> Result<(), StartError> {
    let caps = mipcast_kernel::probe::probe()
        .await
        .map_err(|e| StartError::Kernel(e.to_string()))?;
    caps.require(&[
        Feature::Seg6Encap,
        Feature::Seg6Local,
        Feature::IpprotoRules,
    ])
    .map_err(StartError::Kernel)?;
    let kernel = Kernel::connect(cfg.kernel.protocol)
        .await
        .map_err(|e| StartError::Kernel(e.to_string()))?;
    let nft =
        NftMarker::new(&cfg.kernel.nft_table).map_err(|e| StartError::Kernel(e.to_string()))?;
    let (core_cfg, mut polled) = core_config(&cfg, &kernel).await?;
    let (radio, nl80211) = crate::radio::probe(&cfg).await;
    for (p, on) in polled.iter_mut().zip(nl80211) {
        p.nl80211 = on;
    }

    // Restart: whatever a previous run left is removed; the core then installs what it wants.
    let stale = match kernel.reconcile_logged(&HashSet::new(), "start").await {
        Ok(report) => report.removed.len() + report.removed_unrecognised,
        Err(_) => 0,
    } + remove_nft(&nft);
    tracing::info!(
        removed = stale,
        "removed kernel state left by a previous run"
    );
    kernel
        .ensure_local_rule_moved(cfg.kernel.local_rule_pref)
        .await
        .map_err(|e| StartError::Kernel(e.to_string()))?;

    let sock_err = |e: mipcast_kernel::sockets::SocketError| StartError::Kernel(e.to_string());
    let icmp = IcmpSocket::new(&[nd::ROUTER_ADVERTISEMENT]).map_err(sock_err)?;
    icmp.set_multicast_hops(255).map_err(sock_err)?;
    icmp.set_unicast_hops(255).map_err(sock_err)?;
    let mh = MhSocket::new().map_err(sock_err)?;
    let ssm = SsmMembership::new().map_err(sock_err)?;

    let mut registry = Registry::default();
    register_build_info(&mut registry, "mobile-node", env!("CARGO_PKG_VERSION"));
    let metrics = Metrics::register(&mut registry);
    let loop_metrics = LoopMetrics::register(&mut registry);
    let (desk, status) = status_channel();
    let server = MetricsServer::bind(cfg.metrics.listen, Arc::new(registry), desk)
        .await
        .map_err(|source| StartError::Io {
            what: format!("binding the metrics listener {}", cfg.metrics.listen),
            source,
        })?;
    tokio::spawn(server.run());
    let control = match &cfg.control_socket {
        Some(path) => Some(ControlSocket::bind(path).map_err(|source| StartError::Io {
            what: format!("binding the control socket {}", path.display()),
            source,
        })?),
        None => None,
    };
    let signals = Signals::new().map_err(|source| StartError::Io {
        what: "installing signal handlers".to_owned(),
        source,
    })?;

    let state_file: StateFile<Persisted> = StateFile::new(cfg.state_file.clone());
    let persisted = match state_file.load() {
        Ok(p) => p.unwrap_or_default(),
        Err(e) => {
            tracing::warn!(error = %e, "state file unusable; starting with fresh sequence numbers");
            Persisted::default()
        }
    };
    tracing::info!(hoa = %core_cfg.hoa, home_agent = %core_cfg.home_agent, group = %core_cfg.group, mode = ?core_cfg.mode,
        links = ?core_cfg.links.iter().map(|l| &l.name).collect::<Vec<_>>(), "mobile node starting");
    let io = Io {
        clock: SystemClock::new(),
        macs: core_cfg.links.iter().map(|l| (l.ifindex, l.mac)).collect(),
        names: core_cfg
            .links
            .iter()
            .map(|l| (l.ifindex, l.name.clone()))
            .collect(),
        kernel,
        nft,
        ssm,
        icmp,
        mh,
        metrics,
        held: std::cell::RefCell::default(),
        held_rs: std::cell::RefCell::default(),
    };
    let core = Core::new(core_cfg, persisted.clone());
    let counted = count_links(&io, &polled);

    let links = match LinkWatch::open() {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(error = %e, "no netlink link notifications; link changes are seen by polling only");
            None
        }
    };
    let next_link_poll = io.now().mono;
    let carrier = crate::carrier::watch(
        &polled
            .iter()
            .map(|p| (p.ifindex, p.name.clone()))
            .collect::<Vec<_>>(),
    );
    let node = driven::Node {
        cfg,
        io,
        core,
        polled,
        radio,
        control,
        state_file,
        last_persisted: persisted,
        interruption: crate::interruption::Interruption::default(),
        counted,
        links,
        next_link_poll,
        carrier,
        ra_buf: vec![0u8; 2048],
        mh_buf: vec![0u8; 2048],
    };
    let parts = Loop {
        signals,
        status,
        metrics: loop_metrics,
        config_path: opts.config_path,
        keep_kernel_state: opts.keep_kernel_state,
    };
    driver::run(node, parts).await;
    Ok(())
}

impl Io {
    fn now(&self) -> Now {
        self.clock.reading()
    }
}

/// Removes our nftables table; returns the count of groups it counted.
fn remove_nft(nft: &NftMarker) -> usize {
    let removed = nft.groups().map_or_else(
        |e| {
            tracing::debug!(error = %e, "listing nftables groups");
            0
        },
        |groups| groups.len(),
    );
    if let Err(e) = nft.remove_table() {
        tracing::warn!(error = %e, "removing our nftables table");
    }
    removed
}

/// Applies what changes in place; `running` then holds it (the rest keeps its running value).
async fn reload(
    new: Config,
    running: &mut Config,
    io: &Io,
    core: &mut Core,
    polled: &mut [PolledLink],
) -> Result<(), String> {
    let (new_core, new_polled) = core_config(&new, &io.kernel)
        .await
        .map_err(|e| e.to_string())?;
    let changes = core.reload(&new_core);
    for (p, n) in polled.iter_mut().zip(new_polled) {
        if p.quality_file != n.quality_file {
            tracing::info!(link = %p.name, quality_file = ?n.quality_file, "reload: quality file changed");
            p.quality_file = n.quality_file;
            p.quality = None;
        }
    }
    if new
        .interfaces
        .iter()
        .map(|i| &i.name)
        .eq(running.interfaces.iter().map(|i| &i.name))
    {
        for (r, n) in running.interfaces.iter_mut().zip(new.interfaces) {
            (r.preference, r.cost, r.quality_file) = (n.preference, n.cost, n.quality_file);
        }
    }
    running.selection = new.selection;
    running.binding_lifetime = new.binding_lifetime;
    running.handover = new.handover;
    running.security_associations = new.security_associations;
    tracing::debug!(?changes, "reload: the core's settings");
    Ok(())
}

/// A `mobile-node quality set` request: `{"quality": {"link": NAME, "value": 0-100 or null}}`.
#[derive(Debug, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct QualityRequest {
    pub quality: QualitySet,
}

#[derive(Debug, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct QualitySet {
    pub link: String,
    /// None: forget the reading (the link scores as without a quality source).
    pub value: Option<u8>,
}

fn quality_request(line: &str, polled: &[PolledLink]) -> Result<(u32, Option<u8>), String> {
    let req: QualityRequest = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let q = req.quality;
    if q.value.is_some_and(|v| v > 100) {
        return Err("quality must be 0-100".to_owned());
    }
    let link = polled.iter().find(|p| p.name == q.link).ok_or_else(|| {
        format!(
            "no interface {:?} (configured: {})",
            q.link,
            polled
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })?;
    tracing::info!(link = %q.link, value = ?q.value, "quality set through the control socket");
    Ok((link.ifindex, q.value))
}

/// Feeds one event to the core and runs its outputs to completion (see
/// [`mipcast_daemon::driver`]).
async fn apply(io: &Io, core: &mut Core, event: Event<'_>, now: Now) {
    core.handle_input(now, event);
    settle(core, &mut NodeIo { io }).await;
}

/// Counts the tunnelled packets of each access interface (for the interruption
/// histogram); false, with a warning, when nftables refuses.
fn count_links(io: &Io, links: &[PolledLink]) -> bool {
    for l in links {
        if let Err(e) = io.nft.add_link_counter(l.ifindex) {
            tracing::warn!(link = %l.name, error = %e, "no per-link packet counter: handover interruptions are not measured");
            return false;
        }
    }
    true
}

/// One reading of the per-link counters during a move; the link the new path showed on, if
/// it did.
fn sample_interruption(
    io: &Io,
    interruption: &mut crate::interruption::Interruption,
) -> Option<u32> {
    use crate::interruption::Outcome;
    let readings = match io.nft.link_counters() {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(error = %e, "reading the per-link packet counters");
            return None;
        }
    };
    match interruption.sample(&readings, Instant::now()) {
        Outcome::Waiting => None,
        Outcome::Measured(gap, on) => {
            tracing::info!(
                interruption_ms = gap.as_secs_f64() * 1000.0,
                "handover interruption at the terminal (last packet on the old path to the first on the new)"
            );
            io.metrics.handover_interruption.observe(gap.as_secs_f64());
            Some(on)
        }
        Outcome::GaveUp => {
            tracing::debug!(
                "no tunnelled packet on another link within 10 s of the move: interruption not measured"
            );
            None
        }
    }
}

/// The timers due now.
async fn tick(io: &Io, core: &mut Core, now: Now) {
    core.handle_timeout(now);
    settle(core, &mut NodeIo { io }).await;
}

/// The mobile node's I/O for the driver.
struct NodeIo<'a> {
    io: &'a Io,
}

impl Effects<Core> for NodeIo<'_> {
    async fn apply(&mut self, changes: &[KernelChange]) -> Vec<Outcome> {
        let mut outcomes = Vec::with_capacity(changes.len());
        for change in changes {
            outcomes.push(apply_kernel(self.io, change).await);
        }
        outcomes
    }

    async fn send(&mut self, send: Send) {
        let io = self.io;
        match send {
            Send::Rs { ifindex } => send_rs(io, ifindex, self.now()).await,
            Send::Bu(bu) => send_bu(io, bu, self.now()).await,
        }
    }

    fn event(&mut self, event: MetricEvent) {
        self.io.metrics.record(&event);
    }

    fn now(&self) -> Now {
        self.io.now()
    }
}

/// Sends a binding update once its source address is usable. An address we (re-)add when a
/// link comes back is in the kernel at once but becomes local only when the kernel has
/// brought the interface's addresses up again (its RTM_NEWADDR): a BU sent before that
/// leaves, but its BAck is forwarded instead of delivered, and the registration waits for a
/// retransmission 1.5 s later (issue 11, cause 5). So such a BU is held and sent on the
/// address notification; one held longer than [`HOLD_MAX`] is dropped (the core's
/// retransmission takes over).
async fn send_bu(io: &Io, bu: Outgoing, now: Now) {
    if !source_usable(io, bu.src).await {
        tracing::debug!(peer = %bu.peer, src = %bu.src, seq = bu.seq, "binding update held: its source address is not usable yet");
        io.held.borrow_mut().push((now, bu));
        return;
    }
    tracing::debug!(peer = %bu.peer, src = %bu.src, seq = bu.seq, lifetime_s = bu.lifetime_s, retransmission = bu.retransmission, "sending binding update");
    match io
        .mh
        .send_to(&bu.bytes, bu.peer, PacketInfo::ANY.with_source(bu.src))
        .await
    {
        Ok(()) => io.metrics.signalling.sent("binding_update"),
        Err(e) => tracing::warn!(peer = %bu.peer, error = %e, "sending a binding update"),
    }
}

/// How long a binding update waits for its source address.
const HOLD_MAX: Duration = Duration::from_secs(2);

/// An address notification: the held binding updates whose source is usable now go out.
async fn release_held(io: &Io, now: Now) {
    let held_rs = std::mem::take(&mut *io.held_rs.borrow_mut());
    for (at, ifindex) in held_rs {
        if now.mono.saturating_since(at.mono) <= HOLD_MAX {
            send_rs(io, ifindex, at).await;
        }
    }
    let held = std::mem::take(&mut *io.held.borrow_mut());
    for (at, bu) in held {
        if now.mono.saturating_since(at.mono) > HOLD_MAX {
            tracing::debug!(peer = %bu.peer, src = %bu.src, seq = bu.seq, "held binding update dropped: its source never became usable");
            continue;
        }
        send_bu(io, bu, at).await;
    }
}

/// Whether `src` is a local address now (the kernel routes it through the local table).
async fn source_usable(io: &Io, src: Ipv6Addr) -> bool {
    match io.kernel.route_get(src).await {
        Ok(Some(r)) => r.table == mipcast_kernel::route::RT_TABLE_LOCAL,
        Ok(None) => false,
        // Unknown: do not hold messages on a failed lookup.
        Err(e) => {
            tracing::debug!(%src, error = %e, "looking up the source address; sending anyway");
            true
        }
    }
}

async fn send_rs(io: &Io, ifindex: u32, now: Now) {
    let options = io
        .macs
        .get(&ifindex)
        .map(|m| vec![NdOption::SourceLinkLayerAddress(*m)])
        .unwrap_or_default();
    let rs = NdRepr::RouterSolicit { options };
    let mut buf = vec![0u8; rs.buffer_len()];
    match rs.emit(&mut buf) {
        Ok(n) => {
            buf.truncate(n);
            match io
                .icmp
                .send_to(&buf, ALL_ROUTERS, PacketInfo::on(ifindex))
                .await
            {
                Ok(()) => io.metrics.signalling.sent("router_solicitation"),
                // Link-level detection is faster than the kernel's link-local address (or its
                // carrier): the solicitation waits for the next address notification (at most
                // HOLD_MAX) instead of the next retry seconds later.
                Err(e) => {
                    tracing::debug!(ifindex, error = %e, "router solicitation held until the link has an address");
                    io.held_rs.borrow_mut().push((now, ifindex));
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "building a router solicitation"),
    }
}

/// Applies one change; the outcome by the one errno policy (`outcome_of`). Routes and
/// addresses are replaced, so re-adding one that exists is not an error.
async fn apply_kernel(io: &Io, change: &KernelChange) -> Outcome {
    let route = |r: Result<(), RouteError>| r.map_err(|e| (e.errno(), e.to_string()));
    let sock = |r: Result<(), SocketError>| r.map_err(|e| (e.errno(), e.to_string()));
    let nft = |r: Result<(), NftError>| r.map_err(|e| (e.errno(), e.to_string()));
    let result = match change {
        KernelChange::Join(m) => sock(io.ssm.join(m.ifindex, m.group, m.source)),
        KernelChange::Leave(m) => sock(io.ssm.leave(m.ifindex, m.group, m.source)),
        KernelChange::AddAddress(a) => {
            let added = route(io.kernel.replace(&a.object()).await);
            if added.is_ok() && crate::announce::unsolicited_na(&io.icmp, &io.macs, a).await {
                io.metrics.signalling.sent("neighbor_advertisement");
            }
            added
        }
        KernelChange::RemoveAddress(a) => route(io.kernel.delete(&a.object()).await),
        KernelChange::MarkGroup(g) => nft(io.nft.add_group(*g)),
        KernelChange::UnmarkGroup(g) => nft(io.nft.remove_group(*g)),
        KernelChange::Install(o) => route(io.kernel.replace(o).await),
        KernelChange::Remove(o) => route(io.kernel.delete(o).await),
        KernelChange::SetDefaultRoute(r) => route(io.kernel.replace(&r.object()).await),
        KernelChange::RemoveDefaultRoute(r) => route(io.kernel.delete(&r.object()).await),
        // "Already so" is told apart: an interface found up is not ours to put down.
        KernelChange::SetLinkUp(i) | KernelChange::SetLinkDown(i) => {
            let up = matches!(change, KernelChange::SetLinkUp(_));
            match io.kernel.set_link_admin(*i, up).await {
                Ok(false) if up => return Outcome::AlreadyPresent,
                Ok(false) => return Outcome::AlreadyGone,
                other => route(other.map(|_| ())),
            }
        }
    };
    match result {
        Ok(()) => {
            tracing::debug!(?change, "kernel change applied");
            Outcome::Applied
        }
        Err((errno, text)) => {
            let outcome = outcome_of(errno, || text);
            tracing::debug!(?change, ?outcome, "kernel change not applied as asked");
            outcome
        }
    }
}

/// Updates the per-link gauges and the current-attachment info metric.
fn publish(core: &Core, io: &Io, now: Millis) {
    io.metrics.set_links(&core.status(now).links);
    let (kind, link, mma) = match core.attachment() {
        Attach::Detached => ("detached", None, None),
        Attach::Home { ifindex } => ("home", Some(ifindex), None),
        Attach::Site { ifindex, mma } => ("site", Some(ifindex), Some(mma)),
        Attach::Mipv6 { ifindex, .. } => ("mipv6", Some(ifindex), None),
    };
    let name = link
        .and_then(|i| io.names.get(&i).cloned())
        .unwrap_or_default();
    let show = |a: Option<Ipv6Addr>| a.map(|a| a.to_string()).unwrap_or_default();
    io.metrics.set_current(CurrentLabels {
        attachment: kind.to_owned(),
        link: name,
        mma: show(mma),
        coa: show(core.care_of_address()),
    });
}
