//! The configuration file's values as the core's [`Settings`] (plain values, no serde or
//! daemon types), built by the shell at start and on reload.
use crate::config::{
    Config, GroupRange, InterfaceConfig, MapConfig, MldConfig, PimConfig, RaConfig, RaPrefix, Role,
};
use crate::core::settings::{self as core, Settings};

impl From<&Config> for Settings {
    fn from(cfg: &Config) -> Settings {
        Settings {
            interfaces: cfg.interfaces.iter().map(Into::into).collect(),
            ssm_groups: cfg.ssm_groups.iter().map(|&g| g.into()).collect(),
            pim: (&cfg.pim).into(),
        }
    }
}

impl From<&InterfaceConfig> for core::InterfaceSettings {
    fn from(ic: &InterfaceConfig) -> core::InterfaceSettings {
        core::InterfaceSettings {
            name: ic.name.clone(),
            role: match ic.role {
                Role::Access => core::Role::Access,
                Role::Core => core::Role::Core,
            },
            mld: (&ic.mld()).into(),
            ra: ic.ra.as_ref().map(Into::into),
            pim: ic.pim,
        }
    }
}

impl From<GroupRange> for core::GroupRange {
    fn from(g: GroupRange) -> core::GroupRange {
        match g {
            GroupRange::SsmAnyScope => core::GroupRange::SsmAnyScope,
            GroupRange::Prefix(p) => core::GroupRange::Prefix(p.network()),
        }
    }
}

impl From<&MldConfig> for core::MldSettings {
    fn from(m: &MldConfig) -> core::MldSettings {
        core::MldSettings {
            robustness: m.robustness,
            query_interval_secs: m.query_interval_secs,
            query_response_interval_ms: m.query_response_interval_ms,
            last_listener_query_interval_ms: m.last_listener_query_interval_ms,
            last_listener_query_count: m.last_listener_query_count,
            startup_query_interval_secs: m.startup_query_interval_secs,
            startup_query_count: m.startup_query_count,
            fast_leave: m.fast_leave,
            max_groups: m.max_groups,
            max_sources_per_group: m.max_sources_per_group,
            max_sg: m.max_sg,
            reports_per_second_per_host: m.reports_per_second_per_host,
            report_burst_per_host: m.report_burst_per_host,
        }
    }
}

impl From<&RaConfig> for core::RaSettings {
    fn from(r: &RaConfig) -> core::RaSettings {
        core::RaSettings {
            max_interval_ms: r.max_interval_ms,
            min_interval_ms: r.min_interval_ms,
            solicited_delay_max_ms: r.solicited_delay_max_ms,
            min_delay_between_ras_ms: r.min_delay_between_ras_ms,
            router_lifetime_secs: r.router_lifetime_secs,
            cur_hop_limit: r.cur_hop_limit,
            mtu: r.mtu,
            prefixes: r.prefixes.iter().map(Into::into).collect(),
            map: r.map.as_ref().map(Into::into),
        }
    }
}

impl From<&RaPrefix> for core::RaPrefix {
    fn from(p: &RaPrefix) -> core::RaPrefix {
        core::RaPrefix {
            prefix: p.prefix.network(),
            on_link: p.on_link,
            autonomous: p.autonomous,
            valid_lifetime_secs: p.valid_lifetime_secs,
            preferred_lifetime_secs: p.preferred_lifetime_secs,
        }
    }
}

impl From<&MapConfig> for core::MapSettings {
    fn from(m: &MapConfig) -> core::MapSettings {
        core::MapSettings {
            address: m.address,
            distance: m.distance,
            preference: m.preference,
            rcoa: m.rcoa,
            valid_lifetime_secs: m.valid_lifetime_secs,
        }
    }
}

impl From<&PimConfig> for core::PimSettings {
    fn from(p: &PimConfig) -> core::PimSettings {
        core::PimSettings {
            hello_period_secs: p.hello_period_secs,
            hello_holdtime_secs: p.hello_holdtime_secs,
            triggered_hello_delay_ms: p.triggered_hello_delay_ms,
            dr_priority: p.dr_priority,
            join_prune_period_secs: p.join_prune_period_secs,
            join_prune_holdtime_secs: p.join_prune_holdtime_secs,
            override_interval_ms: p.override_interval_ms,
            propagation_delay_ms: p.propagation_delay_ms,
            rpf_check_interval_secs: p.rpf_check_interval_secs,
            assert_metric_preference: p.assert_metric_preference,
            assert_metric: p.assert_metric,
            assert_time_secs: p.assert_time_secs,
        }
    }
}
