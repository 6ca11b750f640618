#!/usr/bin/python3
"""Writes golden Mobility Header fixtures for wire/tests/mh_golden.rs, built with scapy.

Run with Debian's python (it has scapy 2.5):  /usr/bin/python3 wire/tests/gen_mh_fixtures.py

Every fixture is the Mobility Header alone (no IPv6 header), with the checksum scapy computes
for an IPv6 packet from SRC to DST. The Rust test emits the same messages with mipcast-wire,
fills the checksum for the same addresses and compares byte for byte.

Padding: scapy's automatic padding puts each option at its RFC 6275 alignment and pads the end,
which is what mipcast-wire does too, except for the Authentication option (RFC 4285), which
mipcast-wire places so that the authenticator ends the header (see wire/src/auth.rs). Fixtures
with that option switch autopad off and spell out Pad1/PadN.

Authenticators are computed here with Python's hmac/hashlib over
CoA | HoA | MH up to and including the SPI, checksum zeroed (RFC 4285 section 5.2), from the
documented AUTH_KEY; nothing is taken from the Rust code.
"""
import hashlib
import hmac
import os
import socket
import struct

from scapy.layers.inet6 import (
    IPv6,
    MIP6MH_BA,
    MIP6MH_BE,
    MIP6MH_BRR,
    MIP6MH_BU,
    MIP6OptAltCoA,
    MIP6OptBRAdvice,
    MIP6OptMobNetPrefix,
    MIP6OptMsgAuth,
    MIP6OptReplayProtection,
    MIP6OptUnknown,
    Pad1,
    PadN,
)

SRC = "2001:db8:100::10"  # IPv6 source of every fixture (the mobile node's care-of address)
DST = "2001:db8:1::1"  # IPv6 destination (home agent / MMA)
HOA = "2001:db8:1::100"  # home address, carried in a Home Network Prefix option (/128)
ALT_COA = "2001:db8:200::20"
GROUP = "ff35::211:22ff:fe33:4455"  # terminal multicast group
ASSIGNED_COA = "2001:db8:300::1"
NEW_COA = "2001:db8:400::1"
ADVICE_LINK = SRC  # handoff advice: the terminal's on-link address the advice is about

AUTH_KEY = bytes(range(1, 21))  # 0x01 0x02 ... 0x14
AUTH_SPI = 0x100
REPLAY_TS = 0xE8D4A51000000000  # an NTP-format timestamp

# BU flags as scapy names them (7-bit field "PRMKLHA", A is the most significant bit).
A, H, M = "A", "H", "M"

# FIXTURE_OUT lets the Rust test regenerate into a scratch directory and compare.
OUT = os.environ.get("FIXTURE_OUT") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "mh")


def a16(addr):
    return socket.inet_pton(socket.AF_INET6, addr)


def hnp(addr, plen=128):
    # RFC 5213 Home Network Prefix: same layout and 8n+4 alignment as NEMO's Mobile Network
    # Prefix option, which scapy has; only the type differs.
    return MIP6OptMobNetPrefix(otype=22, olen=18, plen=plen, prefix=addr)


def exp(subtype, body):
    # RFC 5096 Experimental Mobility Option, no alignment; scapy has no class for it.
    return MIP6OptUnknown(otype=18, odata=bytes([subtype]) + body)


def mh_bytes(mh):
    pkt = IPv6(src=SRC, dst=DST) / mh
    return bytes(pkt)[40:]


def authenticated_bu(algo, trunc, pads):
    """BU (A|H) + HNP + Replay Protection + Authentication; `pads` are the explicit padding
    layers before HNP, before Replay Protection and before Authentication."""

    def build(authdata, cksum):
        opts = []
        for pad, opt in zip(pads, [hnp(HOA), MIP6OptReplayProtection(timestamp=REPLAY_TS),
                                   MIP6OptMsgAuth(subtype=1, mspi=AUTH_SPI, authdata=authdata)]):
            if pad is not None:
                opts.append(pad)
            opts.append(opt)
        return mh_bytes(MIP6MH_BU(seq=0x2001, flags=A + H, mhtime=75, autopad=0, cksum=cksum,
                                  options=opts))

    zeroed = build(b"\x00" * trunc, 0)
    spi_end = len(zeroed) - trunc
    data = a16(SRC) + a16(HOA) + zeroed[:spi_end]  # checksum field is zero in `zeroed`
    mac = hmac.new(AUTH_KEY, data, algo).digest()[:trunc]
    final = build(mac, None)
    assert final[spi_end:] == mac and len(final) % 8 == 0
    return final


