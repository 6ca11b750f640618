//! The I/O shell: opens the sockets and the MRT6 table, feeds the core with packets, upcalls,
//! RPF answers and clock ticks, and carries out its actions.
use mipcast_daemon::cli::RunOptions;
use std::collections::BTreeMap;
use std::net::Ipv6Addr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use mipcast_daemon::clock::{Clock, Millis, SystemClock};
use mipcast_daemon::driver::{self, settle, Effects, Loop, LoopMetrics, Removal};
use mipcast_daemon::logsummary::LogSummary;
use mipcast_daemon::metrics::signalling::Direction;
use mipcast_daemon::metrics::{register_build_info, MetricsServer};
use mipcast_daemon::signals::Signals;
use mipcast_daemon::status::{encode, status_channel, Snapshot, StatusDesk, StatusRequests};
use mipcast_kernel::mrt6::{self, Mrt6};
use mipcast_kernel::probe::{self, Feature};
use mipcast_kernel::route::{outcome_of, Kernel, RouteError, RTPROT_MIPCAST};
use mipcast_kernel::sockets::{
    IcmpSocket, PacketInfo, PimSocket, SocketError, ALL_MLDV2_ROUTERS, ALL_ROUTERS,
};
use mipcast_proto::{Machine, Now, Outcome};
use prometheus_client::registry::Registry;

use crate::config::{Config, Role};
use crate::core::machine::{Change, Event, Input};
use crate::core::{IfaceAddrs, Packet, Proto, Router, RpfRoute, Rx, Sg, UpcallKind};
use crate::counters::Installed;
use crate::metrics::Metrics;

mod driven;

/// How often interface addresses are re-read. Changes arrive as netlink notifications at
/// once ([`LinkWatch`]: an access interface coming back advertises again within
/// milliseconds); the poll only catches notifications the socket dropped.
const ADDRESS_REFRESH: Duration = Duration::from_secs(2);
/// How often kernel counters and gauges are refreshed when nothing happens. (`/status` is
/// not refreshed: it is built when asked, see [`Shell::status`].)
const STATUS_REFRESH: Duration = Duration::from_millis(500);
/// How soon after the last refresh a state change shows in the gauges.
const STATUS_AFTER_CHANGE: Duration = Duration::from_millis(100);
/// The gap after a refresh is at least this many times what it took.
const STATUS_COST_SHARE: u32 = 10;
/// How soon a refresh is tried again when the previous one is still running.
const STATUS_BUSY_RETRY: Duration = Duration::from_millis(10);
/// PIM messages handled before their changes are applied together.
const PIM_BURST: usize = 64;
/// The PIM socket's receive buffer: a downstream router may send thousands of (S,G) Joins in
/// a few hundred back-to-back messages (10,000 Joins of 30 groups: about 334 messages of
/// ~1.2 KiB), more than the default ~208 KiB holds while MFC entries are being installed.
const PIM_RECV_BUFFER: usize = 4 << 20;
/// ICMPv6 types each socket passes.
const MLD_TYPES: [u8; 4] = [130, 131, 132, 143];
const RS_TYPES: [u8; 1] = [mipcast_wire::nd::ROUTER_SOLICITATION];

#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    #[error("cannot start the tokio runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot start the MFC counter thread: {0}")]
    CounterThread(std::io::Error),
    #[error("{0}")]
    MissingFeature(String),
    #[error("netlink: {0}")]
    Route(Box<RouteError>),
    #[error("{0}")]
    Socket(#[from] SocketError),
    #[error("interface {name} (interfaces[{index}]): {source}")]
    Interface {
        name: String,
        index: usize,
        source: Box<RouteError>,
    },
    #[error(
        "interface {name}: {source} (a kernel multicast routing table has at most {max} \
         multicast interfaces; configure fewer interfaces)",
        max = mrt6::MAX_MIFS
    )]
    TooManyMifs { name: String, source: SocketError },
    #[error("metrics listener {addr}: {source}")]
    Metrics {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("reading interface addresses: {0}")]
    Addresses(nix::Error),
}

