//! The tokio I/O shell: runs the [`Core`] against a raw Mobility Header socket, the kernel's
//! routing tables (rtnetlink), its multicast routing table (MRT6), signals, a state file and
//! the metrics listener.
use mipcast_daemon::cli::RunOptions;
use std::collections::HashSet;
use std::net::Ipv6Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::registry::Registry;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use mipcast_binding::{BindingRecord, RegistrarConfig, SaError, SaTable};
use mipcast_daemon::clock::{Clock, SystemClock};
use mipcast_daemon::config::{sa, ConfigError};
use mipcast_daemon::control::{self, ControlSocket};
use mipcast_daemon::driver::{self, lock, settle, Effects, Loop, LoopMetrics, Removal};
use mipcast_daemon::logsummary::LogSummary;
use mipcast_daemon::metrics::{register_build_info, MetricsServer};
use mipcast_daemon::signals::Signals;
use mipcast_daemon::state::{Journal, StateError, StateFile};
use mipcast_daemon::status::{status_channel, Snapshot, StatusRequests};
use mipcast_kernel::mrt6::{Mifi, Mrt6};
use mipcast_kernel::probe::{self, Feature};
use mipcast_kernel::route::{outcome_of, Kernel, Op, RouteError};
use mipcast_kernel::sockets::{MhSocket, PacketInfo, SocketError};
use mipcast_proto::{KObject, Machine, Now, Outcome};

use crate::config::Config;
use crate::core::context::Peer as ContextPeer;
use crate::core::{
    AdviceConfig, Advise, Change, ContextConfig, Core, Event, Input, Plan, PolicyConfig, Received,
    Send, SiteLink,
};
use crate::journal::MmaRecord;
use crate::metrics::Metrics;
use crate::status::Status;
use mipcast_kernel::mrule::{Mrule, MruleError};

mod driven;

