//! The configuration file's values as the core's [`Settings`]: the protocol sections are the
//! core's own types already; interfaces lose what only the shell needs and prefixes become
//! the core's type. Built by the shell at start and on reload.
use crate::config::Config;
use crate::core::settings::{InterfaceSettings, Settings};

impl From<&Config> for Settings {
    fn from(cfg: &Config) -> Settings {
        Settings {
            interfaces: cfg
                .interfaces
                .iter()
                .map(|ic| InterfaceSettings {
                    name: ic.name.clone(),
                    role: ic.role,
                    mld: ic.mld(),
                    ra: ic.ra.as_ref().map(|ra| ra.network()),
                    pim: ic.pim,
                })
                .collect(),
            ssm_groups: cfg.ssm_groups.iter().map(|g| g.network()).collect(),
            pim: cfg.pim.clone(),
        }
    }
}