/// Runs the daemon until SIGTERM/SIGINT.
pub fn run(config: Config, opts: RunOptions) -> Result<(), ShellError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ShellError::Runtime)?;
    rt.block_on(async {
        let (shell, status, metrics) = Shell::open(config, opts).await?;
        shell.run_loop(status, metrics).await
    })
}

struct Sockets {
    mld: IcmpSocket,
    nd: IcmpSocket,
    pim: PimSocket,
}

struct Shell {
    config: Config,
    opts: RunOptions,
    clock: SystemClock,
    kernel: Kernel,
    /// Shared with the refresh's background half ([`Shell::refresh_status`]).
    mrt: Arc<Mrt6>,
    sockets: Sockets,
    router: Router,
    metrics: Arc<Metrics>,
    /// Why closing the MRT6 table failed at stop ([`Shell::remove_installed`]).
    close_error: Option<SocketError>,
    /// (S,G) entries we installed in the kernel; their counters are read off the loop.
    installed: Installed,
    /// Lines a host can cause once per packet (send and upcall errors) are summarised.
    log_limit: LogSummary,
    names: BTreeMap<u32, String>,
    next_addresses: Millis,
    next_status: Millis,
    last_status: Millis,
    /// How long the last refresh of counters and gauges took.
    status_cost: Duration,
}

impl Shell {
    /// Runs the daemon on the daemons' one event loop ([`driven`]) until SIGTERM/SIGINT.
    async fn run_loop(
        self,
        status: StatusRequests,
        metrics: LoopMetrics,
    ) -> Result<(), ShellError> {
        let parts = Loop {
            signals: Signals::new().map_err(ShellError::Signals)?,
            status,
            metrics,
            config_path: self.opts.config_path.clone(),
            keep_kernel_state: self.opts.keep_kernel_state,
        };
        driver::run(driven::Driven::new(self), parts).await
    }

    /// What each turn of the loop does before it waits: the round's outputs, then the status
    /// refresh and the address poll when due.
    async fn turn(&mut self) {
        let changed = self.drive().await;
        let now = self.clock.now();
        // A change brings the refresh forward to at most STATUS_AFTER_CHANGE from the
        // last one: the gauges follow an MFC entry promptly, but a host flooding reports
        // cannot make us read every counter once per packet.
        // With thousands of entries the counter reads cost milliseconds: the gaps grow
        // with them so that they take at most a tenth of the time. They run off the
        // event loop (see `refresh_status`); what stays on it are a few counts, so that
        // a Join is not held up behind it.
        if changed {
            let gap = STATUS_AFTER_CHANGE.max(self.status_cost * STATUS_COST_SHARE);
            self.next_status = self.next_status.min(self.last_status + gap);
        }
        if self.next_status <= now {
            if self.installed.busy() {
                // The previous refresh's background half still runs: look again soon.
                self.next_status = now + STATUS_BUSY_RETRY;
            } else {
                let started = std::time::Instant::now();
                self.refresh_status();
                let on_loop = started.elapsed();
                let background = self.installed.last_cost();
                tracing::debug!(
                    on_loop_us = on_loop.as_micros(),
                    previous_background_us = background.as_micros(),
                    mfc_entries = self.installed.len(),
                    "counters and gauges refresh"
                );
                self.status_cost = on_loop + background;
                self.last_status = now;
                self.next_status = now + STATUS_REFRESH.max(self.status_cost * STATUS_COST_SHARE);
            }
        }
        self.log_limit.flush(now);
        if self.next_addresses <= now {
            self.refresh_addresses();
            self.next_addresses = now + ADDRESS_REFRESH;
        }
    }

