//! The reference topology (design/reference-path.sh) with the real `mma` binary in the MMA's
//! namespace:
//!
//! ```text
//! cn e0 ── e0 ha e1 ── e0 mma e1 ── e0 r e1 ── e0 mn (terminal)
//! 2001:db8:1::2  ::1  2001:db8:2::1  ::2  2001:db8:3::1  ::2  2001:db8:4::1  ::2, HoA on lo
//! ```
//! (The correspondent sits behind the home agent: the HA's End.DT6 looks inner packets up in
//! `main`, which has no local addresses, so the HA itself cannot be the correspondent.)
//! `ha` tunnels HoA traffic to the MMA (seg6 encap, tunnel source = its address) and
//! decapsulates reverse tunnels from the MMA; `r` forwards (MMA, G) with a static MFC entry
//! (smcroute), as pim-lite would after a join; `mn` decapsulates G-addressed tunnels with the
//! mobile-node recipe (End.DT6 + the nftables pkttype rule) and reverse-tunnels to the MMA.
#![allow(dead_code)] // each test binary uses a different part

use std::io::{Read, Write};
use std::net::{Ipv6Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mipcast_kernel::sockets::{MhSocket, PacketInfo};
use mipcast_netns_tests::{veth, Daemon, Netns};

use crate::common::*;

pub(crate) struct Topo {
    pub cn: Netns,
    pub ha: Netns,
    pub mma: Netns,
    pub r: Netns,
    pub mn: Netns,
    pub dir: PathBuf,
    pub smcroute: Option<Daemon>,
}

impl Topo {
    pub(crate) fn new(tag: &str) -> Topo {
        let cn = Netns::new(&format!("{tag}c"));
        let ha = Netns::new(&format!("{tag}h"));
        let mma = Netns::new(&format!("{tag}m"));
        let r = Netns::new(&format!("{tag}r"));
        let mn = Netns::new(&format!("{tag}n"));
        veth(&cn, "e0", "2001:db8:1::2/64", &ha, "e0", "2001:db8:1::1/64");
        cn.sh("ip -6 route add default via 2001:db8:1::1");
        veth(
            &ha,
            "e1",
            "2001:db8:2::1/64",
            &mma,
            "e0",
            "2001:db8:2::2/64",
        );
        veth(&mma, "e1", "2001:db8:3::1/64", &r, "e0", "2001:db8:3::2/64");
        veth(&r, "e1", "2001:db8:4::1/64", &mn, "e0", "2001:db8:4::2/64");
        ha.sh("ip -6 route add 2001:db8:3::/63 via 2001:db8:2::2 && ip -6 route add 2001:db8:99::/64 via 2001:db8:2::2 metric 2000");
        mma.sh("ip -6 route add default via 2001:db8:2::1 && ip -6 route add 2001:db8:4::/64 via 2001:db8:3::2");
        r.sh("ip -6 route add default via 2001:db8:3::1");
        mn.sh("ip -6 route add default via 2001:db8:4::1");
        // The home agent's data plane, by hand (the home-agent daemon is another crate's test).
        ha.sh(&format!(
            "ip -6 rule add pref 1000 lookup local && ip -6 rule del pref 0 && ip sr tunsrc set {HA} && \
             ip -6 route add {HOA}/128 encap seg6 mode encap.red segs {MMA} dev e1 && \
             ip -6 rule add pref 10 from {MMA} to {HA} ipproto 41 lookup 100 && \
             ip -6 route add {HA}/128 encap seg6local action End.DT6 table 254 dev e1 table 100"
        ));
        // The terminal: HoA on lo, decapsulation of its group, reverse tunnel to the MMA.
        mn.sh(&format!(
            "ip addr add {HOA}/128 dev lo && \
             ip -6 rule add pref 1000 lookup local && ip -6 rule del pref 0 && \
             ip -6 rule add pref 10 to {GROUP} ipproto 41 lookup 100 && \
             ip -6 route add {GROUP}/128 encap seg6local action End.DT6 table 255 dev e0 table 100 && \
             ip -6 rule add pref 20 from {HOA} lookup 200 && \
             ip -6 route add default encap seg6 mode encap.red segs {MMA} dev e0 table 200"
        ));
        mn.sh(&format!(
            "printf 'table ip6 mipcasttest {{\\n chain decap_pkttype {{\\n  type filter hook prerouting priority -300; policy accept;\\n  ip6 daddr {GROUP} ip6 nexthdr ipv6 meta pkttype set host\\n }}\\n}}\\n' | nft -f -"
        ));
        let dir = std::env::temp_dir().join(format!("mma-{}", mma.name()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut t = Topo {
            cn,
            ha,
            mma,
            r,
            mn,
            dir,
            smcroute: None,
        };
        t.start_site_router();
        t
    }

    /// The site router's static (MMA, G) entry, as pim-lite installs on a join.
    fn start_site_router(&mut self) {
        let conf = self.dir.join("smcroute.conf");
        std::fs::write(
            &conf,
            format!("phyint e0 enable\nphyint e1 enable\nmroute from e0 source {MMA} group {GROUP} to e1\n"),
        )
        .unwrap();
        let sock = self.dir.join("smcroute.sock");
        let log = self.dir.join("smcroute.log");
        let child = self.r.spawn(
            "smcrouted",
            &[
                "-f",
                conf.to_str().unwrap(),
                "-n",
                "-N",
                "-u",
                sock.to_str().unwrap(),
            ],
            Some(&log),
        );
        self.smcroute = Some(Daemon(child));
        wait_for(Duration::from_secs(10), "site router MFC entry", || {
            self.r.sh("cat /proc/net/ip6_mr_cache").contains("ff35:")
        });
    }

    /// Writes the key and the MMA config (state file and forwarding limits as given).
    pub(crate) fn write_config(&self, extra: &str) -> PathBuf {
        let key = self.dir.join("terminals.key");
        // Hex, so the key file decodes to exactly KEY's bytes.
        let hex: String = KEY.iter().map(|b| format!("{b:02x}")).collect();
        std::fs::write(&key, hex).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let config = self.dir.join("mma.yaml");
        std::fs::write(
            &config,
            format!(
                "address: {MMA}\nwan_interface: e0\nsite_interfaces: [e1]\nsite_prefixes: [2001:db8:4::/64]\n\
                 home_agents:\n  - address: {HA}\n    home_prefixes: [2001:db8:99::/64]\n\
                 security_associations:\n  - spi: {SPI}\n    algorithm: hmac-sha256-128\n    key_file: {key}\n    home_prefixes: [2001:db8:99::/64]\n\
                 forwarding:\n  default_grace: 2\n  max_grace: 3\n\
                 metrics:\n  listen: \"[::1]:9642\"\n  mfc_poll: 1\n\
                 state:\n  file: {state}\n  write_delay_ms: 50\n{extra}",
                key = key.display(),
                state = self.dir.join("state.json").display(),
            ),
        )
        .unwrap();
        config
    }

    pub(crate) fn log(&self, n: u32) -> PathBuf {
        self.dir.join(format!("mma{n}.log"))
    }

    /// Starts the daemon and waits for "mma ready" in its log `n`.
    pub(crate) fn start_mma(&self, config: &Path, n: u32) -> Daemon {
        let log = self.log(n);
        let child = self.mma.spawn(
            env!("CARGO_BIN_EXE_mma"),
            &["-c", config.to_str().unwrap(), "--log-level", "debug"],
            Some(&log),
        );
        let mut d = Daemon(child);
        wait_for(Duration::from_secs(15), "mma ready", || {
            if let Ok(Some(st)) = d.0.try_wait() {
                panic!(
                    "mma exited ({st}): {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("mma ready")
        });
        d
    }

    /// Sends `bu` from the terminal's on-link address and returns the acknowledgement.
    pub(crate) fn send_bu(&self, bu: &Bu) -> Ack {
        parse_ack(&self.send_bu_raw(bu), bu.coa, bu.hoa)
    }

    /// Sends `bu` from the terminal's on-link address and returns the acknowledgement's
    /// bytes, for callers that verify it with another key than the fixture's.
    pub(crate) fn send_bu_raw(&self, bu: &Bu) -> Vec<u8> {
        let bytes = bu.bytes();
        self.mn.enter(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let s = MhSocket::new().unwrap();
                s.send_to(&bytes, MMA, PacketInfo::ANY.with_source(bu.coa))
                    .await
                    .unwrap();
                let mut buf = vec![0u8; 2048];
                let r = tokio::time::timeout(Duration::from_secs(5), s.recv(&mut buf))
                    .await
                    .expect("no BAck within 5 s")
                    .unwrap();
                assert_eq!(r.source, MMA, "BAck source");
                buf.truncate(r.len);
                buf
            })
        })
    }

    pub(crate) fn register(&self, sequence: u16) -> Ack {
        let ack = self.send_bu(&terminal_bu(sequence, HOA, GROUP, ntp_now()));
        assert_eq!(ack.status, 0, "{ack:?}");
        ack
    }

    /// Our routes and rules in the MMA namespace.
    pub(crate) fn our_kernel_state(&self) -> String {
        // (This iproute2 ignores `proto` in `ip rule show`, so filter by hand.)
        self.mma
            .sh("ip -6 route show table all proto 158; ip -6 rule show | grep 'proto 158' || true")
    }

    /// Whether the MMA's MFC has the (MMA, G) entry, as /proc/net/ip6_mr_cache spells it.
    pub(crate) fn has_mfc_entry(&self) -> bool {
        let full = |a: Ipv6Addr| a.segments().map(|s| format!("{s:04x}")).join(":");
        self.mfc()
            .contains(&format!("{} {}", full(GROUP), full(MMA)))
    }

    pub(crate) fn mfc(&self) -> String {
        self.mma.sh("cat /proc/net/ip6_mr_cache")
    }
}

impl Drop for Topo {
    fn drop(&mut self) {
        self.smcroute.take();
        if std::thread::panicking() {
            for n in 1..=2 {
                if let Ok(log) = std::fs::read_to_string(self.log(n)) {
                    eprintln!("--- mma log {n} ---\n{log}");
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub(crate) fn wait_for(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

/// A packet capture in a namespace, read back with tshark as (outer src, outer dst, inner
/// src, inner dst) of IPv6-in-IPv6 packets.
pub(crate) struct Capture {
    daemon: Daemon,
    file: PathBuf,
}

impl Capture {
    pub(crate) fn start(ns: &Netns, ifname: &str, dir: &Path, name: &str) -> Capture {
        // --immediate-mode: without it packets wait in the kernel ring's current block and a
        // short capture stopped early records none of them.
        let file = dir.join(format!("{name}.pcap"));
        let log = dir.join(format!("{name}.log"));
        let child = ns.spawn(
            "tcpdump",
            &[
                "-i",
                ifname,
                "-n",
                "-U",
                "--immediate-mode",
                "-w",
                file.to_str().unwrap(),
                "ip6 proto 41",
            ],
            Some(&log),
        );
        let c = Capture {
            daemon: Daemon(child),
            file,
        };
        wait_for(Duration::from_secs(10), "tcpdump listening", || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("listening on")
        });
        c
    }

    /// Stops the capture and returns the tunnel packets' addresses.
    pub(crate) fn stop(mut self) -> Vec<(String, String, String, String)> {
        std::thread::sleep(Duration::from_millis(300));
        self.daemon
            .signal_and_wait(libc::SIGINT, Duration::from_secs(5));
        let out = std::process::Command::new("tshark")
            .args([
                "-r",
                self.file.to_str().unwrap(),
                "-T",
                "fields",
                "-e",
                "ipv6.src",
                "-e",
                "ipv6.dst",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let (src, dst) = l.split_once('\t')?;
                let (os, is) = src.split_once(',')?;
                let (od, id) = dst.split_once(',')?;
                Some((os.to_owned(), od.to_owned(), is.to_owned(), id.to_owned()))
            })
            .collect()
    }
}

/// A TCP echo exchange from the CN to the terminal's home address: the server runs
/// in `mn` bound to the HoA; returns what came back.
pub(crate) fn tcp_echo(t: &Topo, payload: &[u8]) -> Vec<u8> {
    let listener = t.mn.enter(|| TcpListener::bind((HOA, 7000)).unwrap());
    let server = std::thread::spawn(move || {
        listener.set_nonblocking(false).unwrap();
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = vec![0u8; 65536];
        let mut total = Vec::new();
        loop {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            total.extend_from_slice(&buf[..n]);
        }
        s.write_all(&total).unwrap();
    });
    let stream = t.cn.enter(|| {
        TcpStream::connect_timeout(&(HOA, 7000).into(), Duration::from_secs(10))
            .expect("TCP connect to the HoA")
    });
    let mut stream = stream;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(payload).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut back = Vec::new();
    stream.read_to_end(&mut back).unwrap();
    server.join().unwrap();
    back
}

/// True when a UDP datagram from `src` in `from` to `dst` in `to` arrives within `wait`.
pub(crate) fn udp_arrives(
    from: &Netns,
    src: Ipv6Addr,
    to: &Netns,
    dst: Ipv6Addr,
    port: u16,
    wait: Duration,
) -> bool {
    let probe = mipcast_netns_tests::UdpProbe::bind(to, &dst.to_string(), port);
    mipcast_netns_tests::udp_send(from, &src.to_string(), &dst.to_string(), port, "hello");
    probe.recv(wait).is_some_and(|(p, _)| p == "hello")
}