def advice_body():
    # sub-type 4 handoff advice: reason 1 (congestion), reserved, avoid 30 s, on-link address.
    return bytes([1, 0]) + struct.pack("!H", 30) + a16(ADVICE_LINK)


def authenticated_advice():
    """Handoff advice as the MMA sends it: BRR + HNP + Replay Protection + Experimental
    sub-type 4 + Authentication (HMAC-SHA1-96 over on-link address | HoA | MH), explicit
    padding: HNP at 12 (8n+4), Replay Protection at 34 (8n+2), advice 44..67, Authentication
    at 69 (8n+5) ending at 88."""

    def build(authdata, cksum):
        opts = [PadN(optdata=b"\x00\x00"), hnp(HOA), PadN(optdata=b""),
                MIP6OptReplayProtection(timestamp=REPLAY_TS), exp(4, advice_body()),
                PadN(optdata=b""), MIP6OptMsgAuth(subtype=1, mspi=AUTH_SPI, authdata=authdata)]
        return mh_bytes(MIP6MH_BRR(autopad=0, cksum=cksum, options=opts))

    zeroed = build(b"\x00" * 12, 0)
    spi_end = len(zeroed) - 12
    data = a16(ADVICE_LINK) + a16(HOA) + zeroed[:spi_end]
    mac = hmac.new(AUTH_KEY, data, hashlib.sha1).digest()[:12]
    final = build(mac, None)
    assert final[spi_end:] == mac and len(final) == 88
    return final


CORRESPONDENTS = [("2001:db8:c::1", 100, 7), ("2001:db8:c::2", 101, 8)]


def terminal_context_body(flags=0x80, lifetime=300):
    # sub-type 7 terminal context: flags, group, lifetime left (u32), then per correspondent
    # its address, lifetime left (u16) and sequence number (u16).
    body = bytes([flags]) + a16(GROUP) + struct.pack("!I", lifetime)
    for addr, life, seq in CORRESPONDENTS:
        body += a16(addr) + struct.pack("!HH", life, seq)
    return body


def signed(layer, opts_before_auth, pad, algo, trunc):
    """`layer(options, cksum)` signed with AUTH_KEY over SRC (the requesting MMA) | HOA | MH,
    the authentication option after `pad`."""

    def build(authdata, cksum):
        opts = list(opts_before_auth) + ([pad] if pad is not None else [])
        opts.append(MIP6OptMsgAuth(subtype=1, mspi=AUTH_SPI, authdata=authdata))
        return layer(opts, cksum)

    zeroed = build(b"\x00" * trunc, 0)
    spi_end = len(zeroed) - trunc
    data = a16(SRC) + a16(HOA) + zeroed[:spi_end]
    mac = hmac.new(AUTH_KEY, data, algo).digest()[:trunc]
    final = build(mac, None)
    assert final[spi_end:] == mac and len(final) % 8 == 0
    return final


def context_request(algo, trunc, pad):
    # BU (A only) seq 0x0102 lifetime 0: HNP at 12, Replay Protection at 34 (PadN before),
    # Context Request 44..48, Authentication after `pad`.
    opts = [hnp(HOA), PadN(optdata=b""), MIP6OptReplayProtection(timestamp=REPLAY_TS), exp(6, b"\x00")]
    return signed(lambda o, c: mh_bytes(MIP6MH_BU(seq=0x0102, flags=A, mhtime=0, autopad=0, cksum=c, options=o)),
                  opts, pad, algo, trunc)