/// Messages handled before the kernel changes they caused are applied together.
const BURST: usize = 256;
/// A Mobility Header message is far smaller; anything longer is not one of ours.
const RECV_BUF: usize = 2048;
/// Socket receive buffer: BUs that arrive while a burst is being programmed wait here. The
/// default (~208 KiB) overflowed above ~200 queued BUs; this holds tens of thousands.
const SOCKET_RECV_BUFFER: usize = 32 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    MissingFeature(String),
    #[error("route optimisation: {0}")]
    RouteOptimisation(String),
    #[error("security associations: {0}")]
    Sa(#[from] SaError),
    #[error("registration settings: {0}")]
    Registrar(#[from] mipcast_binding::ConfigError),
    #[error("{0}")]
    Kernel(#[from] RouteError),
    #[error("{0}")]
    Socket(#[from] SocketError),
    #[error("{0}")]
    Mrule(#[from] MruleError),
    #[error("{0}")]
    State(#[from] StateError),
    #[error("metrics listener {addr}: {source}")]
    Metrics {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("starting the runtime: {0}")]
    Runtime(std::io::Error),
    #[error("control socket {}: {source}", path.display())]
    Control {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// Runs the daemon until SIGTERM/SIGINT.
pub fn run(config: Config, options: RunOptions) -> Result<(), ShellError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ShellError::Runtime)?;
    runtime.block_on(async move {
        let (daemon, status, metrics) = Daemon::start(config, options).await?;
        daemon.run(status, metrics).await
    })
}

type Records = Vec<BindingRecord<crate::core::Terminal>>;

/// The registrar's settings from the config.
pub fn registrar_config(c: &Config) -> RegistrarConfig {
    RegistrarConfig {
        max_lifetime_s: u32::try_from(c.registration.max_lifetime.as_secs()).unwrap_or(u32::MAX),
        replay_window_ms: u64::try_from(c.registration.replay_window.as_millis())
            .unwrap_or(u64::MAX),
        refresh_percent: c.registration.refresh_percent,
    }
}

/// The policy's settings from the config.
pub fn policy_config(c: &Config) -> PolicyConfig {
    let secs = |d: Duration| u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
    PolicyConfig {
        site_prefixes: c
            .site_prefixes
            .iter()
            .map(|p| (p.addr(), p.prefix_len()))
            .collect(),
        group_prefix: c.group_prefix(),
        home_agents: c
            .home_agents
            .iter()
            .map(|ha| {
                (
                    ha.address,
                    ha.home_prefixes
                        .iter()
                        .map(|p| (p.addr(), p.prefix_len()))
                        .collect(),
                )
            })
            .collect(),
        default_grace_s: secs(c.forwarding.default_grace),
        max_grace_s: secs(c.forwarding.max_grace),
    }
}

/// The kernel plan from the config and the resolved interface indexes.
pub fn plan(c: &Config, wan_ifindex: u32, site_ifindex: u32) -> Plan {
    Plan {
        mma: c.address,
        wan_ifindex,
        site_ifindex,
        site_prefixes: c
            .site_prefixes
            .iter()
            .map(|p| (p.addr(), p.prefix_len()))
            .collect(),
        home_agents: c.home_agents.iter().map(|ha| ha.address).collect(),
        ha_decap_table: c.kernel.ha_decap_table,
        site_decap_table: c.kernel.site_decap_table,
        uplink_table: c.kernel.uplink_table,
        ha_rule_pref: c.kernel.ha_rule_pref,
        site_rule_pref: c.kernel.site_rule_pref,
    }
}

struct Daemon {
    config: Config,
    options: RunOptions,
    clock: SystemClock,
    core: Arc<Mutex<Core>>,
    kernel: Kernel,
    /// Shared with the MFC counter poll's blocking thread ([`Daemon::poll_mfc_counters`]).
    mrt6: Option<Arc<Mrt6>>,
    mrule: Option<Mrule>,
    wan_mif: Mifi,
    site_mifs: Vec<Mifi>,
    mh: MhSocket,
    metrics: Metrics,
    /// The state journal: a round's terminal changes are appended and synced before the
    /// round's replies leave, so an acknowledged registration survives kill -9.
    journal: Journal<MmaRecord>,
    /// What the journal held at start (consumed by [`Daemon::restore`]).
    saved: Records,
    /// Home addresses whose registration changed in the round being settled.
    touched: Vec<Ipv6Addr>,
    /// The seg6 tunnel source before we set ours, put back on shutdown.
    previous_tunsrc: Ipv6Addr,
    /// A clean stop put `previous_tunsrc` back: the journal no longer keeps it.
    tunsrc_restored: bool,
    server: JoinHandle<()>,
    /// Whether the round being settled changed a terminal (the state file needs writing).
    changed: bool,
    /// `mma advise` requests.
    control: Option<ControlSocket>,
    /// Handoff advice sent in the round being settled.
    advised: usize,
    /// Per-packet log lines (refusals, drops) are summarised, not written one per packet.
    log_limit: LogSummary,
    /// Route optimisation (`route_optimisation:`), and the NFLOG group of its sightings.
    ro: Option<crate::ro_shell::RoShell>,
    nflog: Option<mipcast_kernel::sockets::NflogSocket>,
    /// MFC entries the kernel flushed when the MRT6 table closed ([`Daemon::stop`]).
    mfc_flushed: usize,
}

impl Daemon {
    /// Sets the MMA up; with it, the loop's `/status` requests and metrics for [`Daemon::run`].
    async fn start(
        config: Config,
        options: RunOptions,
    ) -> Result<(Daemon, StatusRequests, LoopMetrics), ShellError> {
        let caps = probe::probe().await?;
        let mut needed = vec![
            Feature::Seg6Encap,
            Feature::Seg6Local,
            Feature::SourceRoutes,
            Feature::IpprotoRules,
            Feature::Mrt6,
        ];
        if config.kernel.mrt6_table.is_some() {
            needed.push(Feature::Mrt6Tables);
        }
        caps.require(&needed).map_err(ShellError::MissingFeature)?;

        let clock = SystemClock::new();
        let kernel = Kernel::connect(config.kernel.protocol).await?;
        let wan_ifindex = kernel.ifindex(&config.wan_interface).await?;
        let mut site_ifindexes = Vec::new();
        for name in &config.site_interfaces {
            site_ifindexes.push(kernel.ifindex(name).await?);
        }
        let site_ifindex = site_ifindexes.first().copied().unwrap_or(wan_ifindex);

        let mrt6 = Mrt6::open(config.kernel.mrt6_table)?;
        let wan_mif = mrt6.add_mif(wan_ifindex)?;
        let site_mifs = site_ifindexes
            .iter()
            .map(|&i| mrt6.add_mif(i))
            .collect::<Result<Vec<_>, _>>()?;
        let mrule = match config.kernel.mrt6_table {
            Some(table) => {
                let rule = Mrule {
                    pref: config.kernel.mrule_pref,
                    iif: config.wan_interface.clone(),
                    table,
                    protocol: config.kernel.protocol,
                };
                rule.install().await?;
                Some(rule)
            }
            None => None,
        };

        let sas = sa::sa_table(&config.security_associations)?;
        let core = Core::new(
            registrar_config(&config),
            sas,
            policy_config(&config),
            plan(&config, wan_ifindex, site_ifindex),
            config.reply_rate_limit.budgets(),
        )?;
        let mut core = core;
        core.set_advice(advice_config(&config));
        core.set_capacity(config.admission.max_terminals);
        core.set_context(context_config(&config));
        let core = Arc::new(Mutex::new(core));
        let control = match &config.advice.control_socket {
            Some(path) => {
                Some(
                    ControlSocket::bind(path).map_err(|source| ShellError::Control {
                        path: path.clone(),
                        source,
                    })?,
                )
            }
            None => None,
        };

        let previous_tunsrc = kernel.get_seg6_tunsrc().await?;
        kernel.set_seg6_tunsrc(config.address).await?;
        kernel
            .ensure_local_rule_moved(config.kernel.local_rule_pref)
            .await?;

        let (ro, nflog) = match &config.route_optimisation {
            Some(settings) => {
                let plan = lock(&core).plan().clone();
                let (ro, nflog) = crate::ro_shell::RoShell::start(settings, config.address, &plan)
                    .await
                    .map_err(ShellError::RouteOptimisation)?;
                (Some(ro), Some(nflog))
            }
            None => (None, None),
        };
        let metrics = Metrics::default();
        let mut registry = Registry::default();
        register_build_info(&mut registry, "mma", env!("CARGO_PKG_VERSION"));
        metrics.register(&mut registry);
        if let Some(ro) = &ro {
            ro.register_metrics(&mut registry);
        }
        let loop_metrics = LoopMetrics::register(&mut registry);
        let (desk, status) = status_channel();
        let server = MetricsServer::bind(config.metrics.listen, Arc::new(registry), desk)
            .await
            .map_err(|source| ShellError::Metrics {
                addr: config.metrics.listen,
                source,
            })?;
        info!(listen = %server.local_addr().map_or_else(|e| e.to_string(), |a| a.to_string()), "metrics listener up");
        let server = tokio::spawn(server.run());

        let mh = MhSocket::new()?;
        match mh.set_recv_buffer(SOCKET_RECV_BUFFER) {
            Ok(granted) => debug!(granted, "Mobility Header socket receive buffer"),
            Err(e) => warn!(error = %e, "cannot enlarge the Mobility Header receive buffer"),
        }
        let (journal, saved, original) =
            open_journal(&config.state.file, config.address, &policy_config(&config))?;
        // A crashed run left its own address as the tunnel source: what it found is in the
        // journal, and that is what a clean stop puts back.
        let previous_tunsrc = original.unwrap_or(previous_tunsrc);
        let mut daemon = Daemon {
            config,
            options,
            clock,
            core,
            kernel,
            mrt6: Some(Arc::new(mrt6)),
            mrule,
            wan_mif,
            site_mifs,
            mh,
            metrics,
            journal,
            saved,
            touched: Vec::new(),
            previous_tunsrc,
            tunsrc_restored: false,
            server,
            changed: false,
            control,
            advised: 0,
            log_limit: LogSummary::default(),
            ro,
            nflog,
            mfc_flushed: 0,
        };
        daemon.restore().await;
        Ok((daemon, status, loop_metrics))
    }

    /// Restores the state file's terminals and makes the kernel match: reconcile routes and
    /// rules (stale ones of ours go), re-add MFC entries (they died with the old socket).
    async fn restore(&mut self) {
        let records = std::mem::take(&mut self.saved);
        let now = self.clock.reading();
        let (mut restored, mut refused) = lock(&self.core).restore_checked(records, now);
        let mut groups = lock(&self.core).desired_groups();
        groups.retain(|group| match self.add_mfc(*group) {
            Ok(()) => true,
            Err(e) => {
                // Not served half-way: the terminal is rolled back (re-registering fixes it).
                warn!(%group, error = %e, "restoring the MFC entry failed; terminal not restored");
                self.metrics.kernel_error("add_mfc");
                refused.extend(lock(&self.core).rollback_restored(*group, now));
                restored = restored.saturating_sub(1);
                false
            }
        });
        mipcast_daemon::logsummary::log_restore_refusals(&self.config.state.file, &refused);
        self.metrics.invalidated("start", &refused);
        self.reconcile("start").await;
        // One fresh file of the restored terminals.
        self.compact();
        self.update_counts();
        info!(
            terminals = restored,
            mfc_entries = groups.len(),
            address = %self.config.address,
            "mma ready"
        );
    }

    async fn reconcile(&mut self, why: &str) {
        let mut desired: HashSet<KObject> = lock(&self.core).desired_objects();
        desired.extend(self.ro.iter().flat_map(|ro| ro.desired()));
        let failed = match self.kernel.reconcile_logged(&desired, why).await {
            Ok(report) => report.failed.len(),
            Err(_) => 1,
        };
        for _ in 0..failed {
            self.metrics.kernel_error("reconcile");
        }
    }

    /// Runs the daemon on the daemons' one event loop ([`driven`]) until SIGTERM/SIGINT.
    async fn run(self, status: StatusRequests, metrics: LoopMetrics) -> Result<(), ShellError> {
        let parts = Loop {
            signals: Signals::new().map_err(ShellError::Runtime)?,
            status,
            metrics,
            config_path: self.options.config_path.clone(),
            keep_kernel_state: self.options.keep_kernel_state,
        };
        driver::run(driven::Driven::new(self), parts).await;
        Ok(())
    }

    fn handle_received(
        &self,
        received: Result<(mipcast_kernel::sockets::Received, &[u8]), SocketError>,
    ) {
        match received {
            Ok((r, bytes)) => {
                let now = self.clock.reading();
                self.metrics.signalling.mobility(
                    mipcast_daemon::metrics::signalling::Direction::Received,
                    bytes,
                );
                if let Some(ro) = self.ro.as_ref().filter(|ro| ro.wants(r.source, bytes)) {
                    ro.input(
                        now,
                        crate::core::ro::Input::Mobility {
                            src: r.source,
                            bytes,
                        },
                    );
                    return;
                }
                lock(&self.core).handle_input(
                    now,
                    Input::Mobility(Received {
                        src: r.source,
                        dst: r.destination,
                        bytes,
                    }),
                );
            }
            Err(e) => {
                warn!(error = %e, "mobility header socket");
            }
        }
    }

    /// Runs the core's outputs to completion (see [`mipcast_daemon::driver`]), then updates
    /// the counts and schedules a state write if terminals changed.
    async fn settle(&mut self) {
        let core = Arc::clone(&self.core);
        self.changed = false;
        settle(&*core, self).await;
        if self.changed {
            self.update_counts();
        }
        self.drive_ro().await;
    }

    /// Route optimisation's BUs and reverse routes (after the round that caused them).
    async fn drive_ro(&self) {
        if let Some(ro) = &self.ro {
            let now = self.clock.reading();
            for hoa in ro.drive(&self.kernel, &self.mh, now).await {
                let list = ro.correspondents_of(hoa, now);
                lock(&self.core).set_correspondents(hoa, now, list);
            }
        }
    }

    /// Pairs the kernel saw: (correspondent, home address), in the order logged.
    async fn on_sightings(&mut self, sightings: std::io::Result<Vec<(Ipv6Addr, Ipv6Addr)>>) {
        let Some(ro) = &self.ro else {
            return;
        };
        match sightings {
            Ok(pairs) => {
                let now = self.clock.reading();
                for (correspondent, hoa) in pairs {
                    ro.input(now, crate::core::ro::Input::Sighting { correspondent, hoa });
                }
            }
            Err(e) => warn!(error = %e, "route optimisation: reading the NFLOG group"),
        }
        self.drive_ro().await;
    }

    /// Appends the settled round's terminal changes to the journal (synced) before the
    /// round's replies go ([`Effects::COMMIT_BEFORE_SEND`]): a BAck(0) leaves only for a
    /// registration that is on disk. A journal that cannot be written is logged and counted;
    /// the replies still go.
    fn commit_round(&mut self) {
        let touched = std::mem::take(&mut self.touched);
        let now = self.clock.reading();
        let me = self.config.address;
        let policy = policy_config(&self.config);
        let outcome = {
            let core = lock(&self.core);
            self.journal.append_round(touched, |hoa| {
                core.record(hoa, now)
                    .map(|record| crate::journal::entry(record, me, &policy))
            })
        };
        if let Some(outcome) = outcome {
            self.count_state_write(&outcome);
            let live = lock(&self.core).records_len();
            if self.journal.needs_compaction(live) {
                self.compact();
            }
        }
    }

    fn count_state_write(&self, outcome: &Result<(), StateError>) {
        if let Err(e) = outcome {
            warn!(error = %e, "cannot write the state journal");
        }
        self.metrics.state_write(outcome.is_ok());
    }

    /// Rewrites the journal as the current terminals (compaction).
    fn compact(&mut self) -> bool {
        let me = self.config.address;
        let policy = policy_config(&self.config);
        let records: Vec<MmaRecord> = lock(&self.core)
            .records(self.clock.reading())
            .into_iter()
            .map(|record| crate::journal::entry(record, me, &policy))
            .collect();
        // The tunnel source found at start travels with the terminals until a clean stop has
        // put it back (then `tunsrc_restored`).
        let original = (!self.tunsrc_restored).then(|| self.previous_tunsrc.octets());
        let outcome = self
            .journal
            .compact(records.iter(), original.as_ref().map(|o| o.as_slice()));
        self.count_state_write(&outcome);
        outcome.is_ok()
    }

    /// Applies an MFC change.
    fn apply_mfc(&self, change: Change) -> Outcome {
        let result = match change {
            Change::AddMfc { group, .. } => self.add_mfc(group),
            Change::DelMfc { source, group } => match &self.mrt6 {
                Some(mrt6) => mrt6.del_mfc(source, group),
                None => Ok(()),
            },
            _ => Ok(()),
        };
        let outcome = match result {
            Ok(()) => Outcome::Applied,
            Err(e) => outcome_of(e.errno(), || e.to_string()),
        };
        let op = if change.is_delete() {
            "del_mfc"
        } else {
            "add_mfc"
        };
        self.metrics.kernel_change(op, &outcome);
        outcome
    }

    fn add_mfc(&self, group: Ipv6Addr) -> Result<(), SocketError> {
        let Some(mrt6) = &self.mrt6 else {
            return Ok(());
        };
        mrt6.add_mfc(self.config.address, group, self.wan_mif, &self.site_mifs)
    }

    /// Reads the (MMA, G) counters into the metrics on a blocking thread: one ioctl per
    /// terminal's entry (100,000 at 100,000 terminals) would hold registrations up on the
    /// event loop. The bytes per group come back to [`Daemon::mfc_counters_read`].
    pub(super) fn poll_mfc_counters(&self) -> Option<JoinHandle<Vec<(Ipv6Addr, u64)>>> {
        let mrt6 = Arc::clone(self.mrt6.as_ref()?);
        let (core, metrics) = (Arc::clone(&self.core), self.metrics.clone());
        let source = self.config.address;
        Some(tokio::task::spawn_blocking(move || {
            // The core's lock only for the list, not across the reads.
            let groups = lock(&core).desired_groups();
            let mut bytes = Vec::with_capacity(groups.len());
            for group in groups {
                match mrt6.sg_counters(source, group) {
                    Ok(c) => {
                        metrics.set_sg(source, group, c);
                        bytes.push((group, c.bytes));
                    }
                    Err(e) => debug!(%group, error = %e, "reading MFC counters"),
                }
            }
            bytes
        }))
    }

    /// Hands the counters read by [`Daemon::poll_mfc_counters`] to the core (the measured
    /// load of the site links, for load-triggered handoff advice).
    pub(super) async fn mfc_counters_read(
        &mut self,
        read: Result<Vec<(Ipv6Addr, u64)>, tokio::task::JoinError>,
    ) {
        let bytes = match read {
            Ok(bytes) => bytes,
            Err(e) => {
                warn!(error = %e, "reading MFC counters");
                return;
            }
        };
        let now = self.clock.reading();
        lock(&self.core).handle_input(now, Input::GroupCounters(&bytes));
        self.settle().await;
    }

    fn update_counts(&self) {
        let (served, forwarding) = lock(&self.core).counts();
        self.metrics.set_counts(served, forwarding);
    }

    /// Applies what changes in place (registered terminals kept; those the new configuration
    /// refuses leave now, not at their next refresh).
    async fn reload(&mut self, new: Config) -> Result<(), String> {
        let sas = sa::sa_table(&new.security_associations).map_err(|e| e.to_string())?;
        let old = &self.config;
        // Settings that need a restart keep their running values.
        let mut merged = new;
        merged.address = old.address;
        merged.wan_interface = old.wan_interface.clone();
        merged.site_interfaces = old.site_interfaces.clone();
        merged.registration = old.registration;
        merged.kernel = old.kernel;
        merged.metrics = old.metrics;
        merged.state = old.state.clone();
        merged.advice.control_socket = old.advice.control_socket.clone();
        merged.route_optimisation = old.route_optimisation.clone();
        {
            let mut core = lock(&self.core);
            core.set_advice(advice_config(&merged));
            core.set_capacity(merged.admission.max_terminals);
            core.set_context(context_config(&merged));
            let (wan, site) = (core.plan().wan_ifindex, core.plan().site_ifindex);
            core.reload(
                sas,
                policy_config(&merged),
                plan(&merged, wan, site),
                merged.reply_rate_limit.budgets(),
            );
        }
        self.config = merged;
        let dropped = lock(&self.core).revalidate(self.clock.reading());
        mipcast_daemon::logsummary::log_reload_refusals(&dropped);
        self.metrics.invalidated("reload", &dropped);
        if !dropped.is_empty() {
            self.settle().await;
            // The journal holds no record of these removals: write a fresh file.
            self.compact();
            self.update_counts();
        }
        self.reconcile("reload").await;
        Ok(())
    }

    /// `/status`: the terminals and the contexts handed over.
    fn status(&self) -> Snapshot {
        let core = lock(&self.core);
        let now = self.clock.reading();
        let (served, forwarding) = core.counts();
        Snapshot::json(Status {
            address: self.config.address,
            uptime_s: now.mono_ms() / 1000,
            terminals_registered: served,
            forwarding_windows: forwarding,
            terminals: core.terminal_status(now.mono),
            contexts: core.context_status(),
        })
    }

    /// The state is saved; the metrics server stops; the MRT6 table closes (the kernel drops
    /// our MIFs and MFC entries with it, kept state or not).
    async fn stop(&mut self) {
        let terminals = lock(&self.core).records_len();
        if self.compact() {
            info!(terminals, file = %self.journal.path().display(), "state saved");
        }
        self.server.abort();
        self.mfc_flushed = lock(&self.core).desired_groups().len();
        // A counter poll still running holds the socket too; it reads nothing more.
        if let Some(mrt6) = self.mrt6.take() {
            if let Err(e) = mrt6.close() {
                warn!(error = %e, "closing the MRT6 table");
            }
        }
        info!(mfc_entries = self.mfc_flushed, "MRT6 table closed");
    }

    /// Our routes and rules go (route optimisation's too), the mrule, the local rule and the
    /// seg6 tunnel source are put back.
    async fn remove_installed(&mut self) -> Removal {
        let (removed, mut failed) = self
            .kernel
            .remove_ours_at_stop(self.config.kernel.local_rule_pref)
            .await;
        if let Some(ro) = &self.ro {
            ro.shutdown();
        }
        if let Some(rule) = &self.mrule {
            if let Err(e) = rule.remove().await {
                warn!(error = %e, "removing the mrule");
                failed += 1;
            }
        }
        // Put back whatever tunnel source was there before us (usually `::`, unset).
        if let Err(e) = self.kernel.set_seg6_tunsrc(self.previous_tunsrc).await {
            warn!(error = %e, "restoring the seg6 tunnel source");
            failed += 1;
        } else {
            // Put back: a later start must not "restore" it again.
            self.tunsrc_restored = true;
            self.compact();
        }
        Removal {
            removed: removed + self.mfc_flushed + usize::from(self.mrule.is_some()),
            failed,
        }
    }
}

/// The context transfer settings from the config: the peer MMAs and the replay window of
/// registrations.
pub fn context_config(c: &Config) -> ContextConfig {
    ContextConfig {
        peers: c
            .peers
            .iter()
            .map(|p| ContextPeer {
                address: p.address,
                spi: p.spi,
                algorithm: p.algorithm.into(),
                key: p.key_file.expose().to_vec(),
            })
            .collect(),
        replay_window_ms: u64::try_from(c.registration.replay_window.as_millis())
            .unwrap_or(u64::MAX),
    }
}

/// The core's advice settings from the config.
pub fn advice_config(c: &Config) -> AdviceConfig {
    AdviceConfig {
        links: c
            .advice
            .links
            .iter()
            .map(|l| SiteLink {
                name: l.name.clone(),
                prefix: (l.prefix.addr(), l.prefix.prefix_len()),
                advise_above: l.advise_above,
                advise_above_bps: l.advise_above_bps,
            })
            .collect(),
        avoid_secs: c.advice.avoid_secs,
    }
}

/// An `mma advise` request: `{"advise": {"link": NAME or PREFIX, "reason": ..., "avoid_secs": N}}`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlRequest {
    pub advise: AdviseRequest,
}

#[derive(Debug, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct AdviseRequest {
    pub link: String,
    pub reason: String,
    #[serde(default)]
    pub avoid_secs: Option<u16>,
}

/// The advice reason byte of a reason name.
pub fn reason_code(name: &str) -> Option<u8> {
    use mipcast_wire::mh::advice_reason;
    match name {
        "congestion" => Some(advice_reason::CONGESTION),
        "maintenance" => Some(advice_reason::MAINTENANCE),
        "admission_refused" | "admission-refused" => Some(advice_reason::ADMISSION_REFUSED),
        _ => None,
    }
}

/// The events a stranger can cause once per packet, with their log-summary kind.
fn per_packet_kind(e: &Event) -> Option<&'static str> {
    match e {
        Event::Rejected { .. } => Some("bu_refused"),
        Event::Dropped { .. } => Some("dropped"),
        Event::ReplySuppressed { .. } => Some("reply_suppressed"),
        Event::Context(crate::core::ContextEvent::Dropped { .. }) => Some("context_dropped"),
        _ => None,
    }
}

impl Daemon {
    async fn control_request(&mut self, request: control::Request) {
        let reply = match self.advise(&request.line).await {
            Ok(v) => v,
            Err(e) => serde_json::json!({ "error": e }),
        };
        request.reply(reply.to_string());
    }

    async fn advise(&mut self, line: &str) -> Result<serde_json::Value, String> {
        let req: ControlRequest = serde_json::from_str(line).map_err(|e| e.to_string())?;
        let a = req.advise;
        let reason = reason_code(&a.reason).ok_or_else(|| {
            format!(
                "unknown reason {:?} (congestion, maintenance, admission_refused)",
                a.reason
            )
        })?;
        let prefix = match self.config.advice.links.iter().find(|l| l.name == a.link) {
            Some(l) => (l.prefix.addr(), l.prefix.prefix_len()),
            None => {
                let p: mipcast_daemon::config::Ipv6Prefix = a.link.parse().map_err(|_| {
                    format!(
                        "no advice link named {:?} in the configuration, and not a prefix",
                        a.link
                    )
                })?;
                (p.addr(), p.prefix_len())
            }
        };
        let now = self.clock.reading();
        self.advised = 0;
        lock(&self.core).handle_input(
            now,
            Input::Advise(Advise {
                prefix,
                reason,
                avoid_secs: a.avoid_secs,
            }),
        );
        self.settle().await;
        info!(link = %a.link, reason = %a.reason, advised = self.advised, "operator handoff advice");
        Ok(serde_json::json!({
            "link": a.link,
            "prefix": format!("{}/{}", prefix.0, prefix.1),
            "reason": a.reason,
            "advised": self.advised,
        }))
    }
}

/// `suppressed`: lines of the same kind left out before this one (see [`LogSummary`]).
fn log_event(event: &Event, suppressed: u64) {
    match event {
        Event::Registered {
            hoa,
            coa,
            group,
            home_agent,
            lifetime_s,
            refresh,
        } => info!(%hoa, %coa, %group, %home_agent, lifetime_s, refresh, "terminal registered"),
        Event::ForwardingStarted {
            hoa,
            new_coa,
            grace_s,
        } => {
            info!(%hoa, %new_coa, grace_s, "terminal left; forwarding to its new care-of address")
        }
        Event::Removed { hoa, group, reason } => info!(%hoa, %group, ?reason, "terminal removed"),
        Event::Rejected { peer, hoa, status } => {
            info!(%peer, hoa = ?hoa, status, suppressed, "binding update rejected")
        }
        Event::ForwardingRefused { peer, hoa, reason } => {
            info!(%peer, hoa = ?hoa, reason, "forwarding request refused; nothing installed")
        }
        Event::Dropped { reason, detail } => {
            debug!(reason, detail, suppressed, "mobility message dropped")
        }
        Event::ProgrammingFailed { hoa, group } => {
            warn!(%hoa, %group, "kernel refused the terminal's state; registration revoked, answered 130")
        }
        Event::KernelRefused { change, reason } => {
            warn!(change, reason, "kernel refused a change")
        }
        Event::ReplySuppressed { peer } => {
            debug!(%peer, suppressed, "reply suppressed by the rate limit")
        }
        Event::Advised {
            hoa,
            on_link,
            reason,
            avoid_s,
            trigger,
        } => {
            info!(%hoa, %on_link, reason = crate::metrics::reason_label(*reason), avoid_s, trigger,
            "handoff advice sent")
        }
        Event::Context(e) => log_context(e, suppressed),
    }
}

fn log_context(e: &crate::core::ContextEvent, suppressed: u64) {
    use crate::core::ContextEvent as E;
    match e {
        E::Dropped { reason, peer } => {
            debug!(reason, %peer, suppressed, "context message dropped")
        }
        E::GaveUp { hoa, peer } => warn!(%hoa, %peer, "no context from the previous MMA; gave up"),
        E::UnknownPreviousMma { hoa, previous } => {
            info!(%hoa, %previous, "the previous MMA is not a configured peer; no context request")
        }
        other => info!(event = ?other, "context transfer"),
    }
}

impl Effects<Core> for Daemon {
    /// Route changes go in netlink batches (one per run of one op); MFC changes one by one.
    async fn apply(&mut self, changes: &[Change]) -> Vec<Outcome> {
        let mut outcomes = Vec::with_capacity(changes.len());
        let mut rest = changes;
        while let Some(first) = rest.first() {
            let routes: Vec<(Op, KObject)> = rest.iter().map_while(route_change).collect();
            if routes.is_empty() {
                outcomes.push(self.apply_mfc(*first));
                rest = rest.get(1..).unwrap_or_default();
                continue;
            }
            let applied = self.kernel.apply_in_runs(&routes).await;
            for ((op, _), outcome) in routes.iter().zip(&applied) {
                self.metrics.kernel_change(op.label(), outcome);
            }
            outcomes.extend(applied);
            rest = rest.get(routes.len()..).unwrap_or_default();
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
        if let Some(ro) = &self.ro {
            ro.core_event(self.clock.reading(), &event);
        }
        self.advised += usize::from(matches!(event, Event::Advised { .. }));
        self.changed |= matches!(
            event,
            Event::Registered { .. }
                | Event::ForwardingStarted { .. }
                | Event::Removed { .. }
                | Event::ProgrammingFailed { .. }
        );
        match &event {
            Event::Registered { hoa, .. }
            | Event::ForwardingStarted { hoa, .. }
            | Event::Removed { hoa, .. }
            | Event::ProgrammingFailed { hoa, .. } => self.touched.push(*hoa),
            _ => {}
        }
        self.log_limit
            .log(per_packet_kind(&event), self.clock.now(), |suppressed| {
                log_event(&event, suppressed)
            });
        self.metrics.record(&event, self.config.address);
    }

    fn now(&self) -> Now {
        self.clock.reading()
    }
}

impl Daemon {
    async fn send_now(&mut self, send: Send) {
        let sent = self
            .mh
            .send_to(&send.bytes, send.dst, PacketInfo::ANY.with_source(send.src))
            .await;
        if sent.is_ok() {
            self.metrics.signalling.mobility(
                mipcast_daemon::metrics::signalling::Direction::Sent,
                &send.bytes,
            );
        }
        if let Err(e) = sent {
            if let Some(suppressed) = self.log_limit.admit("send_failed", self.clock.now()) {
                warn!(dst = %send.dst, error = %e, suppressed, "sending a mobility message failed");
            }
        }
    }
}

/// A route, rule or neighbour change as the kernel layer takes it; None for MFC changes.
fn route_change(change: &Change) -> Option<(Op, KObject)> {
    match *change {
        Change::Add(o) => Some((Op::Add, o)),
        Change::Replace(o) => Some((Op::Replace, o)),
        Change::Delete(o) => Some((Op::Delete, o)),
        Change::AddMfc { .. } | Change::DelMfc { .. } => None,
    }
}

/// Opens the state journal and replays it. A file of an older version (one JSON list) is
/// read once and replaced by the first compaction; a torn last record (a crash in the middle
/// of a write) is cut off with a warning, never a failed start.
fn open_journal(
    path: &std::path::Path,
    me: Ipv6Addr,
    policy: &PolicyConfig,
) -> Result<(Journal<MmaRecord>, Records, Option<Ipv6Addr>), ShellError> {
    let (journal, state) = Journal::<MmaRecord>::open(path)?;
    // The journal's meta record: the seg6 tunnel source found before ours (16 bytes).
    let original = state
        .meta
        .as_deref()
        .and_then(|m| <[u8; 16]>::try_from(m).ok())
        .map(Ipv6Addr::from);
    if state.foreign {
        let records = match StateFile::<Records>::new(path).load() {
            Ok(r) => r.unwrap_or_default(),
            Err(e) => {
                warn!(error = %e, "state file unusable; starting without terminals");
                Vec::new()
            }
        };
        info!(path = %path.display(), terminals = records.len(), "state file of an older version read; it is rewritten as a journal");
        return Ok((journal, records, original));
    }
    if state.torn_bytes > 0 {
        warn!(path = %path.display(), bytes = state.torn_bytes, "the state journal ended in a partly written record (a crash while writing): ignored");
    }
    let records = state
        .records
        .into_values()
        .map(|r| crate::journal::restored(r, me, policy))
        .collect();
    Ok((journal, records, original))
}

/// Loads and checks a configuration file, including its security associations.
pub fn load_config(path: &std::path::Path) -> Result<(Config, SaTable), ShellError> {
    let config: Config = mipcast_daemon::config::load(path)?;
    let sas = sa::sa_table(&config.security_associations)?;
    mipcast_binding::Registrar::new(
        registrar_config(&config),
        sas.clone(),
        crate::core::MmaPolicy::new(config.address, policy_config(&config)),
    )?;
    Ok((config, sas))
}
