//! Test-side actors for the netns tests: a Router Advertisement sender (wire crate RA with the
//! MAP option, every 200 ms) and a scripted MMA / home agent that answers Binding Updates and
//! records them; plus the mobile node's config and helpers.
#![allow(dead_code)]
use std::net::Ipv6Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mipcast_kernel::sockets::{IcmpSocket, MhSocket, PacketInfo, ALL_NODES};
use mipcast_netns_tests::{veth, Daemon, Netns};
use mipcast_wire::auth::{self, Algorithm, Credentials};
use mipcast_wire::mh::{bu_flags, BindingAck, Experimental, Message, MhRepr, MobilityOption};
use mipcast_wire::nd::{MapOption, NdOption, NdRepr, PrefixInformation, RouterAdvert};

pub(crate) const KEY: [u8; 32] = [0x11; 32];
pub(crate) const SPI_HA: u32 = 1000;
pub(crate) const SPI_MMA: u32 = 1001;

/// A thread inside a namespace running a future on its own runtime; stopped and joined on drop.
pub(crate) struct Bg {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Bg {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

pub(crate) fn in_ns<F, Fut>(ns: &Netns, f: F) -> Bg
where
    F: FnOnce(Arc<AtomicBool>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let stop = Arc::new(AtomicBool::new(false));
    let s = Arc::clone(&stop);
    let path = format!("/var/run/netns/{}", ns.name());
    let handle = std::thread::spawn(move || {
        let fd = std::fs::File::open(&path).unwrap();
        nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(f(s));
    });
    Bg {
        stop,
        handle: Some(handle),
    }
}

pub(crate) fn ifindex(ns: &Netns, name: &str) -> u32 {
    let out = ns.sh(&format!("cat /sys/class/net/{name}/ifindex"));
    out.trim().parse().unwrap()
}

pub(crate) fn ra_bytes(prefix: Ipv6Addr, mma: Option<Ipv6Addr>) -> Vec<u8> {
    let mut options = vec![NdOption::PrefixInformation(PrefixInformation {
        prefix_len: 64,
        on_link: true,
        autonomous: true,
        valid_lifetime: 86400,
        preferred_lifetime: 14400,
        prefix,
    })];
    if let Some(address) = mma {
        options.push(NdOption::Map(MapOption {
            distance: 1,
            preference: 10,
            rcoa: false,
            valid_lifetime: 3600,
            address,
        }));
    }
    let repr = NdRepr::RouterAdvert(RouterAdvert {
        cur_hop_limit: 64,
        managed: false,
        other: false,
        router_lifetime: 1800,
        reachable_time: 0,
        retrans_timer: 0,
        options,
    });
    let mut buf = vec![0; repr.buffer_len()];
    let n = repr.emit(&mut buf).unwrap();
    buf.truncate(n);
    buf
}

/// Sends each (ifindex, RA) every 200 ms to ff02::1 with hop limit 255.
pub(crate) fn ra_sender(ns: &Netns, adverts: Vec<(u32, Vec<u8>)>) -> Bg {
    in_ns(ns, move |stop| async move {
        let s = IcmpSocket::new(&[]).unwrap();
        s.set_multicast_hops(255).unwrap();
        while !stop.load(Ordering::Relaxed) {
            for (ifindex, bytes) in &adverts {
                let _ = s.send_to(bytes, ALL_NODES, PacketInfo::on(*ifindex)).await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

/// One Binding Update as the scripted responder received it.
#[derive(Clone, Debug)]
pub(crate) struct RecBu {
    pub at: Instant,
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub seq: u16,
    pub flags: u16,
    pub lifetime_units: u16,
    pub hoa: Option<Ipv6Addr>,
    pub alt_coa: Option<Ipv6Addr>,
    pub group: Option<Ipv6Addr>,
    pub forward: Option<(Ipv6Addr, u32)>,
    pub authenticated: bool,
}

pub(crate) type Log = Arc<Mutex<Vec<RecBu>>>;

/// Answers every authenticated BU to a local address with an accepting, signed BAck (with
/// Assigned CoA = the address it was sent to when the M flag is set) and records it.
pub(crate) fn responder(ns: &Netns) -> (Bg, Log) {
    let log: Log = Arc::default();
    let l = Arc::clone(&log);
    let bg = in_ns(ns, move |stop| async move {
        let s = MhSocket::new().unwrap();
        let mut buf = vec![0u8; 2048];
        while !stop.load(Ordering::Relaxed) {
            let Ok(Ok(rx)) =
                tokio::time::timeout(Duration::from_millis(100), s.recv(&mut buf)).await
            else {
                continue;
            };
            let bytes = &buf[..rx.len];
            let Ok(repr) = MhRepr::parse(bytes) else {
                continue;
            };
            let Message::BindingUpdate(bu) = repr.message else {
                continue;
            };
            let Some(hoa) = repr.home_address() else {
                continue;
            };
            let coa = repr.alternate_care_of().unwrap_or(rx.source);
            let lookup = |spi: u32| {
                (spi == SPI_HA || spi == SPI_MMA).then_some((Algorithm::HmacSha256_128, &KEY[..]))
            };
            let verified = auth::verify(bytes, &coa, &hoa, lookup);
            let exp = |want: u8| {
                repr.experimental().find_map(|e| match (want, e) {
                    (1, Experimental::TerminalGroup(g)) => Some((*g, 0)),
                    (
                        3,
                        Experimental::ForwardingRequest {
                            new_coa,
                            grace_secs,
                        },
                    ) => Some((*new_coa, *grace_secs)),
                    _ => None,
                })
            };
            l.lock().unwrap().push(RecBu {
                at: Instant::now(),
                src: rx.source,
                dst: rx.destination,
                seq: bu.sequence,
                flags: bu.flags,
                lifetime_units: bu.lifetime,
                hoa: Some(hoa),
                alt_coa: repr.alternate_care_of(),
                group: exp(1).map(|(g, _)| g),
                forward: exp(3),
                authenticated: verified.is_ok(),
            });
            let Ok(spi) = verified else { continue };
            let mut options = vec![MobilityOption::ReplayProtection {
                timestamp: repr.replay_timestamp().unwrap_or(0),
            }];
            if bu.flags & bu_flags::MAP != 0 && bu.lifetime != 0 {
                options.push(MobilityOption::Experimental(Experimental::AssignedCoa(
                    rx.destination,
                )));
            }
            let back = MhRepr {
                message: Message::BindingAck(BindingAck {
                    status: 0,
                    flags: 0,
                    sequence: bu.sequence,
                    lifetime: bu.lifetime,
                }),
                options,
            };
            let mut out = vec![0u8; back.buffer_len() + 40];
            let creds = Credentials {
                spi,
                algorithm: Algorithm::HmacSha256_128,
                key: &KEY,
            };
            let n = back
                .emit_authenticated(&mut out, &creds, &coa, &hoa)
                .unwrap();
            let _ = s
                .send_to(
                    &out[..n],
                    rx.source,
                    PacketInfo::ANY.with_source(rx.destination),
                )
                .await;
        }
    });
    (bg, log)
}

pub(crate) struct MnSetup<'a> {
    pub hoa: &'a str,
    pub ha: &'a str,
    pub home_prefix: &'a str,
    pub interfaces: &'a [(&'a str, u8)],
    pub quality_dir: Option<&'a Path>,
    pub metrics_port: u16,
}

/// Writes key files and the MN config into `dir`; returns the config path.
pub(crate) fn write_mn_config(dir: &Path, s: &MnSetup<'_>) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let key = dir.join("mn.key");
    std::fs::write(
        &key,
        KEY.iter().map(|b| format!("{b:02x}")).collect::<String>(),
    )
    .unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut ifs = String::new();
    for (name, pref) in s.interfaces {
        ifs.push_str(&format!("  - name: {name}\n    preference: {pref}\n"));
        if let Some(q) = s.quality_dir {
            ifs.push_str(&format!(
                "    quality_file: {}/{name}.quality\n",
                q.display()
            ));
        }
    }
    let text = format!(
        "home_address: {hoa}\nhome_agent: {ha}\nhome_prefix: {hp}\nbinding_lifetime: 60\n\
         security_associations:\n  home_agent: {{ spi: {SPI_HA}, algorithm: hmac-sha256-128, key_file: {k} }}\n\
         \x20 default_mma: {{ spi: {SPI_MMA}, algorithm: hmac-sha256-128, key_file: {k} }}\n\
         interfaces:\n{ifs}\
         selection: {{ hysteresis: 10, min_dwell_ms: 500, ra_timeout_ms: 1500 }}\n\
         handover: {{ overlap_ms: 1000, forwarding_grace_secs: 5 }}\n\
         metrics: {{ listen: \"[::1]:{port}\" }}\n\
         state_file: {st}\n",
        hoa = s.hoa,
        ha = s.ha,
        hp = s.home_prefix,
        k = key.display(),
        port = s.metrics_port,
        st = dir.join("mn.state").display(),
    );
    let path = dir.join("mobile-node.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Polls `f` every 100 ms until it returns Some, or panics with `what` after `timeout`.
pub(crate) fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The MN's `/status` JSON, fetched inside its namespace.
pub(crate) fn status(ns: &Netns, port: u16) -> Option<serde_json::Value> {
    let body = ns.enter(|| {
        mipcast_daemon::metrics::fetch(
            std::net::SocketAddr::from((Ipv6Addr::LOCALHOST, port)),
            "/status",
        )
        .ok()
    })?;
    serde_json::from_str(&body).ok()
}

/// A packet capture in a namespace, stopped (and flushed) by [`Capture::finish`].
pub(crate) struct Capture {
    child: mipcast_netns_tests::Daemon,
    pub file: PathBuf,
}

impl Capture {
    pub(crate) fn start(ns: &Netns, ifname: &str, filter: &str, file: PathBuf) -> Capture {
        let f = file.to_str().unwrap().to_owned();
        let child = ns.spawn(
            "tcpdump",
            &["-i", ifname, "--immediate-mode", "-U", "-w", &f, filter],
            Some(&file.with_extension("log")),
        );
        // tcpdump reports "listening on" once the capture is armed.
        wait_for(Duration::from_secs(5), "tcpdump to start", || {
            std::fs::read_to_string(file.with_extension("log"))
                .ok()
                .filter(|l| l.contains("listening on"))
                .map(|_| ())
        });
        Capture {
            child: mipcast_netns_tests::Daemon(child),
            file,
        }
    }

    /// Stops the capture; returns tshark's field output for `display_filter`.
    pub(crate) fn finish(mut self, display_filter: &str, fields: &[&str]) -> Vec<String> {
        self.child
            .signal_and_wait(libc::SIGINT, Duration::from_secs(5));
        tshark(&self.file, display_filter, fields)
    }
}

/// tshark's field output (tab-separated, one line per packet) for `display_filter`.
pub(crate) fn tshark(file: &Path, display_filter: &str, fields: &[&str]) -> Vec<String> {
    let mut args = vec![
        "-r".to_owned(),
        file.to_str().unwrap().to_owned(),
        "-Y".into(),
        display_filter.into(),
        "-T".into(),
        "fields".into(),
    ];
    for f in fields {
        args.push("-e".into());
        args.push((*f).into());
    }
    let out = std::process::Command::new("tshark")
        .args(&args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Writes [`KEY`] as hex into `dir/name` with mode 600 (the daemons refuse readable keys).
pub(crate) fn write_key(dir: &Path, name: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let key = dir.join(name);
    std::fs::write(
        &key,
        KEY.iter().map(|b| format!("{b:02x}")).collect::<String>(),
    )
    .unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    key
}

/// Adds `mode: <mode>` to a config written by [`write_mn_config`] (which leaves the default).
pub(crate) fn set_mode(config: &Path, mode: &str) {
    let mut text = std::fs::read_to_string(config).unwrap();
    assert!(
        !text.contains("\nmode:"),
        "mode already set in {}",
        config.display()
    );
    text.push_str(&format!("mode: {mode}\n"));
    std::fs::write(config, text).unwrap();
}

/// Two sites around the mobile node, as the inter-site tests need them: access router `ar1`
/// (MMA1 on its loopback, RAs with MAP = MMA1 on the node's `e1`) and `ar2` (MMA2, `e2`), both
/// routed through `ha` (the home agent's address on its loopback); scripted BU responders in
/// all three record what the node sends.
pub(crate) struct TwoSites {
    pub mn: Netns,
    pub ar1: Netns,
    pub ar2: Netns,
    pub ha: Netns,
    pub log1: Log,
    pub log2: Log,
    pub logh: Log,
    /// RA senders and responders; stopped before the namespaces go.
    pub threads: Vec<Bg>,
}

pub(crate) fn two_sites(ha: &str, mma1: &str, mma2: &str) -> TwoSites {
    let mn = Netns::new("mn");
    let ar1 = Netns::new("ar1");
    let ar2 = Netns::new("ar2");
    let han = Netns::new("ha");
    veth(&mn, "e1", "", &ar1, "a1", "2001:db8:10:1::1/64");
    veth(&mn, "e2", "", &ar2, "a2", "2001:db8:20:1::1/64");
    veth(
        &ar1,
        "u1",
        "2001:db8:f1::1/64",
        &han,
        "h1",
        "2001:db8:f1::2/64",
    );
    veth(
        &ar2,
        "u2",
        "2001:db8:f2::1/64",
        &han,
        "h2",
        "2001:db8:f2::2/64",
    );
    ar1.sh(&format!(
        "ip addr add {mma1}/128 dev lo && ip -6 route add default via 2001:db8:f1::2"
    ));
    ar2.sh(&format!(
        "ip addr add {mma2}/128 dev lo && ip -6 route add default via 2001:db8:f2::2"
    ));
    han.sh(&format!(
        "ip addr add {ha}/128 dev lo && ip -6 route add 2001:db8:10::/48 via 2001:db8:f1::1 && \
         ip -6 route add 2001:db8:20::/48 via 2001:db8:f2::1"
    ));
    let addr = |s: &str| s.parse::<Ipv6Addr>().unwrap();
    let ra1 = ra_sender(
        &ar1,
        vec![(
            ifindex(&ar1, "a1"),
            ra_bytes(addr("2001:db8:10:1::"), Some(addr(mma1))),
        )],
    );
    let ra2 = ra_sender(
        &ar2,
        vec![(
            ifindex(&ar2, "a2"),
            ra_bytes(addr("2001:db8:20:1::"), Some(addr(mma2))),
        )],
    );
    let (r1, log1) = responder(&ar1);
    let (r2, log2) = responder(&ar2);
    let (rh, logh) = responder(&han);
    TwoSites {
        mn,
        ar1,
        ar2,
        ha: han,
        log1,
        log2,
        logh,
        threads: vec![ra1, ra2, r1, r2, rh],
    }
}

impl Drop for TwoSites {
    fn drop(&mut self) {
        self.threads.clear();
    }
}

/// A TCP stream from the correspondent to the home address, port 5001: socat in `mn` writes
/// what arrives to a file, a writer in `cn` sends 1000 bytes every 10 ms until [`stop`] or drop
/// (also when an assertion unwinds).
///
/// [`stop`]: TcpFlow::stop
pub(crate) struct TcpFlow {
    writer: Option<Bg>,
    _sink: Daemon,
    received: PathBuf,
    failed: Arc<AtomicBool>,
}

impl TcpFlow {
    pub(crate) fn start(cn: &Netns, mn: &Netns, hoa: Ipv6Addr, dir: &Path) -> TcpFlow {
        use std::io::Write;
        let received = dir.join("received");
        let sink = Daemon(mn.spawn(
            "socat",
            &[
                "-u",
                &format!("TCP6-LISTEN:5001,bind=[{hoa}],reuseaddr"),
                &format!("OPEN:{},creat,trunc", received.display()),
            ],
            None,
        ));
        std::thread::sleep(Duration::from_millis(300));
        let failed = Arc::new(AtomicBool::new(false));
        let f2 = Arc::clone(&failed);
        let writer = in_ns(cn, move |stop| async move {
            let mut conn = match std::net::TcpStream::connect_timeout(
                &(hoa, 5001).into(),
                Duration::from_secs(5),
            ) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("connect: {e}");
                    f2.store(true, Ordering::Relaxed);
                    return;
                }
            };
            conn.set_write_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let chunk = [0x5a_u8; 1000];
            while !stop.load(Ordering::Relaxed) {
                if let Err(e) = conn.write_all(&chunk) {
                    eprintln!("write: {e}");
                    f2.store(true, Ordering::Relaxed);
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        TcpFlow {
            writer: Some(writer),
            _sink: sink,
            received,
            failed,
        }
    }

    /// Bytes the home address has received so far.
    pub(crate) fn received(&self) -> u64 {
        std::fs::metadata(&self.received)
            .map(|m| m.len())
            .unwrap_or(0)
    }

    /// Stops the writer and waits for it.
    pub(crate) fn stop(&mut self) {
        self.writer = None;
    }

    /// True when connecting or writing failed (a reset or a 5 s stall).
    pub(crate) fn broke(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }
}