    /// Runs the router's outputs to completion (see [`mipcast_daemon::driver`]), feeding
    /// RPF answers back until none is asked for; true when there was anything to do (the
    /// state changed).
    async fn drive(&mut self) -> bool {
        let mut any = false;
        loop {
            let mut io = PimIo {
                clock: self.clock,
                kernel: &self.kernel,
                mrt: &self.mrt,
                sockets: &self.sockets,
                metrics: &self.metrics,
                names: &self.names,
                installed: &mut self.installed,
                log_limit: &mut self.log_limit,
                answers: Vec::new(),
                outputs: 0,
            };
            settle(&mut self.router, &mut io).await;
            any |= io.outputs > 0;
            let answers = io.answers;
            if answers.is_empty() {
                return any;
            }
            for (source, route) in answers {
                self.router
                    .handle_input(self.clock.reading(), Input::Rpf { source, route });
            }
        }
    }

    fn refresh_addresses(&mut self) {
        match read_addresses(&self.names) {
            Ok(all) => {
                let now = self.clock.reading();
                for (ifindex, addrs) in all {
                    self.router
                        .handle_input(now, Input::Addresses { ifindex, addrs });
                }
            }
            Err(e) => tracing::warn!("{e}"),
        }
    }

    /// Gauges from the router's counts (cheap at any table size), then the kernel counters
    /// of every installed MFC entry on the counter thread (a read per entry: about 9 ms at
    /// 10,000 entries on a 2-vCPU guest), so that the event loop keeps handling Joins.
    fn refresh_status(&mut self) {
        self.metrics.sync(self.router.stats());
        for (&ifindex, name) in &self.names {
            if let Some(q) = self.router.is_querier(ifindex) {
                self.metrics.set_querier(name, q);
            }
            self.metrics
                .set_neighbors(name, self.router.neighbor_count(ifindex));
            if let Some(dr) = self.router.is_dr(ifindex) {
                self.metrics.set_dr(name, dr);
            }
            if let Some(n) = self.router.listener_group_count(ifindex) {
                self.metrics.set_listener_groups(name, n);
            }
            if let Some(n) = self.router.downstream_join_count(ifindex) {
                self.metrics.set_downstream_joins(name, n);
            }
        }
        self.metrics
            .set_counts(self.router.sg_count(), self.installed.len());
        // The counter thread is idle here (the loop checked `busy`).
        self.installed.read_counters();
    }

    /// Applies what changes in place (the router refuses what it cannot change running,
    /// such as an interface added or PIM turned off: then nothing changes).
    fn reload(&mut self, mut new: Config) -> Result<(), String> {
        new.mrt6 = self.config.mrt6.clone();
        new.metrics = self.config.metrics.clone();
        let changes = self
            .router
            .reload(&crate::core::settings::Settings::from(&new))?;
        for c in changes {
            tracing::info!("reload: {c}");
        }
        self.config = new;
        Ok(())
    }

    /// `/status`: the router's snapshot, built now; each installed entry's kernel counters
    /// are read off the loop, where the document is encoded. Without the MRT6 socket
    /// (shutdown) the document goes without counters.
    fn status(&self) -> Snapshot {
        let started = std::time::Instant::now();
        let mut status = self.router.status(self.clock.now());
        tracing::debug!(
            build_us = started.elapsed().as_micros(),
            sg = status.sg.len(),
            "/status snapshot built on request"
        );
        let mrt = Arc::downgrade(&self.mrt);
        Snapshot::finish_with(move || {
            if let Some(mrt) = mrt.upgrade() {
                for sg in status.sg.iter_mut().filter(|s| s.mfc_installed) {
                    match mrt.sg_counters(sg.source, sg.group) {
                        Ok(c) => {
                            sg.packets = Some(c.packets);
                            sg.bytes = Some(c.bytes);
                            sg.wrong_if = Some(c.wrong_if);
                        }
                        Err(e) => tracing::debug!("{e}"),
                    }
                }
            }
            encode(&status)
        })
    }

