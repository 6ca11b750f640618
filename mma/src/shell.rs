//! The tokio I/O shell: runs the [`Core`] against a raw Mobility Header socket, the kernel's
//! routing tables (rtnetlink), its multicast routing table (MRT6), signals, a state file and
//! the metrics listener.
use mipcast_daemon::cli::RunOptions;
use std::collections::{BTreeSet, HashSet};
use std::net::Ipv6Addr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use prometheus_client::registry::Registry;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use mipcast_binding::{BindingRecord, RegistrarConfig, SaError, SaTable};
use mipcast_daemon::clock::{sleep_until, Millis, SystemClock};
use mipcast_daemon::config::{sa, ConfigError};
use mipcast_daemon::metrics::{register_build_info, MetricsServer};
use mipcast_daemon::signals::{Signal, Signals};
use mipcast_daemon::state::{StateError, StateFile, StateWriter};
use mipcast_kernel::mrt6::{Mifi, Mrt6};
use mipcast_kernel::probe::{self, Feature};
use mipcast_kernel::route::{KObject, Kernel, RouteError};
use mipcast_kernel::sockets::{MhSocket, PacketInfo, SocketError};

use crate::config::Config;
use crate::core::{Change, Core, Event, Output, Plan, PolicyConfig};
use crate::metrics::Metrics;
use crate::mrule::{Mrule, MruleError};
use crate::status::Status;

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
}

/// Runs the daemon until SIGTERM/SIGINT.
pub fn run(config: Config, options: RunOptions) -> Result<(), ShellError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ShellError::Runtime)?;
    runtime.block_on(async move { Daemon::start(config, options).await?.run().await })
}

type Records = Vec<BindingRecord<crate::core::Terminal>>;

/// What [`Daemon::apply_kernel`] leaves to do after the kernel changes.
#[derive(Default)]
struct Applied {
    /// (source, destination, bytes, the registration it confirms).
    sends: Vec<(Ipv6Addr, Ipv6Addr, Vec<u8>, Option<Ipv6Addr>)>,
    events: Vec<Event>,
    failed: Vec<Change>,
}

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
    mrt6: Option<Mrt6>,
    mrule: Option<Mrule>,
    wan_mif: Mifi,
    site_mifs: Vec<Mifi>,
    mh: MhSocket,
    metrics: Metrics,
    state: StateWriter<Records>,
    /// The seg6 tunnel source before we set ours, put back on shutdown.
    previous_tunsrc: Ipv6Addr,
    server: JoinHandle<()>,
}

