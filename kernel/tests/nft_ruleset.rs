//! NftMarker against the kernel, compared with what `nft` itself installs from the design's rule
//! text. Needs root (own namespaces).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
use std::net::Ipv6Addr;

use mipcast_kernel::nft::{NftError, NftMarker};
use mipcast_netns_tests::{require_root, Netns};

const TABLE: &str = "mipcast_test";
const G1: &str = "ff35::200:ff:fe00:100";
const G2: &str = "ff35::200:ff:fe00:2";

fn ip(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// The design file's rule set, loaded by `nft -f`, one rule per group.
fn reference_script(groups: &[&str]) -> String {
    let rules: String = groups
        .iter()
        .map(|g| format!("    ip6 daddr {g} ip6 nexthdr ipv6 meta pkttype set host\n"))
        .collect();
    format!(
        "table ip6 {TABLE} {{\n  chain decap_pkttype {{\n    type filter hook prerouting priority -300; policy accept;\n{rules}  }}\n}}\n"
    )
}

#[test]
#[ignore = "needs root"]
fn marker_installs_exactly_the_reference_rule_and_removes_it() {
    require_root();
    let ours = Netns::new("nftA");
    let reference = Netns::new("nftB");
    reference.sh(&format!(
        "nft -f - <<'EOF'\n{}EOF",
        reference_script(&[G1, G2])
    ));

    let m = NftMarker::new(TABLE).unwrap();
    ours.enter(|| {
        assert_eq!(
            m.groups().unwrap(),
            Vec::<Ipv6Addr>::new(),
            "no table yet: no groups"
        );
        m.ensure_table().unwrap();
        m.ensure_table().unwrap();
        m.add_group(ip(G1)).unwrap();
        m.add_group(ip(G1)).unwrap();
        m.add_group(ip(G2)).unwrap();
        m.ensure_table().unwrap();
    });

    // Same ruleset as nft builds from the text, in the kernel's own rendering.
    let listing = ours.sh("nft list ruleset");
    assert_eq!(listing, reference.sh("nft list ruleset"));
    assert!(
        listing.contains("type filter hook prerouting priority raw; policy accept;"),
        "{listing}"
    );
    let json = ours.sh("nft -j list ruleset");
    assert!(
        json.contains(r#""hook": "prerouting", "prio": -300, "policy": "accept""#),
        "{json}"
    );
    assert!(
        json.contains(&format!(
            r#""expr": [{{"match": {{"op": "==", "left": {{"payload": {{"protocol": "ip6", "field": "daddr"}}}}, "right": "{G1}"}}}}, {{"match": {{"op": "==", "left": {{"payload": {{"protocol": "ip6", "field": "nexthdr"}}}}, "right": "ipv6"}}}}, {{"mangle": {{"key": {{"meta": {{"key": "pkttype"}}}}, "value": "host"}}}}]"#
        )),
        "{json}"
    );

    // A rule of another shape in our chain is not a group, and survives remove_group.
    ours.sh(&format!(
        "nft add rule ip6 {TABLE} decap_pkttype ip6 daddr ff35::9 counter"
    ));
    ours.enter(|| {
        // A fresh marker (a restarted daemon) finds the groups from the kernel alone.
        let restarted = NftMarker::new(TABLE).unwrap();
        assert_eq!(restarted.groups().unwrap(), vec![ip(G1), ip(G2)]);
        restarted.remove_group(ip(G1)).unwrap();
        restarted.remove_group(ip(G1)).unwrap();
        assert_eq!(restarted.groups().unwrap(), vec![ip(G2)]);
    });
    let listing = ours.sh("nft list ruleset");
    assert!(!listing.contains(G1), "{listing}");
    assert!(
        listing.contains(&format!(
            "ip6 daddr {G2} ip6 nexthdr ipv6 meta pkttype set host"
        )),
        "{listing}"
    );
    assert!(listing.contains("ip6 daddr ff35::9 counter"), "{listing}");

    ours.enter(|| {
        m.remove_table().unwrap();
        m.remove_table().unwrap();
        m.remove_group(ip(G2)).unwrap();
        assert_eq!(m.groups().unwrap(), Vec::<Ipv6Addr>::new());
    });
    assert_eq!(ours.sh("nft list ruleset").trim(), "");
}

#[test]
#[ignore = "needs root"]
fn foreign_chain_of_the_same_name_is_reported() {
    require_root();
    let ns = Netns::new("nftC");
    // Someone made our chain on another hook: we must say so, not silently mark nothing.
    ns.sh(&format!(
        "nft add table ip6 {TABLE} && nft add chain ip6 {TABLE} decap_pkttype '{{ type filter hook input priority 0; }}'"
    ));
    let err = ns
        .enter(|| NftMarker::new(TABLE).unwrap().add_group(ip(G1)))
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, NftError::Kernel { .. }), "{text}");
    assert!(
        text.contains(TABLE) && text.contains(G1) && text.contains("prerouting priority -300"),
        "{text}"
    );
    let listing = ns.sh("nft list ruleset");
    assert!(
        !listing.contains("meta pkttype"),
        "the batch must have been refused whole: {listing}"
    );
}