    /// Goodbyes first (PIM Hello with holdtime 0, Prunes upstream), then the counter thread
    /// stops.
    async fn stop(&mut self) {
        self.router
            .handle_input(self.clock.reading(), Input::Shutdown);
        self.drive().await;
        self.installed.stop();
        if self.opts.keep_kernel_state {
            tracing::warn!("--keep-kernel-state: MRT6 entries cannot outlive the multicast routing socket; the kernel flushes them anyway");
        }
    }

    /// MRT6_DONE: the kernel flushes our MFC entries and MIFs.
    fn remove_installed(&mut self) -> Removal {
        let removed = self.installed.len() + self.names.len();
        match self.mrt.close() {
            Ok(()) => Removal { removed, failed: 0 },
            Err(e) => {
                tracing::warn!(table = self.mrt.table(), error = %e, "closing the MRT6 table");
                self.close_error = Some(e);
                Removal { removed, failed: 1 }
            }
        }
    }

    /// The MRT6 table is closed by now, or here (kept state): a failure to close it is the
    /// daemon's exit status.
    fn exit(mut self) -> Result<(), ShellError> {
        match self.close_error.take() {
            Some(e) => Err(e.into()),
            None => Ok(self.mrt.close()?),
        }
    }
}

impl Shell {
    /// Sets pim-lite up; with it, the loop's `/status` requests and metrics for
    /// [`Shell::run_loop`].
    async fn open(
        config: Config,
        opts: RunOptions,
    ) -> Result<(Shell, StatusRequests, LoopMetrics), ShellError> {
        let caps = probe::probe()
            .await
            .map_err(|e| ShellError::Route(Box::new(e)))?;
        let mut needed = vec![Feature::Mrt6];
        if config.mrt6.table != mrt6::DEFAULT_TABLE {
            needed.push(Feature::Mrt6Tables);
        }
        caps.require(&needed).map_err(ShellError::MissingFeature)?;

        let kernel = Kernel::connect(RTPROT_MIPCAST)
            .await
            .map_err(|e| ShellError::Route(Box::new(e)))?;
        let mut names = BTreeMap::new();
        let mut ifindexes = Vec::new();
        for (index, ic) in config.interfaces.iter().enumerate() {
            let ifindex =
                kernel
                    .ifindex(&ic.name)
                    .await
                    .map_err(|source| ShellError::Interface {
                        name: ic.name.clone(),
                        index,
                        source: Box::new(source),
                    })?;
            names.insert(ifindex, ic.name.clone());
            ifindexes.push(ifindex);
        }

        let table = (config.mrt6.table != mrt6::DEFAULT_TABLE).then_some(config.mrt6.table);
        let mrt = Mrt6::open(table)?;
        // WRONGMIF upcalls: data on an outgoing link means another forwarder there (Assert).
        mrt.set_assert(true)?;
        // Opening succeeded, so no other socket owns the table, and the kernel flushed
        // whatever a previous owner (an earlier pim-lite) left when its socket closed: the
        // table starts empty and is rebuilt from what MLD and PIM teach us again.
        tracing::info!(
            table = mrt.table(),
            "MRT6 table opened empty; state is relearned from MLD reports and PIM Joins"
        );
        for (ic, &ifindex) in config.interfaces.iter().zip(&ifindexes) {
            let mif = mrt.add_mif(ifindex).map_err(|source| match source {
                SocketError::MifTableFull { .. } => ShellError::TooManyMifs {
                    name: ic.name.clone(),
                    source,
                },
                other => ShellError::Socket(other),
            })?;
            tracing::info!(interface = %ic.name, ifindex, mif = mif.index(), role = %ic.role, "multicast interface added");
        }

        let sockets = open_sockets(&config, &ifindexes)?;
        let clock = SystemClock::new();
        let now = clock.now();
        let all = read_addresses(&names).map_err(ShellError::Addresses)?;
        let ifaces = ifindexes
            .iter()
            .map(|i| (*i, all.get(i).cloned().unwrap_or_default()))
            .collect();
        let router = Router::new(
            &crate::core::settings::Settings::from(&config),
            ifaces,
            now,
            seed(),
        );

        let mut registry = Registry::default();
        register_build_info(&mut registry, "pim-lite", env!("CARGO_PKG_VERSION"));
        let metrics = Metrics::register(&mut registry);
        let mrt = Arc::new(mrt);
        let loop_metrics = LoopMetrics::register(&mut registry);
        let (desk, status_requests) = status_channel();
        let addr = config.metrics.listen;
        let metrics = Arc::new(metrics);
        let installed = Installed::start(Arc::clone(&mrt), Arc::clone(&metrics))
            .map_err(ShellError::CounterThread)?;
        spawn_metrics_server(addr, Arc::new(registry), desk)
            .map_err(|source| ShellError::Metrics { addr, source })?;
        tracing::info!(metrics = %addr, interfaces = names.len(), "pim-lite running");

        let shell = Shell {
            config,
            opts,
            clock,
            kernel,
            mrt,
            sockets,
            router,
            metrics,
            close_error: None,
            installed,
            log_limit: LogSummary::default(),
            names,
            next_addresses: now + ADDRESS_REFRESH,
            next_status: now,
            last_status: now,
            status_cost: Duration::ZERO,
        };
        Ok((shell, status_requests, loop_metrics))
    }
}

