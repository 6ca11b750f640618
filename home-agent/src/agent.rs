//! What differs between the daemons that run the home agent's core: the home agent itself and
//! the correspondent agent (the same core with its own registrar policy). The shell
//! ([`crate::shell`]) is generic over [`Agent`]; each daemon implements it for its
//! configuration, so sockets, kernel programming, the state journal, metrics, reload and
//! shutdown are written once.
use std::fmt::Display;
use std::marker::PhantomData;
use std::net::{Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use mipcast_binding::{Now, Policy, RegistrarConfig, RestoreRefusal, SaError, SaTable};
use mipcast_daemon::caps::Capability;
use mipcast_daemon::cli::{self, RunOptions};
use mipcast_daemon::config::ConfigError;
use mipcast_daemon::driver::ReloadDiff;
use mipcast_proto::ReplyBudgets;

use crate::config::{Config, ProxyMode};
use crate::core::plan::{Plan, PlanParams};
use crate::core::Core;
use crate::metrics::Profile;

/// The settings the shell reads from an agent's configuration, whatever its file layout.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where the decapsulation route sits and tunnels fall back to (the home link; the
    /// correspondent's uplink).
    pub interface: String,
    /// Our address: BUs are accepted on it; the outer source of every tunnel.
    pub address: Ipv6Addr,
    /// Who answers neighbour solicitations for registered home addresses (None: nobody).
    pub proxy: Option<ProxyMode>,
    pub kernel: KernelSettings,
    pub metrics: SocketAddr,
    pub state_file: PathBuf,
}

/// The `kernel` section (only changes at restart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelSettings {
    pub protocol: u8,
    pub decap_table: u32,
    pub decap_rule_pref: u32,
    pub local_rule_pref: u32,
}

/// An agent's configuration, as the generic shell needs it.
pub trait Agent: Sized + Send + 'static {
    type Policy: Policy<Payload = ()> + Send + 'static;
    type PolicyError: Display;
    /// The binary's name (build info).
    const NAME: &'static str;
    /// Its name in log lines ("home agent ready").
    const TITLE: &'static str;
    /// The configuration section `interface` and `address` are in (named by reload).
    const LOCAL_SECTION: &'static str;
    /// Its metric series (prefix, which families).
    const METRICS: Profile;
    /// The capabilities it needs and what for (checked before it runs).
    const CAPABILITIES: &'static [(Capability, &'static str)];
    /// The heading of the care-of address column in `status`.
    const PEER_COLUMN: &'static str;

    fn load(path: &Path) -> Result<Self, ConfigError>;
    /// What [`Agent::load`] cannot check alone: that the core's parts build.
    fn check(&self) -> Result<(), String>;
    fn settings(&self) -> Settings;
    fn registrar_config(&self) -> RegistrarConfig;
    fn sa_table(&self) -> Result<SaTable, SaError>;
    fn policy(&self) -> Result<Self::Policy, Self::PolicyError>;
    fn budgets(&self) -> ReplyBudgets;
    /// The kernel plan, with the ifindex of [`Settings::interface`].
    fn plan(&self, ifindex: u32) -> Plan;
    /// SIGHUP: the sections [`Agent::adopt`] takes from `new`, those that changed (keys are
    /// re-read from their files, so associations always count as changed).
    fn live_diff(&self, new: &Self) -> ReloadDiff;
    /// SIGHUP: what `new` changes against this running configuration. The agent's own
    /// section (interface, address), `bindings`, `kernel`, `metrics` and `state` need a
    /// restart; what [`Agent::adopt`] takes ([`Agent::live_diff`]) changes in place.
    fn reload_diff(&self, new: &Self) -> ReloadDiff {
        let (old, config) = (self.settings(), new.settings());
        ReloadDiff::default()
            .restart(
                Self::LOCAL_SECTION,
                old.interface != config.interface || old.address != config.address,
            )
            .restart(
                "bindings",
                self.registrar_config() != new.registrar_config(),
            )
            .restart("kernel", old.kernel != config.kernel)
            .restart("metrics", old.metrics != config.metrics)
            .restart("state", old.state_file != config.state_file)
            .merge(self.live_diff(new))
    }
    /// SIGHUP: takes what changes in place from `new` (the settings that need a restart stay
    /// as they are running).
    fn adopt(&mut self, new: Self);
    /// After a reload: the bindings the new configuration refuses, withdrawn from the core's
    /// open round. None by default (they live on until they expire).
    fn revalidate(_core: &mut Core<Self::Policy>, _now: Now) -> Vec<RestoreRefusal> {
        Vec::new()
    }
}