def context_reply(status, body, algo, trunc, pad):
    opts = [hnp(HOA)] + ([exp(7, body)] if body is not None else [])
    return signed(lambda o, c: mh_bytes(MIP6MH_BA(status=status, flags=0, seq=0x0102, mhtime=0, autopad=0,
                                                  cksum=c, options=o)),
                  opts, pad, algo, trunc)


def fixtures():
    f = {}
    # Context transfer between MMAs (wire/src/context.rs).
    f["bu_previous_mma"] = mh_bytes(MIP6MH_BU(seq=9, flags=A + M, mhtime=300,
                                              options=[hnp(HOA), exp(1, a16(GROUP)), exp(5, a16(ASSIGNED_COA))]))
    # Authentication at 49 (8n+1) / 53 (8n+5), both ending at 72.
    f["context_request_sha256"] = context_request(hashlib.sha256, 16, Pad1())
    f["context_request_sha1"] = context_request(hashlib.sha1, 12, PadN(optdata=b"\x00" * 3))
    # Terminal Context 32..96, Authentication at 101 (8n+5) / 97 (8n+1), both ending at 120.
    f["context_reply_sha1"] = context_reply(0, terminal_context_body(), hashlib.sha1, 12, PadN(optdata=b"\x00" * 3))
    f["context_reply_sha256"] = context_reply(0, terminal_context_body(), hashlib.sha256, 16, Pad1())
    # Unknown terminal: HNP only, Authentication at 37 (8n+5) ending at 56.
    f["context_reply_133"] = context_reply(133, None, hashlib.sha1, 12, PadN(optdata=b"\x00" * 3))
    f["brr"] = mh_bytes(MIP6MH_BRR())
    f["brr_advice"] = mh_bytes(MIP6MH_BRR(options=[hnp(HOA), MIP6OptReplayProtection(timestamp=REPLAY_TS),
                                                   exp(4, advice_body())]))
    f["brr_advice_auth_sha1"] = authenticated_advice()
    f["bu_home"] = mh_bytes(MIP6MH_BU(seq=0x1234, flags=A + H, mhtime=150,
                                      options=[hnp(HOA), MIP6OptAltCoA(acoa=ALT_COA)]))
    f["bu_mma"] = mh_bytes(MIP6MH_BU(seq=7, flags=A + M, mhtime=300,
                                     options=[hnp(HOA), exp(1, a16(GROUP))]))
    f["bu_forwarding"] = mh_bytes(MIP6MH_BU(seq=8, flags=A + M, mhtime=0,
                                            options=[hnp(HOA), exp(3, a16(NEW_COA) + struct.pack("!I", 10))]))
    f["back_accepted"] = mh_bytes(MIP6MH_BA(status=0, flags=0, seq=7, mhtime=300,
                                            options=[MIP6OptBRAdvice(rinter=60), exp(2, a16(ASSIGNED_COA))]))
    for status in (132, 135, 144, 145, 146):
        f["back_%d" % status] = mh_bytes(MIP6MH_BA(status=status, flags="K", seq=0x2001, mhtime=0))
    f["be_1"] = mh_bytes(MIP6MH_BE(status=1, ha=HOA))
    f["be_2"] = mh_bytes(MIP6MH_BE(status=2, ha="::"))
    # HNP at 12 (8n+4), Replay Protection at 34 (8n+2), Authentication at 45 (8n+5) ending at 64.
    f["bu_auth_sha1"] = authenticated_bu(hashlib.sha1, 12, [None, PadN(optdata=b""), Pad1()])
    # Authentication at 49 (8n+1) ending at 72; scapy's autopad would put it at 45 and pad after.
    f["bu_auth_sha256"] = authenticated_bu(hashlib.sha256, 16, [None, PadN(optdata=b""), PadN(optdata=b"\x00" * 3)])
    return f


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, data in sorted(fixtures().items()):
        assert len(data) % 8 == 0, name
        with open(os.path.join(OUT, name + ".bin"), "wb") as fh:
            fh.write(data)
        print("%-16s %3d %s" % (name, len(data), data.hex()))


if __name__ == "__main__":
    main()
