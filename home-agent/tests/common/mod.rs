//! A home agent in its namespace, a correspondent on the home link and a mobile node at a
//! care-of address, plus a Binding Update client built on the wire crate and a raw MH socket.
#![allow(dead_code)] // each test binary uses part of this

use std::net::{Ipv6Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use mipcast_kernel::sockets::{MhSocket, PacketInfo};
pub(crate) use mipcast_netns_tests::mh_client::Reply;
use mipcast_netns_tests::mh_client::{parse_reply, Bu};
use mipcast_netns_tests::{veth, Daemon, Netns};

pub(crate) const HA: &str = "2001:db8:1::1";
pub(crate) const CN: &str = "2001:db8:1::2";
pub(crate) const HOA: &str = "2001:db8:1::100";
pub(crate) const COA: &str = "2001:db8:2::9";
/// Another address of the MN's host, never registered.
pub(crate) const ROGUE: &str = "2001:db8:2::66";
/// Not hex digits, so the key file holds it byte for byte.
pub(crate) const KEY: &[u8] = b"mipcast-test-key-for-spi-1000-ha";
pub(crate) const SPI: u32 = 1000;
pub(crate) const METRICS: &str = "[::1]:9641";

pub(crate) fn a(s: &str) -> Ipv6Addr {
    s.parse().expect("address")
}

pub(crate) struct TempDir(pub PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "ha-{tag}-{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// HA between the home link (CN) and the MN's access link.
pub(crate) struct Lab {
    pub ha: Netns,
    pub cn: Netns,
    pub mn: Netns,
    pub dir: TempDir,
    pub config: PathBuf,
}

impl Lab {
    /// The default configuration: the home agent answers solicitations itself.
    pub(crate) fn new(tag: &str) -> Lab {
        Lab::with_home_link(tag, "")
    }

    /// Kernel proxy-ND entries instead (`home_link.proxy: kernel`).
    pub(crate) fn with_kernel_proxy(tag: &str) -> Lab {
        Lab::with_home_link(tag, "  proxy: kernel\n")
    }

    /// `home_link` is the YAML appended to the `home_link` mapping (two-space indented).
    pub(crate) fn with_home_link(tag: &str, home_link: &str) -> Lab {
        let (ha, cn, mn) = (Netns::new("ha"), Netns::new("cn"), Netns::new("mn"));
        veth(
            &cn,
            "cn0",
            "2001:db8:1::2/64",
            &ha,
            "home0",
            "2001:db8:1::1/64",
        );
        veth(
            &mn,
            "wan0",
            "2001:db8:2::9/64",
            &ha,
            "wan1",
            "2001:db8:2::1/64",
        );
        mn.sh("ip addr add 2001:db8:2::66/64 dev wan0 nodad");
        mn.sh("ip -6 route add default via 2001:db8:2::1");
        // The MN: HoA on lo; tunnels from the HA decapsulated (End.DT6 into the local table);
        // traffic from the HoA tunnelled to the HA (reverse tunnelling).
        mn.sh(&format!(
            "ip addr add {HOA}/128 dev lo && \
             ip -6 rule add pref 1000 lookup local && ip -6 rule del pref 0 && \
             ip -6 rule add pref 10 from {HA} to {COA} ipproto 41 lookup 100 && \
             ip -6 route add {COA}/128 encap seg6local action End.DT6 table local dev wan0 table 100 && \
             ip -6 rule add pref 20 from {HOA} lookup 200 && \
             ip -6 route add default encap seg6 mode encap.red segs {HA} dev wan0 table 200 && \
             ip sr tunsrc set {COA}"
        ));
        let dir = TempDir::new(tag);
        let config = write_config_with(&dir, home_link, "");
        Lab {
            ha,
            cn,
            mn,
            dir,
            config,
        }
    }

    /// Starts the daemon and waits until its metrics listener answers.
    pub(crate) fn start(&self, extra: &[&str]) -> Daemon {
        let log = self.dir.path(&format!("ha-{}.log", now_ns()));
        let mut args = vec!["-c", self.config.to_str().unwrap()];
        if !extra.contains(&"--log-level") {
            args.extend(["--log-level", "debug"]);
        }
        args.extend_from_slice(extra);
        let child = self
            .ha
            .spawn(env!("CARGO_BIN_EXE_home-agent"), &args, Some(&log));
        let mut d = Daemon(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if self.fetch("/healthz").is_ok() {
                return d;
            }
            if let Ok(Some(st)) = d.0.try_wait() {
                panic!(
                    "home-agent exited ({st}): {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "home-agent not ready: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub(crate) fn fetch(&self, path: &str) -> Result<String, String> {
        let addr: SocketAddr = METRICS.parse().unwrap();
        self.ha
            .enter(|| mipcast_daemon::metrics::fetch(addr, path).map_err(|e| e.to_string()))
    }

    /// Value of the metrics sample line starting with `prefix` (0 if absent).
    pub(crate) fn metric(&self, prefix: &str) -> f64 {
        let text = self.fetch("/metrics").expect("metrics");
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }

    /// Our routes (all tables), rules and proxy entries in the HA namespace, as iproute2
    /// prints them.
    /// The kernel state once the previous-CoA windows a deregistration opened (1 s by
    /// default) have ended, or after 3 s.
    pub(crate) fn kernel_state_after_windows(&self) -> KernelState {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        loop {
            let k = self.kernel_state();
            if k.is_idle() || std::time::Instant::now() > deadline {
                return k;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    pub(crate) fn kernel_state(&self) -> KernelState {
        KernelState {
            routes: lines(&self.ha.sh("ip -6 route show table all proto 158")),
            // iproute2 ignores `proto` when listing rules: filter here.
            rules: lines(&self.ha.sh("ip -6 rule show"))
                .into_iter()
                .filter(|r| r.contains("proto 158"))
                .collect(),
            proxies: lines(&self.ha.sh("ip -6 neigh show proxy")),
        }
    }
}

#[derive(Debug)]
pub(crate) struct KernelState {
    pub routes: Vec<String>,
    pub rules: Vec<String>,
    pub proxies: Vec<String>,
}

impl KernelState {
    /// Only the static decapsulation route: no binding leaves anything behind.
    pub(crate) fn is_idle(&self) -> bool {
        self.routes.len() == 1
            && self.routes[0].contains("encap seg6local action End.DT6")
            && self.rules.iter().all(|r| !r.contains("ipproto"))
            && self.proxies.is_empty()
    }

    /// Idle apart from the care-of addresses' decapsulation rules, which a deregistration
    /// keeps for `kernel.previous_coa_accept_ms`.
    pub(crate) fn is_idle_but_windows(&self) -> bool {
        self.routes.len() == 1
            && self.routes[0].contains("encap seg6local action End.DT6")
            && self.proxies.is_empty()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.routes.is_empty() && self.rules.is_empty() && self.proxies.is_empty()
    }
}

fn lines(s: &str) -> Vec<String> {
    s.lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// Writes the key file (mode 600) and a config using it; `extra` is appended verbatim.
pub(crate) fn write_config(dir: &TempDir, extra: &str) -> PathBuf {
    write_config_with(dir, "", extra)
}

/// [`write_config`] with `home_link` appended to the `home_link` mapping.
pub(crate) fn write_config_with(dir: &TempDir, home_link: &str, extra: &str) -> PathBuf {
    let key = dir.path("mn.key");
    std::fs::write(&key, KEY).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let path = dir.path("home-agent.yaml");
    std::fs::write(
        &path,
        format!(
            "home_link:\n  interface: home0\n  address: {HA}\n{home_link}\
             home_prefixes: [2001:db8:1::/64]\n\
             security_associations:\n  - spi: {SPI}\n    algorithm: hmac-sha256-128\n    \
             key_file: {}\n    home_prefixes: [2001:db8:1::/64]\n\
             metrics:\n  listen: \"{METRICS}\"\n\
             state:\n  file: {}\n  write_delay_ms: 100\n{extra}",
            key.display(),
            dir.path("state.json").display()
        ),
    )
    .unwrap();
    path
}

pub(crate) fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// A mobile node's Binding Update client on a raw MH socket (create it inside the MN's
/// namespace and a tokio runtime).
pub(crate) struct Mn {
    pub sock: MhSocket,
    pub hoa: Ipv6Addr,
    pub coa: Ipv6Addr,
    pub key: Vec<u8>,
}

impl Mn {
    pub(crate) fn new() -> Mn {
        Mn {
            sock: MhSocket::new().expect("MH socket"),
            hoa: a(HOA),
            coa: a(COA),
            key: KEY.to_vec(),
        }
    }

    /// A BU with A|H, HNP(HoA/128), Alternate CoA and Replay Protection (now), signed with
    /// `key` (None: no authentication option at all).
    pub(crate) fn bu(&self, seq: u16, lifetime_units: u16, key: Option<&[u8]>) -> Vec<u8> {
        Bu {
            flags: 0xc000,
            lifetime: lifetime_units,
            alternate_coa: Some(self.coa),
            key: key.map(<[u8]>::to_vec),
            ..Bu::new(seq, self.hoa, self.coa, SPI, &self.key)
        }
        .bytes()
    }

    pub(crate) async fn send(&self, bytes: &[u8]) {
        self.sock
            .send_to(bytes, a(HA), PacketInfo::ANY.with_source(self.coa))
            .await
            .expect("send BU");
    }

    /// The next BAck or BE (Binding Refresh Requests are skipped), or None after `timeout`.
    pub(crate) async fn reply(&self, timeout: Duration) -> Option<Reply> {
        let mut buf = [0u8; 2048];
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let rx = tokio::time::timeout_at(deadline, self.sock.recv(&mut buf))
                .await
                .ok()?
                .expect("recv");
            if let Some(reply) = buf.get(..rx.len).and_then(parse_reply) {
                return Some(reply);
            }
        }
    }

    pub(crate) async fn exchange(&self, bytes: &[u8]) -> Option<Reply> {
        self.send(bytes).await;
        self.reply(Duration::from_secs(3)).await
    }
}

/// Runs `f` with a BU client inside the MN's namespace.
pub(crate) fn with_mn<R: Send>(ns: &Netns, f: impl AsyncFnOnce(&Mn) -> R + Send) -> R {
    ns.enter(|| {
        block(async {
            let mn = Mn::new();
            f(&mn).await
        })
    })
}

/// Polls `cond` every 50 ms for up to `timeout`.
pub(crate) fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub(crate) fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}