impl Agent for Config {
    type Policy = mipcast_binding::HomeAgentPolicy;
    type PolicyError = mipcast_binding::PolicyError;
    const NAME: &'static str = "home-agent";
    const TITLE: &'static str = "home agent";
    const LOCAL_SECTION: &'static str = "home_link";
    const METRICS: Profile = Profile::HOME_AGENT;
    const CAPABILITIES: &'static [(Capability, &'static str)] = &[
        (
            Capability::NetAdmin,
            "routes, policy rules, proxy-ND entries, the seg6 tunnel source and the proxy_ndp sysctl",
        ),
        (Capability::NetRaw, "the raw Mobility Header socket"),
    ];
    const PEER_COLUMN: &'static str = "CARE-OF ADDRESS";

    fn load(path: &Path) -> Result<Self, ConfigError> {
        Config::load(path)
    }

    fn check(&self) -> Result<(), String> {
        Config::check(self).map_err(|e| e.to_string())
    }

    fn settings(&self) -> Settings {
        Settings {
            interface: self.home_link.interface.clone(),
            address: self.home_link.address,
            proxy: self.home_link.proxy(),
            kernel: self.kernel.settings(),
            metrics: self.metrics.listen,
            state_file: self.state.file.clone(),
        }
    }

    fn registrar_config(&self) -> RegistrarConfig {
        Config::registrar_config(self)
    }

    fn sa_table(&self) -> Result<SaTable, SaError> {
        Config::sa_table(self)
    }

    fn policy(&self) -> Result<Self::Policy, Self::PolicyError> {
        Config::policy(self)
    }

    fn budgets(&self) -> ReplyBudgets {
        self.reply_rate_limit.budgets()
    }

    fn plan(&self, home_ifindex: u32) -> Plan {
        let plan = Plan::new(PlanParams {
            home_ifindex,
            ha_address: self.home_link.address,
            decap_table: self.kernel.decap_table,
            decap_rule_pref: self.kernel.decap_rule_pref,
        })
        .with_previous_coa_window(self.kernel.previous_coa_accept_ms);
        if self.home_link.proxy() == Some(ProxyMode::Kernel) {
            plan
        } else {
            plan.without_proxy_entries()
        }
    }

    /// Security associations, home prefixes and the reply rate limit change in place.
    fn live_diff(&self, new: &Self) -> ReloadDiff {
        ReloadDiff::default()
            .live("security_associations", true)
            .live("home_prefixes", self.home_prefixes != new.home_prefixes)
            .live(
                "reply_rate_limit",
                self.reply_rate_limit != new.reply_rate_limit,
            )
    }

    fn adopt(&mut self, new: Self) {
        self.security_associations = new.security_associations;
        self.home_prefixes = new.home_prefixes;
        self.reply_rate_limit = new.reply_rate_limit;
    }

    fn revalidate(core: &mut Core, now: Now) -> Vec<RestoreRefusal> {
        core.revalidate(now)
    }
}

/// An agent as the daemons' shared `main` sees it: `cli::main::<Cli<Config>>(args)`.
pub struct Cli<A>(PhantomData<A>);

impl<A: Agent> cli::Daemon for Cli<A> {
    const NAME: &'static str = A::NAME;
    const CAPABILITIES: &'static [(Capability, &'static str)] = A::CAPABILITIES;
    type Config = A;

    fn load(path: &Path) -> Result<A, String> {
        let config = A::load(path).map_err(|e| e.to_string())?;
        config
            .check()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(config)
    }

    fn metrics_listen(config: &A) -> SocketAddr {
        config.settings().metrics
    }

    /// One line per binding (see [`crate::table::bindings_table`]).
    fn status_table(json: &str) -> Result<String, String> {
        let page: crate::shell::StatusPage =
            serde_json::from_str(json).map_err(|e| e.to_string())?;
        Ok(crate::table::bindings_table(&page.bindings, A::PEER_COLUMN))
    }

    fn run(config: A, options: RunOptions) -> Result<(), String> {
        crate::shell::run(config, options).map_err(|e| e.to_string())
    }
}