fn lock(core: &Mutex<Core>) -> MutexGuard<'_, Core> {
    core.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Daemon {
    async fn start(config: Config, options: RunOptions) -> Result<Daemon, ShellError> {
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
        )?;
        let core = Arc::new(Mutex::new(core));

        let previous_tunsrc = kernel.get_seg6_tunsrc().await?;
        kernel.set_seg6_tunsrc(config.address).await?;
        kernel
            .ensure_local_rule_moved(config.kernel.local_rule_pref)
            .await?;

        let metrics = Metrics::default();
        let mut registry = Registry::default();
        register_build_info(&mut registry, "mma", env!("CARGO_PKG_VERSION"));
        metrics.register(&mut registry);
        let status_core = Arc::clone(&core);
        let address = config.address;
        let server = MetricsServer::bind(config.metrics.listen, Arc::new(registry), move |path| {
            (path == "/status").then(|| status_json(&lock(&status_core), address, clock))
        })
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
        let counted = metrics.clone();
        let state = StateWriter::new(
            StateFile::new(config.state.file.clone()),
            Duration::from_millis(config.state.write_delay_ms),
            move |outcome| counted.state_write(outcome.is_ok()),
        );
        let mut daemon = Daemon {
            config,
            options,
            clock,
            core,
            kernel,
            mrt6: Some(mrt6),
            mrule,
            wan_mif,
            site_mifs,
            mh,
            metrics,
            state,
            previous_tunsrc,
            server,
        };
        daemon.restore().await;
        Ok(daemon)
    }

    /// Restores the state file's terminals and makes the kernel match: reconcile routes and
    /// rules (stale ones of ours go), re-add MFC entries (they died with the old socket).
    async fn restore(&mut self) {
        let records = match self.state.file().load() {
            Ok(records) => records.unwrap_or_default(),
            Err(e) => {
                warn!(error = %e, "state file unusable; starting without terminals");
                Vec::new()
            }
        };
        let now = self.clock.reading();
        let outputs = lock(&self.core).restore(records, now);
        let groups = lock(&self.core).desired_groups();
        for group in &groups {
            self.add_mfc(*group);
        }
        let restored = outputs
            .iter()
            .filter(|o| {
                matches!(
                    o,
                    Output::Event(Event::Registered { .. } | Event::ForwardingStarted { .. })
                )
            })
            .count();
        self.reconcile("start").await;
        self.update_counts();
        info!(
            terminals = restored,
            mfc_entries = groups.len(),
            address = %self.config.address,
            "mma ready"
        );
        mipcast_daemon::notify::ready();
    }

    async fn reconcile(&mut self, why: &str) {
        let desired: HashSet<KObject> = lock(&self.core).desired_objects();
        match self.kernel.reconcile(&desired).await {
            Ok(report) => {
                for e in &report.failed {
                    warn!(error = %e, "reconcile");
                    self.metrics.kernel_error("reconcile");
                }
                info!(
                    why,
                    wanted = desired.len(),
                    added = report.added.len(),
                    replaced = report.replaced.len(),
                    removed = report.removed.len() + report.removed_unrecognised,
                    failed = report.failed.len(),
                    "kernel reconciled"
                );
            }
            Err(e) => {
                warn!(error = %e, "reconcile failed");
                self.metrics.kernel_error("reconcile");
            }
        }
    }

    async fn run(mut self) -> Result<(), ShellError> {
        let mut signals = Signals::new().map_err(ShellError::Runtime)?;
        let mut buf = vec![0u8; RECV_BUF];
        let mfc_poll = self.config.metrics.mfc_poll;
        let mut mfc_tick = tokio::time::interval(if mfc_poll.is_zero() {
            Duration::from_secs(3600)
        } else {
            mfc_poll
        });
        loop {
            let deadline = lock(&self.core).next_deadline();
            let timer = deadline.map(|ms| self.clock.instant_at(Millis(ms)));
            tokio::select! {
                received = self.mh.recv(&mut buf) => {
                    let mut outputs = Vec::new();
                    let first = received.map(|rx| (rx, buf.get(..rx.len).unwrap_or_default()));
                    self.handle_received(first, &mut outputs);
                    // Drain what else is queued, so a burst of BUs is one batch of kernel changes.
                    self.mh.drain(&mut buf, BURST - 1, |received| {
                        self.handle_received(received, &mut outputs)
                    });
                    self.apply(outputs).await;
                }
                _ = sleep_until(timer) => {
                    let now = self.clock.reading();
                    let outputs = lock(&self.core).poll(now);
                    self.apply(outputs).await;
                }
                _ = self.state.due() => self.start_write(),
                _ = mfc_tick.tick(), if !mfc_poll.is_zero() => self.poll_mfc_counters(),
                signal = signals.next() => match signal {
                    Signal::Shutdown => break,
                    Signal::Reload => self.reload().await,
                },
            }
        }
        self.shutdown().await;
        Ok(())
    }

    fn handle_received(
        &self,
        received: Result<(mipcast_kernel::sockets::Received, &[u8]), SocketError>,
        outputs: &mut Vec<Output>,
    ) {
        match received {
            Ok((r, bytes)) => {
                let now = self.clock.reading();
                outputs.extend(lock(&self.core).handle_mh(r.source, r.destination, bytes, now));
            }
            Err(e) => {
                warn!(error = %e, "mobility header socket");
            }
        }
    }

    /// Applies outputs: every kernel change first (consecutive route changes of one kind as
    /// one netlink batch), then the messages, so no acknowledgement announces a binding the
    /// kernel does not have. A terminal whose change the kernel refused is revoked: its state
    /// withdrawn, its BAck(0) replaced by a 130 (see the core's documentation).
    async fn apply(&mut self, outputs: Vec<Output>) {
        let applied = self.apply_kernel(outputs).await;
        let mut revoked: BTreeSet<Ipv6Addr> = BTreeSet::new();
        let mut rollback = Vec::new();
        {
            let now = self.clock.reading();
            let mut core = lock(&self.core);
            let owners: BTreeSet<Ipv6Addr> = applied
                .failed
                .iter()
                .filter_map(|c| core.owner(c))
                .collect();
            for hoa in owners {
                rollback.extend(core.revoke(hoa, now));
                revoked.insert(hoa);
            }
        }
        // Only deletes: nothing in here can fail in a way that needs undoing.
        let undone = self.apply_kernel(rollback).await;
        let mut changed = false;
        for event in applied.events.iter().chain(&undone.events) {
            let superseded = match event {
                Event::Registered { hoa, .. } | Event::ForwardingStarted { hoa, .. } => {
                    revoked.contains(hoa)
                }
                _ => false,
            };
            if superseded {
                continue;
            }
            changed |= matches!(
                event,
                Event::Registered { .. }
                    | Event::ForwardingStarted { .. }
                    | Event::Removed { .. }
                    | Event::ProgrammingFailed { .. }
            );
            log_event(event);
            self.metrics.record(event, self.config.address);
        }
        let sends = applied
            .sends
            .into_iter()
            .filter(|s| !s.3.is_some_and(|hoa| revoked.contains(&hoa)))
            .chain(undone.sends);
        for (src, dst, bytes, _) in sends {
            if let Err(e) = self
                .mh
                .send_to(&bytes, dst, PacketInfo::ANY.with_source(src))
                .await
            {
                warn!(%dst, error = %e, "sending a mobility message failed");
            }
        }
        if changed {
            self.update_counts();
            self.state.mark_dirty();
        }
    }

    /// Applies the kernel changes of `outputs` in order; returns the rest and the changes the
    /// kernel refused (adds and replaces; a delete of something already gone is fine).
    async fn apply_kernel(&mut self, outputs: Vec<Output>) -> Applied {
        let mut applied = Applied::default();
        let mut pending: Vec<Change> = Vec::new();
        for output in outputs {
            match output {
                Output::Kernel(change @ (Change::AddMfc { .. } | Change::DelMfc { .. })) => {
                    if !self.apply_mfc(change) {
                        applied.failed.push(change);
                    }
                }
                Output::Kernel(change) => {
                    if pending.first().is_some_and(|p| {
                        std::mem::discriminant(p) != std::mem::discriminant(&change)
                    }) {
                        let failed = self.flush_routes(std::mem::take(&mut pending)).await;
                        applied.failed.extend(failed);
                    }
                    pending.push(change);
                }
                Output::Send {
                    src,
                    dst,
                    bytes,
                    confirms,
                } => applied.sends.push((src, dst, bytes, confirms)),
                Output::Event(event) => applied.events.push(event),
            }
        }
        let failed = self.flush_routes(pending).await;
        applied.failed.extend(failed);
        applied
    }

    /// Applies one batch of route changes of one kind; returns the adds and replaces refused.
    async fn flush_routes(&mut self, changes: Vec<Change>) -> Vec<Change> {
        let mut failed = Vec::new();
        let Some(first) = changes.first().copied() else {
            return failed;
        };
        let objects: Vec<KObject> = changes
            .iter()
            .filter_map(|c| match *c {
                Change::Add(o) | Change::Replace(o) | Change::Delete(o) => Some(o),
                _ => None,
            })
            .collect();
        let op = match first {
            Change::Add(_) => "add",
            Change::Replace(_) => "replace",
            _ => "delete",
        };
        self.metrics.kernel_changes(op, objects.len());
        match first {
            Change::Add(_) => {
                for e in self.kernel.add_batch(&objects).await {
                    // A route left by a crashed predecessor: take its place.
                    let retried = match (&e, e.errno()) {
                        (RouteError::Object { object, .. }, Some(libc::EEXIST)) => {
                            self.kernel.replace(object).await
                        }
                        _ => Err(e),
                    };
                    if let Err(e) = retried {
                        warn!(error = %e, "kernel change failed");
                        self.metrics.kernel_error("add");
                        match e {
                            RouteError::Object { object, .. } => failed.push(Change::Add(object)),
                            // Unattributable: every add of the batch may have failed.
                            _ => failed.extend(changes.iter().copied()),
                        }
                    }
                }
            }
            Change::Replace(_) => {
                for o in &objects {
                    if let Err(e) = self.kernel.replace(o).await {
                        warn!(error = %e, "kernel change failed");
                        self.metrics.kernel_error("replace");
                        failed.push(Change::Replace(*o));
                    }
                }
            }
            _ => {
                for e in self.kernel.delete_batch(&objects).await {
                    // Already gone is what we wanted.
                    if !matches!(e.errno(), Some(libc::ESRCH | libc::ENOENT)) {
                        warn!(error = %e, "kernel change failed");
                        self.metrics.kernel_error("delete");
                    }
                }
            }
        }
        failed
    }

    /// Applies an MFC change; false when an add failed.
    fn apply_mfc(&mut self, change: Change) -> bool {
        match change {
            Change::AddMfc { group, .. } => self.add_mfc(group),
            Change::DelMfc { source, group } => {
                if let Some(mrt6) = &self.mrt6 {
                    self.metrics.kernel_changes("del_mfc", 1);
                    match mrt6.del_mfc(source, group) {
                        Err(SocketError::Os { source: e, .. })
                            if e.raw_os_error() == Some(libc::ENOENT) => {}
                        Err(e) => {
                            warn!(%group, error = %e, "removing the MFC entry failed");
                            self.metrics.kernel_error("del_mfc");
                        }
                        Ok(()) => {}
                    }
                }
                true
            }
            _ => true,
        }
    }

    fn add_mfc(&mut self, group: Ipv6Addr) -> bool {
        let Some(mrt6) = &self.mrt6 else { return true };
        self.metrics.kernel_changes("add_mfc", 1);
        if let Err(e) = mrt6.add_mfc(self.config.address, group, self.wan_mif, &self.site_mifs) {
            warn!(%group, error = %e, "installing the MFC entry failed");
            self.metrics.kernel_error("add_mfc");
            return false;
        }
        true
    }

    fn poll_mfc_counters(&self) {
        let Some(mrt6) = &self.mrt6 else { return };
        let source = self.config.address;
        for group in lock(&self.core).desired_groups() {
            match mrt6.sg_counters(source, group) {
                Ok(c) => self.metrics.set_sg(source, group, c),
                Err(e) => debug!(%group, error = %e, "reading MFC counters"),
            }
        }
    }

    fn update_counts(&self) {
        let (served, forwarding) = lock(&self.core).counts();
        self.metrics.set_counts(served, forwarding);
    }

    /// Hands a snapshot of the terminals to the background writer (the write fsyncs).
    fn start_write(&mut self) {
        let (core, clock) = (&self.core, self.clock);
        self.state.start(|| lock(core).records(clock.reading()));
    }

    async fn reload(&mut self) {
        let path = self.options.config_path.clone();
        let new: Config = match mipcast_daemon::config::load(&path) {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "reload refused; keeping the running configuration");
                return;
            }
        };
        let sas = match sa::sa_table(&new.security_associations) {
            Ok(t) => t,
            Err(e) => {
                warn!(error = %e, "reload refused; keeping the running configuration");
                return;
            }
        };
        let old = &self.config;
        let restart_only = [
            ("address", old.address != new.address),
            ("wan_interface", old.wan_interface != new.wan_interface),
            (
                "site_interfaces",
                old.site_interfaces != new.site_interfaces,
            ),
            ("registration", old.registration != new.registration),
            ("kernel", old.kernel != new.kernel),
            ("metrics", old.metrics != new.metrics),
            ("state", old.state != new.state),
        ];
        for (field, _) in restart_only.iter().filter(|(_, changed)| *changed) {
            warn!(
                field,
                "changing this setting needs a restart; the running value stays"
            );
        }
        let changed: Vec<&str> = [
            ("site_prefixes", old.site_prefixes != new.site_prefixes),
            ("group_prefix", old.group_prefix() != new.group_prefix()),
            ("home_agents", old.home_agents != new.home_agents),
            ("forwarding", old.forwarding != new.forwarding),
            ("security_associations", true),
        ]
        .iter()
        .filter(|(_, c)| *c)
        .map(|(f, _)| *f)
        .collect();
        // Settings that need a restart keep their running values.
        let mut merged = new;
        merged.address = old.address;
        merged.wan_interface = old.wan_interface.clone();
        merged.site_interfaces = old.site_interfaces.clone();
        merged.registration = old.registration;
        merged.kernel = old.kernel;
        merged.metrics = old.metrics;
        merged.state = old.state.clone();
        {
            let mut core = lock(&self.core);
            let (wan, site) = (core.plan().wan_ifindex, core.plan().site_ifindex);
            core.reload(sas, policy_config(&merged), plan(&merged, wan, site));
        }
        self.config = merged;
        self.reconcile("reload").await;
        info!(changed = ?changed, "configuration reloaded (registered terminals kept)");
    }

    async fn shutdown(mut self) {
        let records = lock(&self.core).records(self.clock.reading());
        let terminals = records.len();
        // A failure is logged and counted by the writer.
        if self.state.write_now(records).await.is_ok() {
            info!(terminals, file = %self.state.file().path().display(), "state saved");
        }
        self.server.abort();
        let mfc = lock(&self.core).desired_groups().len();
        if let Some(mrt6) = self.mrt6.take() {
            // MRT6_DONE: the kernel drops our MIFs and MFC entries.
            if let Err(e) = mrt6.close() {
                warn!(error = %e, "closing the MRT6 table");
            }
        }
        if self.options.keep_kernel_state {
            info!(
                mfc_entries_flushed = mfc,
                "shutting down; routes and rules kept (--keep-kernel-state)"
            );
            return;
        }
        let removed = match self.kernel.remove_all_ours().await {
            Ok(report) => {
                for e in &report.failed {
                    warn!(error = %e, "removing kernel state");
                }
                report.removed.len() + report.removed_unrecognised
            }
            Err(e) => {
                warn!(error = %e, "removing kernel state");
                0
            }
        };
        if let Some(rule) = &self.mrule {
            if let Err(e) = rule.remove().await {
                warn!(error = %e, "removing the mrule");
            }
        }
        if let Err(e) = self
            .kernel
            .restore_local_rule(self.config.kernel.local_rule_pref)
            .await
        {
            warn!(error = %e, "restoring the local rule");
        }
        // Put back whatever tunnel source was there before us (usually `::`, unset).
        if let Err(e) = self.kernel.set_seg6_tunsrc(self.previous_tunsrc).await {
            warn!(error = %e, "restoring the seg6 tunnel source");
        }
        info!(
            routes_and_rules = removed,
            mfc_entries = mfc,
            mrule = self.mrule.is_some(),
            tunsrc = %self.previous_tunsrc,
            "shut down; kernel state removed"
        );
    }
}

fn status_json(core: &Core, address: Ipv6Addr, clock: SystemClock) -> String {
    let now = clock.reading();
    let (served, forwarding) = core.counts();
    let status = Status {
        address,
        uptime_s: now.mono_ms / 1000,
        terminals_registered: served,
        forwarding_windows: forwarding,
        terminals: core.terminal_status(now.mono_ms),
    };
    serde_json::to_string(&status).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

fn log_event(event: &Event) {
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
            info!(%peer, hoa = ?hoa, status, "binding update rejected")
        }
        Event::Dropped { reason, detail } => debug!(reason, detail, "mobility message dropped"),
        Event::ProgrammingFailed { hoa, group } => {
            warn!(%hoa, %group, "kernel refused the terminal's state; registration revoked, answered 130")
        }
    }
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
