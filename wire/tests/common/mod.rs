//! Helpers shared by the wire crate's integration tests: IPv6 framing, pcap files, tshark.
#![allow(dead_code)]
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A whole IPv6 packet (no extension headers) around `payload`.
pub(crate) fn ipv6(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    next_header: u8,
    hop_limit: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut p = Vec::with_capacity(40 + payload.len());
    p.extend_from_slice(&[0x60, 0, 0, 0]);
    p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    p.push(next_header);
    p.push(hop_limit);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(payload);
    p
}

/// An IPv6 packet with a Hop-by-Hop header carrying Router Alert (value 0 = MLD, RFC 2711),
/// as MLD messages must have (RFC 3810 §5).
pub(crate) fn ipv6_router_alert(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    next_header: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut hbh = vec![next_header, 0, 5, 2, 0, 0, 1, 0]; // RA option + PadN(0)
    hbh.extend_from_slice(payload);
    ipv6(src, dst, 0, 1, &hbh)
}

/// Writes raw IPv6 packets to a pcap file (LINKTYPE_RAW = 101) and returns its path.
pub(crate) fn write_pcap(name: &str, packets: &[Vec<u8>]) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join(format!("{name}.pcap"));
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&101u32.to_le_bytes());
    for (i, p) in packets.iter().enumerate() {
        out.extend_from_slice(&(i as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
        out.extend_from_slice(p);
    }
    std::fs::write(&path, out).expect("write pcap");
    path
}

/// Fails the test when tshark is missing: such tests are `#[ignore]`d, so a run that asks for
/// them (`--include-ignored`, as run-tests.sh does) must really get them.
pub(crate) fn require_tshark() {
    assert!(
        Command::new("tshark").arg("--version").output().is_ok(),
        "tshark is not installed (Debian package tshark; .ci/run installs it)"
    );
}

/// Decodes `pcap` with tshark and returns, per frame, the protocol stack and any expert-info
/// messages at warning level or above (malformed packets, bad checksums, ...).
pub(crate) fn tshark_problems(pcap: &Path) -> Vec<String> {
    let out = Command::new("tshark")
        .args(["-r"])
        .arg(pcap)
        // tshark 4.0 always verifies ICMPv6 and PIM checksums; it has no icmpv6 preference and
        // exits with an error (and no output) when given an unknown one.
        .args(["-o", "ip.check_checksum:TRUE"])
        .args([
            "-T",
            "fields",
            "-e",
            "frame.number",
            "-e",
            "frame.protocols",
            "-e",
            "_ws.expert.severity",
            "-e",
            "_ws.expert.message",
            "-e",
            "_ws.malformed",
        ])
        .output()
        .expect("run tshark");
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut problems = Vec::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        let sev = cols.get(2).copied().unwrap_or("");
        let malformed = cols.get(4).copied().unwrap_or("");
        let protocols = cols.get(1).copied().unwrap_or("");
        // Any expert info at all counts: a clean encoder gives tshark nothing to remark on
        // (severities are chat 0x200000, note 0x400000, warn 0x600000, error 0x800000).
        let bad_sev = !sev.trim().is_empty();
        if bad_sev
            || !malformed.is_empty()
            || protocols.contains("malformed")
            || protocols.contains("_ws.malformed")
        {
            problems.push(line.to_string());
        }
    }
    problems
}

/// tshark's verbose decode of `pcap`, for asserting on decoded field values.
pub(crate) fn tshark_verbose(pcap: &Path) -> String {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(pcap)
        .arg("-V")
        .output()
        .expect("run tshark");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