/// Serves `/metrics` and `/status` from a thread of its own: scrapes, and the counters and
/// encoding of a `/status` document, stay off the thread that forwards joins.
fn spawn_metrics_server(
    addr: std::net::SocketAddr,
    registry: Arc<Registry>,
    status: StatusDesk,
) -> std::io::Result<()> {
    let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            rt.block_on(async move {
                match MetricsServer::bind(addr, registry, status).await {
                    Ok(server) => {
                        let _ = ready_tx.send(Ok(()));
                        server.run().await;
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            });
        })?;
    ready_rx
        .recv()
        .unwrap_or_else(|_| Err(std::io::Error::other("the metrics thread ended at start")))
}

fn open_sockets(config: &Config, ifindexes: &[u32]) -> Result<Sockets, ShellError> {
    let mld = IcmpSocket::new(&MLD_TYPES)?;
    mld.set_router_alert(true)?;
    mld.set_multicast_hops(1)?;
    let nd = IcmpSocket::new(&RS_TYPES)?;
    nd.set_multicast_hops(255)?;
    nd.set_unicast_hops(255)?;
    let pim = PimSocket::new()?;
    match pim.set_recv_buffer(PIM_RECV_BUFFER) {
        Ok(granted) if granted < PIM_RECV_BUFFER => tracing::warn!(
            asked = PIM_RECV_BUFFER,
            granted,
            "PIM socket receive buffer smaller than asked (net.core.rmem_max; SO_RCVBUFFORCE needs CAP_NET_ADMIN): a burst of Join/Prunes may be dropped"
        ),
        Ok(granted) => tracing::debug!(granted, "PIM socket receive buffer"),
        Err(e) => tracing::warn!(
            error = %e,
            "cannot enlarge the PIM socket receive buffer: a burst of Join/Prunes may be dropped"
        ),
    }
    for (ic, &ifindex) in config.interfaces.iter().zip(ifindexes) {
        match ic.role {
            Role::Access => {
                mld.join(ALL_MLDV2_ROUTERS, ifindex)?;
                if ic.ra.is_some() {
                    nd.join(ALL_ROUTERS, ifindex)?;
                }
                // Other routers' Hellos and Asserts on the access link (DR election).
                if ic.pim {
                    pim.join_all_pim_routers(ifindex)?;
                }
            }
            Role::Core => pim.join_all_pim_routers(ifindex)?,
        }
    }
    Ok(Sockets { mld, nd, pim })
}

fn received<'a>(
    r: Result<mipcast_kernel::sockets::Received, SocketError>,
    buf: &'a [u8],
    what: &str,
) -> Option<(Rx, &'a [u8])> {
    let with_bytes = r.map(|r| {
        let len = r.len;
        (r, buf.get(..len).unwrap_or_default())
    });
    received_drained(with_bytes, what)
}

