//! The tokio I/O shell: the Mobility Header socket, the kernel, timers, signals, the state
//! file and the metrics listener around the pure [`Core`]. Generic over the [`Agent`] that
//! runs it: the home agent, or the correspondent agent (no home link: no neighbour proxy).
use mipcast_daemon::cli::RunOptions;
use std::collections::HashSet;
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use mipcast_binding::{BindingRecord, Registrar};
use mipcast_daemon::clock::{Clock, SystemClock};
use mipcast_daemon::driver::{
    self, lock, or_never, settle, Effects, Loop, LoopMetrics, ReloadDiff, Removal, Shell,
};
use mipcast_daemon::logsummary::LogSummary;
use mipcast_daemon::metrics::{register_build_info, MetricsServer};
use mipcast_daemon::signals::Signals;
use mipcast_daemon::state::{BindingEntry, Journal, StateError, StateFile};
use mipcast_daemon::status::{status_channel, Snapshot};

/// The agent's binding record in the state journal.
type HaRecord = BindingEntry<()>;
use mipcast_kernel::packet::{self, NdSocket};
use mipcast_kernel::probe::{self, Feature};
use mipcast_kernel::route::{Kernel, Op, RouteError};
use mipcast_kernel::sockets::{MhSocket, PacketInfo};
use mipcast_proto::{KObject, Machine, Now, Outcome};
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use crate::agent::{Agent, Settings};
use crate::config::ProxyMode;
use crate::core::neighbour::LinkIdentity;
use crate::core::{BindingStatus, Change, Core, Event, Input, Send};
use crate::metrics::Metrics;

