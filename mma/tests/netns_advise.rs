//! `mma advise` against the real daemon in the reference topology: the operator's command
//! reaches the running MMA over its control socket, and the registered terminal receives a
//! handoff advice signed with its own security association, about its on-link address.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
mod common;
mod netns_common;

use std::process::Command;
use std::time::Duration;

use common::*;
use mipcast_kernel::sockets::MhSocket;
use mipcast_netns_tests::require_root;
use mipcast_wire::auth::Algorithm;
use mipcast_wire::mh::{advice_reason, Experimental, Message, MhRepr};
use netns_common::*;

#[test]
#[ignore = "needs root"]
fn netns_mma_advise_sends_signed_advice_to_the_terminals_on_the_link() {
    require_root();
    let t = Topo::new("adv");
    let socket = t.dir.join("mma.sock");
    let config = t.write_config(&format!(
        "advice:\n  control_socket: {}\n  avoid_secs: 30\n  links:\n    - name: acc1\n      prefix: 2001:db8:4::/64\n",
        socket.display()
    ));
    let _mma = t.start_mma(&config, 1);
    t.register(1);

    // The terminal side listens for Mobility Headers while the operator advises.
    let listener = std::thread::scope(|s| {
        let got = s.spawn(|| {
            t.mn.enter(|| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    let sock = MhSocket::new().unwrap();
                    let mut buf = vec![0u8; 2048];
                    let r = tokio::time::timeout(Duration::from_secs(5), sock.recv(&mut buf))
                        .await
                        .expect("no advice within 5 s")
                        .unwrap();
                    buf.truncate(r.len);
                    (r.source, r.destination, buf)
                })
            })
        });
        std::thread::sleep(Duration::from_millis(200));
        let out = Command::new(env!("CARGO_BIN_EXE_mma"))
            .args(["advise", "-c", config.to_str().unwrap()])
            .args([
                "--link",
                "acc1",
                "--reason",
                "congestion",
                "--avoid-secs",
                "40",
            ])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "mma advise: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("\"advised\":1"), "{stdout}");
        got.join().unwrap()
    });
    let (src, dst, bytes) = listener;
    assert_eq!((src, dst), (MMA, ON_LINK));
    let spi = mipcast_wire::auth::verify(&bytes, &ON_LINK, &HOA, |spi| {
        (spi == SPI).then_some((Algorithm::HmacSha256_128, KEY))
    })
    .expect("advice signed with the terminal's SA");
    assert_eq!(spi, SPI);
    let repr = MhRepr::parse(&bytes).unwrap();
    assert_eq!(repr.message, Message::BindingRefreshRequest);
    assert_eq!(repr.home_address(), Some(HOA));
    assert_eq!(
        repr.experimental().next(),
        Some(&Experimental::HandoffAdvice {
            reason: advice_reason::CONGESTION,
            avoid_secs: 40,
            link_address: ON_LINK,
        })
    );
    let metrics = t.mma.enter(|| {
        mipcast_daemon::metrics::fetch(
            std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 9642)),
            "/metrics",
        )
        .unwrap()
    });
    assert!(
        metrics.contains("mma_advice_sent_total{reason=\"congestion\",trigger=\"operator\"} 1"),
        "{metrics}"
    );

    // An unknown link is refused with a clear error, and nothing is sent.
    let out = Command::new(env!("CARGO_BIN_EXE_mma"))
        .args(["advise", "-c", config.to_str().unwrap()])
        .args(["--link", "nope", "--reason", "maintenance"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no advice link named"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
