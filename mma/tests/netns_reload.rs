//! SIGHUP reload of the real `mma` in the reference topology: a new key for the terminals'
//! SA takes effect for the next Binding Update while the registered terminal's routes and
//! MFC entry stay as they were, and a broken file is refused with the running configuration
//! kept.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
mod common;
mod netns_common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::*;
use mipcast_netns_tests::require_root;
use mipcast_wire::auth::Algorithm;
use mipcast_wire::mh::{Message, MhRepr};
use netns_common::*;

const KEY2: &[u8] = b"a-completely-new-terminal-key-02";

fn write_key(path: &Path, key: &[u8]) {
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(path, hex).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Status and sequence of a BAck, and whether it verifies with `key`.
fn ack_with_key(t: &Topo, bu: &Bu, key: &[u8]) -> (u8, u16, bool) {
    let bytes = t.send_bu_raw(bu);
    let repr = MhRepr::parse(&bytes).expect("parse BAck");
    let Message::BindingAck(back) = repr.message else {
        panic!("not a BAck: {repr:?}")
    };
    let authentic = mipcast_wire::auth::verify(&bytes, &bu.coa, &bu.hoa, |spi| {
        (spi == SPI).then_some((Algorithm::HmacSha256_128, key))
    })
    .is_ok();
    (back.status, back.sequence, authentic)
}

fn signed_with(sequence: u16, key: &[u8]) -> Bu {
    Bu {
        key: Some(key.to_vec()),
        ..terminal_bu(sequence, HOA, GROUP, ntp_now())
    }
}

/// The (group, origin, iif, oifs) columns of the (MMA, G) MFC line, without its counters.
fn mfc_entry(t: &Topo) -> Vec<String> {
    let group = GROUP.segments().map(|s| format!("{s:04x}")).join(":");
    let mfc = t.mfc();
    let line = mfc
        .lines()
        .find(|l| l.starts_with(&group))
        .unwrap_or_else(|| panic!("no MFC entry for the group: {mfc}"));
    let cols: Vec<&str> = line.split_whitespace().collect();
    cols.iter()
        .take(3)
        .chain(cols.iter().skip(6))
        .map(|c| (*c).to_owned())
        .collect()
}

fn hup(mma: &mipcast_netns_tests::Daemon) {
    let st = std::process::Command::new("kill")
        .args(["-HUP", &mma.0.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

fn log_count(t: &Topo, needle: &str) -> usize {
    std::fs::read_to_string(t.log(1))
        .unwrap_or_default()
        .matches(needle)
        .count()
}

#[test]
#[ignore = "needs root"]
fn netns_sighup_new_key_keeps_terminal_and_broken_file_is_refused() {
    require_root();
    let t = Topo::new("mh");
    let config = t.write_config("");
    let mut mma = t.start_mma(&config, 1);
    t.register(1);
    assert!(t.has_mfc_entry(), "MFC: {}", t.mfc());
    let routes = t.our_kernel_state();
    assert!(routes.contains(&HOA.to_string()), "{routes}");
    let mfc = mfc_entry(&t);

    // The SA's key file now points at a new key.
    let key2 = t.dir.join("terminals2.key");
    write_key(&key2, KEY2);
    let key1 = t.dir.join("terminals.key");
    let text = std::fs::read_to_string(&config).unwrap();
    let good = text.replace(key1.to_str().unwrap(), key2.to_str().unwrap());
    assert_ne!(good, text);
    std::fs::write(&config, &good).unwrap();
    hup(&mma);
    wait_for(Duration::from_secs(5), "reload logged", || {
        log_count(&t, "configuration reloaded") == 1
    });

    assert_eq!(
        ack_with_key(&t, &signed_with(2, KEY), KEY).0,
        146,
        "a BU signed with the old key must be refused"
    );
    let (status, sequence, authentic) = ack_with_key(&t, &signed_with(2, KEY2), KEY2);
    assert_eq!((status, sequence), (0, 2), "a BU signed with the new key");
    assert!(authentic, "the BAck is signed with the new key");

    // The reload did not touch the registered terminal's kernel state.
    assert_eq!(t.our_kernel_state(), routes, "routes/rules changed");
    assert_eq!(mfc_entry(&t), mfc, "MFC entry changed");
    let log = std::fs::read_to_string(t.log(1)).unwrap();
    let reconciled = log
        .lines()
        .find(|l| l.contains("kernel reconciled") && l.contains("why=\"reload\""))
        .unwrap_or_else(|| panic!("no reconcile after the reload: {log}"));
    assert!(
        reconciled.contains("added=0")
            && reconciled.contains("replaced=0")
            && reconciled.contains("removed=0"),
        "{reconciled}"
    );
    assert!(
        udp_arrives(&t.cn, CN, &t.mn, HOA, 7500, Duration::from_secs(3)),
        "downlink after the reload"
    );

    // Broken files: a YAML error that would restore the old key, then an SA whose key file
    // does not exist. Each is refused; the daemon keeps the new key.
    let broken_yaml = format!("{}\nnot_a_field: [\n", text);
    let missing_key = good.replace(
        key2.to_str().unwrap(),
        t.dir.join("missing.key").to_str().unwrap(),
    );
    for (n, bad) in [broken_yaml, missing_key].into_iter().enumerate() {
        std::fs::write(&config, bad).unwrap();
        hup(&mma);
        wait_for(Duration::from_secs(5), "reload refusal logged", || {
            log_count(&t, "reload refused") == n + 1
        });
        assert!(
            mma.0.try_wait().unwrap().is_none(),
            "mma exited on a broken config"
        );
        let seq = 3 + 2 * n as u16;
        assert_eq!(
            ack_with_key(&t, &signed_with(seq, KEY), KEY).0,
            146,
            "old key accepted after broken reload {n}"
        );
        assert_eq!(
            ack_with_key(&t, &signed_with(seq, KEY2), KEY2).0,
            0,
            "running key refused after broken reload {n}"
        );
    }
    assert_eq!(log_count(&t, "configuration reloaded"), 1);
    assert_eq!(t.our_kernel_state(), routes);
    assert_eq!(mfc_entry(&t), mfc);
    let st = mma
        .signal_and_wait(libc::SIGTERM, Duration::from_secs(10))
        .expect("exits on SIGTERM");
    assert!(st.success(), "{st}");
    assert_eq!(t.our_kernel_state().trim(), "", "routes/rules left behind");
}

/// A reload whose home agent no longer serves the registered terminal's home prefix drops the
/// terminal at once: its MFC entry and routes go, one summary line says why, and the counter
/// has it.
#[test]
#[ignore = "needs root"]
fn netns_sighup_that_no_longer_allows_a_terminal_withdraws_it() {
    require_root();
    let t = Topo::new("mv");
    let config = t.write_config("");
    let mut mma = t.start_mma(&config, 1);
    t.register(1);
    assert!(t.has_mfc_entry(), "MFC: {}", t.mfc());
    assert!(t.our_kernel_state().contains(&HOA.to_string()));

    let text = std::fs::read_to_string(&config).unwrap();
    let narrowed = text.replace(
        &format!("address: {HA}\n    home_prefixes: [2001:db8:99::/64]"),
        &format!("address: {HA}\n    home_prefixes: [2001:db8:98::/64]"),
    );
    assert_ne!(narrowed, text);
    std::fs::write(&config, narrowed).unwrap();
    hup(&mma);
    wait_for(Duration::from_secs(5), "terminal withdrawn", || {
        !t.has_mfc_entry() && !t.our_kernel_state().contains(&HOA.to_string())
    });
    assert_eq!(log_count(&t, "no longer validate"), 1);
    let metrics = t
        .mma
        .enter(|| mipcast_daemon::metrics::fetch("[::1]:9642".parse().unwrap(), "/metrics"))
        .unwrap();
    assert!(
        metrics.contains(
            "mma_bindings_invalidated_total{when=\"reload\",reason=\"home_agent_mismatch\"} 1"
        ),
        "{metrics}"
    );
    let st = mma
        .signal_and_wait(libc::SIGTERM, Duration::from_secs(10))
        .expect("exits on SIGTERM");
    assert!(st.success(), "{st}");
    assert_eq!(t.our_kernel_state().trim(), "", "routes/rules left behind");
}