/// [`received`] for a message handed over with its bytes (as a socket's `drain` does).
fn received_drained<'a>(
    r: Result<(mipcast_kernel::sockets::Received, &'a [u8]), SocketError>,
    what: &str,
) -> Option<(Rx, &'a [u8])> {
    match r {
        Ok((r, bytes)) => Some((
            Rx {
                ifindex: r.ifindex,
                source: r.source,
                destination: r.destination,
                hop_limit: r.hop_limit,
            },
            bytes,
        )),
        Err(e) => {
            tracing::debug!("{what} socket: {e}");
            None
        }
    }
}

/// Link-local and global addresses and MACs of the named interfaces, by ifindex.
fn read_addresses(names: &BTreeMap<u32, String>) -> Result<BTreeMap<u32, IfaceAddrs>, nix::Error> {
    let by_name: BTreeMap<&str, u32> = names.iter().map(|(&i, n)| (n.as_str(), i)).collect();
    let mut out: BTreeMap<u32, IfaceAddrs> = BTreeMap::new();
    for ifa in nix::ifaddrs::getifaddrs()? {
        let Some(&ifindex) = by_name.get(ifa.interface_name.as_str()) else {
            continue;
        };
        let entry = out.entry(ifindex).or_default();
        let Some(addr) = ifa.address else {
            continue;
        };
        if let Some(sin6) = addr.as_sockaddr_in6() {
            let ip: Ipv6Addr = sin6.ip();
            if ip.is_unicast_link_local() {
                entry.link_local.get_or_insert(ip);
            } else if !ip.is_loopback() && !ip.is_multicast() && !ip.is_unspecified() {
                entry.globals.push(ip);
            }
        } else if let Some(link) = addr.as_link_addr() {
            entry.mac = link.addr().filter(|m| m.iter().any(|&b| b != 0));
        }
    }
    for addrs in out.values_mut() {
        addrs.globals.sort();
        addrs.globals.dedup();
    }
    Ok(out)
}

/// Seeds protocol jitter and generation ids: differs per process and start.
fn seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    (t as u64) ^ (u64::from(std::process::id()) << 32)
}

/// Loads and validates a configuration file (for `--check-config` and start-up).
pub fn load_config(path: &Path) -> Result<Config, mipcast_daemon::config::ConfigError> {
    mipcast_daemon::config::load(path)
}

/// The shell's I/O for the driver, borrowed from [`Shell`] beside its router.
struct PimIo<'a> {
    clock: SystemClock,
    kernel: &'a Kernel,
    mrt: &'a Mrt6,
    sockets: &'a Sockets,
    metrics: &'a Metrics,
    names: &'a BTreeMap<u32, String>,
    installed: &'a mut Installed,
    log_limit: &'a mut LogSummary,
    /// RPF answers to feed back once the round is done.
    answers: Vec<(Ipv6Addr, Option<RpfRoute>)>,
    /// Outputs carried out (any means the state changed).
    outputs: usize,
}

