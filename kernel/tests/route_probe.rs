//! The capability probe on this machine's kernel, in a throwaway namespace: everything we
//! rely on is present, ip6tnl is not (no CONFIG_IPV6_TUNNEL here), and the probe leaves the
//! namespace as it found it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
use mipcast_kernel::probe::{probe, Feature};
use mipcast_netns_tests::{require_root, Netns};

fn state(ns: &Netns) -> String {
    ns.sh(
        "ip -6 route show table all; ip -6 rule; ip -6 neigh show proxy; ip -br link; \
           sysctl -n net.ipv6.conf.all.mc_forwarding",
    )
}

#[test]
#[ignore = "needs root"]
fn probe_reports_this_kernel_and_leaves_nothing() {
    require_root();
    let ns = Netns::new("rp");
    let before = state(&ns);
    let caps = ns.enter(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(probe())
            .expect("probe")
    });
    println!("{caps:?}");
    assert!(
        caps.seg6 && caps.seg6local && caps.source_routes && caps.ipproto_rules,
        "{caps:?}"
    );
    assert!(caps.mrt6 && caps.mrt6_tables, "{caps:?}");
    assert!(!caps.ip6tnl, "{caps:?}");
    assert_eq!(
        caps.require(&[
            Feature::Seg6Encap,
            Feature::Seg6Local,
            Feature::SourceRoutes,
            Feature::IpprotoRules,
            Feature::Mrt6
        ]),
        Ok(())
    );
    let sentence = caps
        .require(&[Feature::Seg6Encap, Feature::Ip6Tnl])
        .unwrap_err();
    println!("{sentence}");
    assert!(
        sentence.contains("ip6tnl") && sentence.contains("CONFIG_IPV6_TUNNEL"),
        "{sentence}"
    );
    assert!(
        !sentence.contains("SEG6"),
        "only the missing feature is named: {sentence}"
    );
    assert_eq!(state(&ns), before, "the probe left something behind");
}
