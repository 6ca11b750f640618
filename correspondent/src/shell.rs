//! The correspondent agent runs the home agent's shell ([`home_agent::shell`]) with its own
//! [`Agent`]: its configuration layout, its registrar policy, its metric prefix
//! (`correspondent_`), and no home link (no neighbour proxy: a correspondent only tunnels).
//! Bindings are not re-checked after a reload (they live on until they expire).
use std::path::Path;

use home_agent::agent::{Agent, Settings};
use home_agent::core::plan::Plan;
use home_agent::metrics::Profile;
use mipcast_binding::{RegistrarConfig, SaError, SaTable};
use mipcast_daemon::caps::Capability;
use mipcast_daemon::cli::RunOptions;
use mipcast_daemon::config::ConfigError;
use mipcast_daemon::driver::ReloadDiff;
use mipcast_proto::ReplyBudgets;

use crate::config::Config;
use crate::core::{CorrespondentPolicy, PolicyError};

pub use home_agent::shell::{Originals, SavedState, ShellError, StatusPage};

/// Runs the daemon until SIGTERM/SIGINT.
pub fn run(config: Config, options: RunOptions) -> Result<(), ShellError> {
    home_agent::shell::run(config, options)
}

impl Agent for Config {
    type Policy = CorrespondentPolicy;
    type PolicyError = PolicyError;
    const NAME: &'static str = "correspondent";
    const TITLE: &'static str = "correspondent agent";
    const LOCAL_SECTION: &'static str = "correspondent";
    const METRICS: Profile = Profile {
        prefix: "correspondent",
        bindings_help: "Route-optimisation bindings (home address -> MMA) in the binding cache",
        kernel_changes_help: "Kernel changes (routes, rules) asked of the kernel, by operation; the refused ones are also in kernel_errors",
        home_link: false,
        sent_by_type: true,
    };
    const CAPABILITIES: &'static [(Capability, &'static str)] = &[
        (
            Capability::NetAdmin,
            "routes, policy rules and the seg6 tunnel source",
        ),
        (Capability::NetRaw, "the raw Mobility Header socket"),
    ];
    const PEER_COLUMN: &'static str = "MMA (CARE-OF ADDRESS)";

    fn load(path: &Path) -> Result<Self, ConfigError> {
        Config::load(path)
    }

    fn check(&self) -> Result<(), String> {
        Config::check(self).map_err(|e| e.to_string())
    }

    fn settings(&self) -> Settings {
        Settings {
            interface: self.correspondent.interface.clone(),
            address: self.correspondent.address,
            proxy: None,
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

    fn policy(&self) -> Result<CorrespondentPolicy, PolicyError> {
        Config::policy(self)
    }

    fn budgets(&self) -> ReplyBudgets {
        self.reply_rate_limit.budgets()
    }

    fn plan(&self, uplink_ifindex: u32) -> Plan {
        crate::core::plan(
            self.correspondent.address,
            uplink_ifindex,
            self.kernel.decap_table,
            self.kernel.decap_rule_pref,
            self.correspondent.role.inner_table(),
        )
        .with_previous_coa_window(self.kernel.previous_coa_accept_ms)
    }

    /// The MMAs (sources, keys, home prefixes) and the reply rate limit change in place.
    fn live_diff(&self, new: &Self) -> ReloadDiff {
        ReloadDiff::default()
            // Each MMA's association key is re-read from its file.
            .live("mmas", true)
            .live(
                "reply_rate_limit",
                self.reply_rate_limit != new.reply_rate_limit,
            )
    }

    fn adopt(&mut self, new: Self) {
        self.mmas = new.mmas;
        self.reply_rate_limit = new.reply_rate_limit;
    }
}