impl PimIo<'_> {
    fn name(&self, ifindex: u32) -> String {
        self.names
            .get(&ifindex)
            .cloned()
            .unwrap_or_else(|| format!("ifindex {ifindex}"))
    }

    fn mfc_add(
        &mut self,
        sg: Sg,
        iif: u32,
        oifs: &[u32],
        interest_since: Option<Millis>,
    ) -> Outcome {
        let Some(iif_mif) = self.mrt.mif_of(iif) else {
            tracing::warn!(source = %sg.source, group = %sg.group, "no MIF for the incoming interface {}", self.name(iif));
            return Outcome::Refused {
                errno: None,
                reason: format!("no MIF for {}", self.name(iif)),
            };
        };
        let oif_mifs: Vec<_> = oifs.iter().filter_map(|&i| self.mrt.mif_of(i)).collect();
        let asked = std::time::Instant::now();
        let added = self.mrt.add_mfc(sg.source, sg.group, iif_mif, &oif_mifs);
        tracing::debug!(source = %sg.source, group = %sg.group, elapsed_us = asked.elapsed().as_micros(), "MRT6_ADD_MFC");
        match added {
            Ok(()) => {
                // A negative entry (no outgoing interface, see `core::hold`) forwards nothing.
                if oifs.is_empty() {
                    self.installed.remove(&sg);
                } else {
                    self.installed.insert(sg);
                }
                if let Some(since) = interest_since {
                    let latency = self.clock.now().saturating_since(since);
                    self.metrics.observe_join_to_mfc(latency.as_secs_f64());
                    // A downstream router joining thousands of channels at once would
                    // otherwise write a line per entry; the histogram has them all.
                    if let Some(suppressed) =
                        self.log_limit.admit("mfc_installed", self.clock.now())
                    {
                        tracing::info!(source = %sg.source, group = %sg.group, latency_ms = latency.as_millis(), suppressed, "MFC entry installed after first interest");
                    }
                }
                Outcome::Applied
            }
            Err(e) => outcome_of(e.errno(), || e.to_string()),
        }
    }

    fn mfc_del(&mut self, sg: Sg) -> Outcome {
        self.installed.remove(&sg);
        self.metrics.remove_sg(sg);
        match self.mrt.del_mfc(sg.source, sg.group) {
            Ok(()) => Outcome::Applied,
            Err(e) => {
                let outcome = outcome_of(e.errno(), || e.to_string());
                if !outcome.reached(true) {
                    tracing::warn!("{e}");
                }
                outcome
            }
        }
    }

    async fn lookup_rpf(&mut self, source: Ipv6Addr) {
        let asked = std::time::Instant::now();
        let answer = self.kernel.route_get(source).await;
        tracing::debug!(%source, elapsed_us = asked.elapsed().as_micros(), "RPF lookup");
        let route = match answer {
            Ok(r) => r.map(|l| RpfRoute {
                ifindex: l.oif,
                gateway: l.gateway,
            }),
            Err(e) => {
                tracing::warn!(%source, "RPF lookup failed: {e}");
                None
            }
        };
        self.answers.push((source, route));
    }
}

impl Effects<Router> for PimIo<'_> {
    async fn apply(&mut self, changes: &[Change]) -> Vec<Outcome> {
        let mut outcomes = Vec::with_capacity(changes.len());
        for change in changes {
            self.outputs += 1;
            outcomes.push(match change {
                Change::MfcAdd {
                    sg,
                    iif,
                    oifs,
                    interest_since,
                } => self.mfc_add(*sg, *iif, oifs, *interest_since),
                Change::MfcDel { sg } => self.mfc_del(*sg),
                Change::LookupRpf(source) => {
                    self.lookup_rpf(*source).await;
                    Outcome::Applied
                }
            });
        }
        outcomes
    }

    async fn send(&mut self, p: Packet) {
        self.outputs += 1;
        let info = PacketInfo::on(p.ifindex).with_source(p.source);
        let (result, proto) = match p.proto {
            Proto::Mld => (
                self.sockets
                    .mld
                    .send_to(&p.bytes, p.destination, info)
                    .await,
                "mld",
            ),
            Proto::Nd => (
                self.sockets.nd.send_to(&p.bytes, p.destination, info).await,
                "nd",
            ),
            Proto::Pim => (
                self.sockets
                    .pim
                    .send_to(&p.bytes, p.destination, info)
                    .await,
                "pim",
            ),
        };
        if result.is_ok() {
            self.metrics.signalling(Direction::Sent, p.proto, &p.bytes);
        }
        if let Err(e) = result {
            self.metrics.send_error(proto);
            if let Some(suppressed) = self.log_limit.admit("send_error", self.clock.now()) {
                tracing::warn!(interface = %self.name(p.ifindex), suppressed, "{e}");
            }
        }
    }

    fn event(&mut self, event: Event) {
        match event {}
    }

    fn now(&self) -> Now {
        self.clock.reading()
    }
}