/// Messages handled before the kernel is programmed and the replies go out: large enough to
/// amortise netlink batches under load, small enough to keep BAck latency low.
const MAX_BURST: usize = 512;
/// Room for any Mobility Header (its length field allows 2048 bytes).
const RECV_BUFFER: usize = 4096;
/// Socket receive buffer: BUs that arrive while a burst is being programmed wait here. The
/// default (~208 KiB) overflowed above ~200 queued BUs; this holds tens of thousands.
const SOCKET_RECV_BUFFER: usize = 32 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    #[error("{0}")]
    Kernel(#[from] RouteError),
    #[error("{0}")]
    MissingFeature(String),
    #[error("cannot start the tokio runtime: {0}")]
    Runtime(std::io::Error),
    #[error("opening the Mobility Header socket: {0}")]
    Socket(#[from] mipcast_kernel::sockets::SocketError),
    #[error("metrics listener {addr}: {source}")]
    Metrics {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("{0}")]
    State(#[from] StateError),
    #[error("configuration: {0}")]
    Config(String),
    #[error("home link {interface}: cannot open the packet socket for neighbour solicitations (home_link.proxy: user needs CAP_NET_RAW): {source}")]
    NdSocket {
        interface: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Sysctl {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What survives a restart.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct SavedState {
    pub bindings: Vec<BindingRecord<()>>,
    /// Namespace settings as they were before we changed them, restored at a clean stop.
    /// Kept here so that a restart after a crash still knows the original values.
    #[serde(default)]
    pub original: Originals,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Originals {
    /// `net.ipv6.conf.<home-if>.proxy_ndp` before we set it to 1 (None: we did not change it;
    /// always None at a correspondent).
    pub proxy_ndp: Option<String>,
    /// The seg6 tunnel source before we set it to our address (None: we did not change it).
    pub seg6_tunsrc: Option<Ipv6Addr>,
}

/// Runs the daemon until SIGTERM/SIGINT.
pub fn run<A: Agent>(config: A, options: RunOptions) -> Result<(), ShellError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ShellError::Runtime)?
        .block_on(run_async(config, options))
}

struct Daemon<A: Agent> {
    core: Arc<Mutex<Core<A::Policy>>>,
    /// The running configuration (SIGHUP replaces what changes in place).
    config: A,
    /// What the shell reads from it (fixed until a restart).
    settings: Settings,
    /// Receive buffers of the Mobility Header socket and the neighbour proxy's.
    buf: Vec<u8>,
    nd_buf: Vec<u8>,
    kernel: Kernel,
    socket: MhSocket,
    metrics: Metrics,
    clock: SystemClock,
    /// The ifindex of [`Settings::interface`].
    ifindex: u32,
    /// The state journal: every round's binding changes are appended and synced before the
    /// round's replies leave, so an acknowledged binding survives kill -9.
    journal: Journal<HaRecord>,
    originals: Originals,
    /// Per-packet log lines (refusals, drops) are summarised, not written one per packet.
    log_limit: LogSummary,
    state_path: PathBuf,
    /// Our address.
    me: Ipv6Addr,
    /// Home addresses whose binding changed in the round being settled.
    touched: Vec<Ipv6Addr>,
    /// The user-space neighbour proxy (`home_link.proxy: user`).
    responder: Option<Responder>,
    /// Home addresses registered in the round just settled, to announce on the home link.
    announce: Vec<Ipv6Addr>,
}

/// The home link's packet socket and who we are on it.
struct Responder {
    socket: NdSocket,
    me: LinkIdentity,
}

/// Largest frame we read: an NS is 86 bytes; anything longer is not one we answer.
const ND_FRAME_BUFFER: usize = 1600;

async fn run_async<A: Agent>(config: A, options: RunOptions) -> Result<(), ShellError> {
    let caps = probe::probe().await?;
    caps.require(&[
        Feature::Seg6Encap,
        Feature::Seg6Local,
        Feature::IpprotoRules,
    ])
    .map_err(ShellError::MissingFeature)?;
    let settings = config.settings();
    let kernel = Kernel::connect(settings.kernel.protocol).await?;
    let ifindex = kernel.ifindex(&settings.interface).await?;
    let me = settings.address;

    let (journal, saved) = open_journal(&settings.state_file, me)?;

    let originals = prepare_namespace(&kernel, &settings, saved.original.clone()).await?;

    let sas = config
        .sa_table()
        .map_err(|e| ShellError::Config(e.to_string()))?;
    let policy = config
        .policy()
        .map_err(|e| ShellError::Config(e.to_string()))?;
    let registrar = Registrar::new(config.registrar_config(), sas.clone(), policy)
        .map_err(|e| ShellError::Config(e.to_string()))?;
    let plan = config.plan(ifindex);
    let responder = match settings.proxy {
        Some(ProxyMode::User) => {
            let interface = &settings.interface;
            let nd_error = |source| ShellError::NdSocket {
                interface: interface.clone(),
                source,
            };
            let mac = packet::mac_of(interface).map_err(nd_error)?;
            // Link-local as the kernel would use; the configured address when there is none.
            let address = packet::link_local_of(interface)
                .map_err(nd_error)?
                .unwrap_or(me);
            let socket = NdSocket::open(ifindex).map_err(nd_error)?;
            Some(Responder {
                socket,
                me: LinkIdentity { mac, address },
            })
        }
        _ => None,
    };
    let limiter = config.budgets();
    let clock = SystemClock::new();
    let core = Arc::new(Mutex::new(Core::new(registrar, sas, plan, limiter)));

    let mut registry = Registry::default();
    let metrics = Metrics::new(&mut registry, &A::METRICS);
    register_build_info(&mut registry, A::NAME, env!("CARGO_PKG_VERSION"));

    let socket = MhSocket::new()?;
    match socket.set_recv_buffer(SOCKET_RECV_BUFFER) {
        Ok(granted) => debug!(granted, "Mobility Header socket receive buffer"),
        Err(e) => warn!(error = %e, "cannot enlarge the Mobility Header receive buffer"),
    }
    let mut daemon: Daemon<A> = Daemon {
        core: Arc::clone(&core),
        config,
        settings: settings.clone(),
        buf: vec![0u8; RECV_BUFFER],
        nd_buf: vec![0u8; ND_FRAME_BUFFER],
        kernel,
        socket,
        metrics,
        clock,
        ifindex,
        journal,
        originals,
        log_limit: LogSummary::default(),
        state_path: settings.state_file.clone(),
        me,
        touched: Vec::new(),
        responder,
        announce: Vec::new(),
    };
    let started = std::time::Instant::now();
    daemon.restore(saved.bindings).await;
    // Compact at once: the restored bindings and the originals in one fresh file (if we
    // crash before the first binding, a restart must still know what to put back).
    daemon.write_state_now();
    info!(
        seconds = started.elapsed().as_secs_f64(),
        bytes = daemon.journal.len(),
        "state restored and compacted"
    );

    let signals = Signals::new().map_err(ShellError::Signals)?;
    let loop_metrics = LoopMetrics::register(&mut registry);
    let (desk, status) = status_channel();
    let server = MetricsServer::bind(settings.metrics, Arc::new(registry), desk)
        .await
        .map_err(|source| ShellError::Metrics {
            addr: settings.metrics,
            source,
        })?;
    let listen = server.local_addr().unwrap_or(settings.metrics);
    tokio::spawn(server.run());
    info!(
        interface = %settings.interface,
        address = %me,
        metrics = %listen,
        bindings = lock(&core).len(),
        "{} ready",
        A::TITLE
    );
    let parts = Loop {
        signals,
        status,
        metrics: loop_metrics,
        config_path: options.config_path,
        keep_kernel_state: options.keep_kernel_state,
    };
    driver::run(daemon, parts).await;
    Ok(())
}

/// What the home agent's sockets deliver: the first message of a burst, or a frame for the
/// neighbour proxy.
enum Received {
    Mobility(mipcast_kernel::sockets::Result<mipcast_kernel::sockets::Received>),
    Solicitation(std::io::Result<usize>),
}

impl<A: Agent> Shell for Daemon<A> {
    type Config = A;
    type Input = Received;
    type Exit = ();

    fn load(path: &Path) -> Result<A, mipcast_daemon::config::ConfigError> {
        A::load(path)
    }

    async fn next_input(&mut self) -> Received {
        tokio::select! {
            first = self.socket.recv(&mut self.buf) => Received::Mobility(first),
            frame = or_never(self.responder.as_ref().map(|r| r.socket.recv(&mut self.nd_buf))) => Received::Solicitation(frame),
        }
    }

    fn deadline(&mut self) -> Option<Instant> {
        lock(&self.core)
            .poll_timeout()
            .map(|d| self.clock.instant_at(d))
    }

    async fn on_input(&mut self, input: Received) {
        match input {
            Received::Mobility(first) => {
                let mut buf = std::mem::take(&mut self.buf);
                self.receive_burst(first, &mut buf).await;
                self.buf = buf;
            }
            Received::Solicitation(frame) => {
                let nd_buf = std::mem::take(&mut self.nd_buf);
                self.on_solicitation(frame, &nd_buf).await;
                self.nd_buf = nd_buf;
            }
        }
    }

    async fn on_timer(&mut self) {
        lock(&self.core).handle_timeout(self.clock.reading());
        self.settle(Instant::now()).await;
    }

    fn reload_diff(&self, new: &A) -> ReloadDiff {
        self.config.reload_diff(new)
    }

    /// Bindings are kept; those the new configuration refuses are withdrawn at once.
    async fn reload(&mut self, new: A) -> Result<(), String> {
        let sas = new.sa_table().map_err(|e| e.to_string())?;
        let policy = new.policy().map_err(|e| e.to_string())?;
        lock(&self.core).reload(sas, policy, new.budgets());
        // Keep the settings that need a restart as they are running.
        self.config.adopt(new);
        self.revalidate().await;
        Ok(())
    }

    fn status(&mut self) -> Snapshot {
        let bindings = lock(&self.core).status(self.clock.reading());
        Snapshot::json(StatusPage { bindings })
    }

    /// The state file is written (bindings survive a restart either way).
    async fn stop(&mut self) {
        self.write_state_now();
        info!(bindings = lock(&self.core).len(), "state saved");
    }

    /// Our routes, rules and proxy entries go; the local rule, the seg6 tunnel source and
    /// proxy_ndp are put back.
    async fn remove_installed(&mut self) -> Removal {
        let (removed, mut failed) = self
            .kernel
            .remove_ours_at_stop(self.settings.kernel.local_rule_pref)
            .await;
        if let Some(tunsrc) = self.originals.seg6_tunsrc.take() {
            if let Err(e) = self.kernel.set_seg6_tunsrc(tunsrc).await {
                warn!(error = %e, "restoring the seg6 tunnel source");
                failed += 1;
            }
        }
        if let Some(value) = self.originals.proxy_ndp.take() {
            let path = proxy_ndp_path(&self.settings.interface);
            if let Err(e) = std::fs::write(&path, value) {
                warn!(path = %path.display(), error = %e, "restoring proxy_ndp");
                failed += 1;
            }
        }
        // The namespace is as we found it: a later start must not "restore" these again.
        self.write_state_now();
        Removal { removed, failed }
    }

    fn exit(self) {}
}

#[derive(Serialize, Deserialize)]
pub struct StatusPage {
    pub bindings: Vec<BindingStatus>,
}

/// Opens the state journal and replays it. A file of an older version (one JSON document)
/// is read once and replaced by the first compaction; a torn last record (a crash in the
/// middle of a write) is cut off with a warning, never a failed start.
fn open_journal(path: &Path, ha: Ipv6Addr) -> Result<(Journal<HaRecord>, SavedState), ShellError> {
    let (journal, state) = Journal::<HaRecord>::open(path)?;
    if state.foreign {
        let saved = match StateFile::<SavedState>::new(path).load() {
            Ok(s) => s.unwrap_or_default(),
            Err(e) => {
                warn!(error = %e, "ignoring the state file; starting without bindings");
                SavedState::default()
            }
        };
        info!(path = %path.display(), bindings = saved.bindings.len(), "state file of an older version read; it is rewritten as a journal");
        return Ok((journal, saved));
    }
    if state.torn_bytes > 0 {
        warn!(path = %path.display(), bytes = state.torn_bytes, "the state journal ended in a partly written record (a crash while writing): ignored");
    }
    let original = state
        .meta
        .and_then(|m| serde_json::from_slice(&m).ok())
        .unwrap_or_default();
    let bindings = state
        .records
        .into_values()
        .map(|r| r.with_local(ha))
        .collect();
    Ok((journal, SavedState { bindings, original }))
}

/// proxy_ndp on the home link (kernel proxy only), the seg6 tunnel source, the local rule
/// moved behind ours.
async fn prepare_namespace(
    kernel: &Kernel,
    settings: &Settings,
    mut originals: Originals,
) -> Result<Originals, ShellError> {
    if settings.proxy == Some(ProxyMode::Kernel) {
        enable_proxy_ndp(&settings.interface, &mut originals)?;
    }
    let forwarding =
        std::fs::read_to_string("/proc/sys/net/ipv6/conf/all/forwarding").unwrap_or_default();
    if forwarding.trim() != "1" {
        warn!("IPv6 forwarding is off (net.ipv6.conf.all.forwarding=0): tunnelled traffic will not be forwarded");
    }

    let me = settings.address;
    let tunsrc = kernel.get_seg6_tunsrc().await?;
    if tunsrc != me {
        kernel.set_seg6_tunsrc(me).await?;
        info!(was = %tunsrc, now = %me, "set the seg6 tunnel source");
        originals.seg6_tunsrc.get_or_insert(tunsrc);
    }
    kernel
        .ensure_local_rule_moved(settings.kernel.local_rule_pref)
        .await?;
    Ok(originals)
}

/// proxy_ndp=1 on the home link, for the kernel's proxy entries (`home_link.proxy: kernel`).
fn enable_proxy_ndp(interface: &str, originals: &mut Originals) -> Result<(), ShellError> {
    let path = proxy_ndp_path(interface);
    let current = std::fs::read_to_string(&path)
        .map_err(|source| ShellError::Sysctl {
            path: path.clone(),
            source,
        })?
        .trim()
        .to_owned();
    if current != "1" {
        std::fs::write(&path, "1").map_err(|source| ShellError::Sysctl {
            path: path.clone(),
            source,
        })?;
        info!(path = %path.display(), was = %current, "enabled proxy NDP on the home link");
        originals.proxy_ndp.get_or_insert(current);
    }
    Ok(())
}

fn proxy_ndp_path(interface: &str) -> PathBuf {
    Path::new("/proc/sys/net/ipv6/conf")
        .join(interface)
        .join("proxy_ndp")
}

impl<A: Agent> Daemon<A> {
    /// Restores saved bindings and makes the kernel match them: missing objects added,
    /// objects with our tag that no binding explains removed.
    async fn restore(&mut self, records: Vec<BindingRecord<()>>) {
        let saved = records.len();
        let now = self.clock.reading();
        let (restored, refused) = lock(&self.core).restore_checked(records, now);
        mipcast_daemon::logsummary::log_restore_refusals(&self.state_path, &refused);
        self.metrics.invalidated("start", &refused);
        self.resolve_all().await;
        info!(saved, restored, "bindings restored");
        let desired: HashSet<KObject> = lock(&self.core).desired();
        match self.kernel.reconcile_logged(&desired, "start").await {
            Ok(report) => {
                let failed_hoas: Vec<Ipv6Addr> = report
                    .failed
                    .iter()
                    .filter_map(|e| match e {
                        RouteError::Object { object, .. } => hoa_of(object),
                        _ => None,
                    })
                    .collect();
                for _ in &report.failed {
                    self.metrics.kernel_error("reconcile");
                }
                lock(&self.core).mark_unprogrammed(failed_hoas);
            }
            Err(_) => self.metrics.kernel_error("reconcile"),
        }
        self.metrics.bindings.set(gauge(lock(&self.core).len()));
    }

    async fn resolve_all(&mut self) {
        let coas = lock(&self.core).all_unresolved();
        for coa in coas {
            let oif = self.oif_toward(coa).await;
            lock(&self.core).resolve(coa, oif);
        }
    }

    /// The interface the kernel routes `coa` through (the default route's, if no better);
    /// without any route, the configured interface: the seg6 encapsulation routes the outer packet
    /// afresh anyway, so the device only has to exist.
    async fn oif_toward(&self, coa: Ipv6Addr) -> u32 {
        match self.kernel.route_get(coa).await {
            Ok(Some(route)) => route.oif,
            Ok(None) => {
                warn!(%coa, "no route toward the care-of address; tunnelling via the configured interface");
                self.ifindex
            }
            Err(e) => {
                self.metrics.kernel_error("route_get");
                warn!(%coa, error = %e, "route lookup failed; tunnelling via the configured interface");
                self.ifindex
            }
        }
    }

    /// Handles `first` and every message already queued behind it (up to [`MAX_BURST`]) as
    /// one round.
    async fn receive_burst(
        &mut self,
        first: mipcast_kernel::sockets::Result<mipcast_kernel::sockets::Received>,
        buf: &mut [u8],
    ) {
        let started = Instant::now();
        let first = first.map(|rx| (rx, buf.get(..rx.len).unwrap_or_default()));
        self.on_received(first);
        self.socket
            .drain(buf, MAX_BURST - 1, |received| self.on_received(received));
        self.settle(started).await;
    }

    fn on_received(
        &self,
        received: mipcast_kernel::sockets::Result<(mipcast_kernel::sockets::Received, &[u8])>,
    ) {
        match received {
            Ok((rx, bytes)) => {
                let t = std::time::Instant::now();
                self.metrics.signalling.mobility(
                    mipcast_daemon::metrics::signalling::Direction::Received,
                    bytes,
                );
                lock(&self.core).handle_input(
                    self.clock.reading(),
                    Input {
                        src: rx.source,
                        dst: rx.destination,
                        bytes,
                    },
                );
                self.metrics
                    .cache_op_seconds
                    .observe(t.elapsed().as_secs_f64());
            }
            Err(e) => {
                debug!(error = %e, "receive failed");
                self.metrics
                    .dropped
                    .get_or_create(&crate::metrics::ReasonLabel {
                        reason: "receive_error",
                    })
                    .inc();
            }
        }
    }

    /// After a reload: bindings the new configuration refuses are withdrawn now (kernel,
    /// journal), logged in one summary line and counted.
    async fn revalidate(&mut self) {
        let dropped = A::revalidate(&mut lock(&self.core), self.clock.reading());
        if dropped.is_empty() {
            return;
        }
        mipcast_daemon::logsummary::log_reload_refusals(&dropped);
        self.metrics.invalidated("reload", &dropped);
        self.touched.extend(dropped.iter().map(|d| d.hoa));
        self.settle(Instant::now()).await;
    }

    /// Looks up the interfaces toward the round's new care-of addresses, then runs the round
    /// to completion (see [`mipcast_daemon::driver`]).
    async fn settle(&mut self, started: Instant) {
        let coas = lock(&self.core).unresolved();
        for coa in coas {
            let oif = self.oif_toward(coa).await;
            lock(&self.core).resolve(coa, oif);
        }
        let core = Arc::clone(&self.core);
        settle(&*core, self).await;
        self.announce_registrations().await;
        self.metrics
            .burst_seconds
            .observe(started.elapsed().as_secs_f64());
    }

    /// A frame from the home link's packet socket: answered when it solicits a registered
    /// home address (the decision is the core's).
    async fn on_solicitation(&mut self, frame: std::io::Result<usize>, buf: &[u8]) {
        let Some(responder) = self.responder.as_ref() else {
            return;
        };
        let n = match frame {
            Ok(n) => n,
            Err(e) => {
                debug!(error = %e, "packet socket receive failed");
                self.metrics.solicitation("receive_error");
                return;
            }
        };
        let frame = buf.get(..n).unwrap_or_default();
        let answer = lock(&self.core).answer_solicitation(frame, &responder.me);
        match answer {
            Ok(Some(na)) => match responder.socket.send(&na).await {
                Ok(()) => self.metrics.solicitation("answered"),
                Err(e) => {
                    warn!(error = %e, "cannot send a neighbour advertisement");
                    self.metrics.solicitation("send_error");
                }
            },
            Ok(None) => self.metrics.solicitation("not_registered"),
            Err(why) => {
                debug!(reason = why.label(), "neighbour solicitation ignored");
                self.metrics.solicitation(why.label());
            }
        }
    }

    /// RFC 6275 §10.4.1: a new registration is announced on the home link (unsolicited NA,
    /// override set), so neighbours that cached the mobile node's own link-layer address for
    /// its home address now use ours.
    async fn announce_registrations(&mut self) {
        let hoas = std::mem::take(&mut self.announce);
        let Some(responder) = self.responder.as_ref() else {
            return;
        };
        for hoa in hoas {
            let Some(na) = crate::core::neighbour::announce(hoa, &responder.me) else {
                continue;
            };
            if let Err(e) = responder.socket.send(&na).await {
                warn!(%hoa, error = %e, "cannot announce the home address on the home link");
            }
        }
    }

    /// Appends the settled round's binding changes to the journal (synced) before the
    /// round's replies go ([`Effects::COMMIT_BEFORE_SEND`]): a BAck(0) is only sent for a
    /// binding that is on disk. A journal that cannot be written is logged and counted; the
    /// replies still go (the binding is in the kernel and serving; only a crash before the
    /// next compaction would lose it).
    fn commit_round(&mut self) {
        let touched = std::mem::take(&mut self.touched);
        let (now, me) = (self.clock.reading(), self.me);
        let outcome = {
            let core = lock(&self.core);
            self.journal.append_round(touched, |hoa| {
                core.record(hoa, now).map(|record| HaRecord { record, me })
            })
        };
        if let Some(outcome) = outcome {
            self.count_state_write(&outcome);
            let live = lock(&self.core).len();
            if self.journal.needs_compaction(live) {
                self.write_state_now();
            }
        }
    }

    async fn send_now(&mut self, send: Send) {
        let info = PacketInfo::ANY.with_source(send.src);
        match self.socket.send_to(&send.bytes, send.dst, info).await {
            Ok(()) => self.metrics.count_sent(&send.bytes),
            Err(e) => {
                if let Some(suppressed) = self.log_limit.admit("send_failed", self.clock.now()) {
                    warn!(dst = %send.dst, error = %e, suppressed, "send failed");
                }
                self.metrics
                    .dropped
                    .get_or_create(&crate::metrics::ReasonLabel {
                        reason: "send_error",
                    })
                    .inc();
            }
        }
    }

    fn count_state_write(&self, outcome: &Result<(), StateError>) {
        if let Err(e) = outcome {
            error!(error = %e, "cannot write the state journal");
        }
        let outcome = if outcome.is_ok() { "ok" } else { "error" };
        self.metrics
            .state_writes
            .get_or_create(&crate::metrics::OutcomeLabel { outcome })
            .inc();
    }

    /// Rewrites the journal as the current bindings and originals (compaction).
    fn write_state_now(&mut self) {
        let records: Vec<HaRecord> = lock(&self.core)
            .records(self.clock.reading())
            .into_iter()
            .map(|record| HaRecord {
                record,
                me: self.me,
            })
            .collect();
        let meta = serde_json::to_vec(&self.originals).unwrap_or_default();
        let outcome = self.journal.compact(records.iter(), Some(&meta));
        self.count_state_write(&outcome);
    }
}

fn hoa_of(object: &KObject) -> Option<Ipv6Addr> {
    match object {
        KObject::EncapRoute { dst, .. } => Some(dst.ip()),
        KObject::ProxyNeigh { addr, .. } => Some(*addr),
        _ => None,
    }
}

fn gauge(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The events a stranger can cause once per packet, with their log-summary kind.
fn per_packet_kind(e: &Event) -> Option<&'static str> {
    match e {
        Event::Rejected { .. } => Some("bu_refused"),
        Event::BindingError { .. } => Some("binding_error"),
        Event::Dropped { .. } => Some("dropped"),
        Event::ReplySuppressed { .. } => Some("reply_suppressed"),
        _ => None,
    }
}

/// `suppressed`: lines of the same kind left out before this one (see [`LogSummary`]).
fn log_event(e: &Event, suppressed: u64) {
    match e {
        Event::Registered {
            hoa,
            coa,
            previous,
            lifetime_s,
            sequence,
        } => match previous {
            None => info!(%hoa, %coa, lifetime_s, sequence, "binding created"),
            Some(old) if old == coa => {
                debug!(%hoa, %coa, lifetime_s, sequence, "binding refreshed")
            }
            Some(old) => info!(%hoa, %coa, old_coa = %old, lifetime_s, sequence, "binding moved"),
        },
        Event::Removed { hoa, coa, reason } => {
            info!(%hoa, %coa, reason = ?reason, "binding removed")
        }
        Event::Rejected {
            peer,
            hoa,
            status,
            auth_reason,
        } => info!(
            %peer,
            hoa = ?hoa,
            status,
            reason = auth_reason.unwrap_or("-"),
            suppressed,
            "binding update refused"
        ),
        Event::BindingError { peer } => {
            debug!(%peer, suppressed, "unknown mobility header type")
        }
        Event::Dropped {
            peer,
            reason,
            detail,
        } => debug!(%peer, reason, detail, suppressed, "message dropped"),
        Event::ReplySuppressed { peer } => {
            debug!(%peer, suppressed, "reply suppressed by the rate limit")
        }
        Event::ProgrammingFailed { hoa, coa } => {
            warn!(%hoa, %coa, "kernel refused the binding; answered 130")
        }
        Event::RefreshRequested { peer } => debug!(%peer, "binding refresh request sent"),
        Event::KernelRefused {
            change,
            reason,
            rollback,
        } => warn!(?change, reason, rollback, "kernel refused a change"),
        Event::BindingsChanged { bindings } => debug!(bindings, "binding cache changed"),
    }
}

impl<A: Agent> Effects<Core<A::Policy>> for Daemon<A> {
    async fn apply(&mut self, changes: &[Change]) -> Vec<Outcome> {
        let ops: Vec<(Op, KObject)> = changes
            .iter()
            .map(|c| match *c {
                Change::Add(o) => (Op::Add, o),
                Change::Replace(o) => (Op::Replace, o),
                Change::Delete(o) => (Op::Delete, o),
            })
            .collect();
        let outcomes = self.kernel.apply_in_runs(&ops).await;
        for ((op, _), outcome) in ops.iter().zip(&outcomes) {
            self.metrics.kernel_change(op.label(), outcome);
        }
        outcomes
    }

    async fn send(&mut self, send: Send) {
        self.send_now(send).await;
    }

    const COMMIT_BEFORE_SEND: bool = true;

    async fn commit(&mut self) {
        self.commit_round();
    }

    fn event(&mut self, event: Event) {
        match &event {
            Event::BindingsChanged { bindings } => {
                self.metrics.bindings.set(gauge(*bindings));
            }
            Event::Registered { hoa, .. }
            | Event::Removed { hoa, .. }
            | Event::ProgrammingFailed { hoa, .. } => self.touched.push(*hoa),
            _ => {}
        }
        if let Event::Registered {
            hoa,
            previous: None,
            ..
        } = event
        {
            if self.responder.is_some() {
                self.announce.push(hoa);
            }
        }
        self.metrics.count_events(std::slice::from_ref(&event));
        self.log_limit
            .log(per_packet_kind(&event), self.clock.now(), |suppressed| {
                log_event(&event, suppressed)
            });
    }

    fn now(&self) -> Now {
        self.clock.reading()
    }
}
