#!/usr/bin/python3
"""Golden fixtures for mipcast-wire's ND, MLD and PIM encoders, produced by scapy (an
independent implementation) and checked byte for byte by tests/nd_mld_pim_golden.rs.

Run with Debian's scapy:  /usr/bin/python3 wire/tests/gen_icmp_pim_fixtures.py
Each file in tests/fixtures/icmp_pim/ holds one upper-layer message: the bytes after the IPv6
header and any hop-by-hop header, checksum filled in for the addresses listed in ADDRS below
(the Rust test uses the same pairs).

Where scapy does not follow the RFCs we work around it instead of matching it:
- scapy.contrib.pim is IPv4 only (IPField addresses) and its PIMv2Hdr checksum omits the IPv6
  pseudo-header that RFC 7761 section 4.9 requires for IPv6. We derive IPv6 variants of its
  layers by swapping only the address fields for IP6Field (so flag and field layout still come
  from scapy) and compute the checksum with scapy's in6_chksum.
- scapy has no PIM Hello Address List option (24) and no Assert message; those two are built
  from scapy field primitives following RFC 7761 sections 4.9.2 and 4.9.6.
- ICMPv6MLDMultAddrRec computes auxdata_len in bytes, but RFC 3810 section 5.2.6 counts 32-bit
  words; the aux-data fixture sets the field explicitly.
"""
import os
import struct

from scapy.contrib.pim import (PIMv2GroupAddrs, PIMv2Hdr, PIMv2Hello, PIMv2HelloDRPriority,
                               PIMv2HelloGenerationID, PIMv2HelloHoldtime,
                               PIMv2HelloLANPruneDelay, PIMv2HelloLANPruneDelayValue,
                               PIMv2HelloStateRefresh, PIMv2HelloStateRefreshValue,
                               PIMv2JoinAddrs, PIMv2JoinPrune, PIMv2PruneAddrs,
                               _PIMv2GenericHello)
from scapy.fields import (BitField, ByteField, FieldLenField, IntField, IP6Field, IPField,
                          PacketListField, ShortField)
from scapy.layers.inet6 import (IPv6, ICMPv6MLDMultAddrRec, ICMPv6MLDone, ICMPv6MLQuery,
                                ICMPv6MLQuery2, ICMPv6MLReport, ICMPv6MLReport2, ICMPv6ND_NA,
                                ICMPv6ND_NS, ICMPv6ND_RA, ICMPv6ND_RS, ICMPv6NDOptDstLLAddr, ICMPv6NDOptMAP, ICMPv6NDOptMTU,
                                ICMPv6NDOptPrefixInfo, ICMPv6NDOptRDNSS, ICMPv6NDOptSrcLLAddr,
                                in6_chksum)
from scapy.packet import Packet

# FIXTURE_OUT lets the Rust test regenerate into a scratch directory and compare.
OUT = os.environ.get("FIXTURE_OUT") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "icmp_pim")

ROUTER = "fe80::1"
HOST = "fe80::2"
MMA = "2001:db8:ff::1"
MMA2 = "2001:db8:ff::2"
GROUP = "ff35::3656:78ff:fe9a:bcde"  # default prefix + EUI-64 of 34:56:78:9a:bc:de
V1_GROUP = "ff15::1234"
HA = "2001:db8:1::1"   # a home agent answering for the home address HOA
HOA = "2001:db8:1::100"

# name -> (src, dst); mirrored in nd_mld_pim_golden.rs.
ADDRS = {
    "rs": (HOST, "ff02::2"),
    "ns": (HOST, "ff02::1:ff00:100"),
    "ns_dad": ("::", "ff02::1:ff00:100"),
    "na": (HA, HOST),
    "na_unsolicited": (HA, "ff02::1"),
    "ra": (ROUTER, "ff02::1"),
    "mldv2_query_general": (ROUTER, "ff02::1"),
    "mldv2_query_group_source": (ROUTER, GROUP),
    "mldv2_report": (HOST, "ff02::16"),
    "mldv2_report_auxdata": (HOST, "ff02::16"),
    "mldv1_query": (ROUTER, "ff02::1"),
    "mldv1_report": (HOST, V1_GROUP),
    "mldv1_done": (HOST, "ff02::2"),
    "pim_hello": (ROUTER, "ff02::d"),
    "pim_hello_foreign": (ROUTER, "ff02::d"),
    "pim_join_prune": (ROUTER, "ff02::d"),
    "pim_assert": (ROUTER, "ff02::d"),
}


def icmpv6(name, msg):
    src, dst = ADDRS[name]
    pkt = IPv6(src=src, dst=dst) / msg
    return bytes(pkt[IPv6].payload)


def pim(name, body):
    src, dst = ADDRS[name]
    pkt = IPv6(src=src, dst=dst, nh=103) / PIMv2Hdr(type=body[0], chksum=0) / body[1]
    hdr = pkt[PIMv2Hdr]
    raw = bytes(hdr)
    ck = in6_chksum(103, hdr, raw)
    return raw[:2] + struct.pack("!H", ck) + raw[4:]


def ipv6_variant(cls, **replace):
    """cls with the named fields replaced, everything else (bit layout) kept from scapy."""
    fields = [replace.get(f.name, f) for f in cls.fields_desc]
    return type(cls.__name__ + "6", (cls,), {"fields_desc": fields, "name": cls.__name__ + " (IPv6)"})


JoinAddrs6 = ipv6_variant(PIMv2JoinAddrs, addr_family=ByteField("addr_family", 2),
                          mask_len=ByteField("mask_len", 128), src_ip=IP6Field("src_ip", "::"))
PruneAddrs6 = ipv6_variant(PIMv2PruneAddrs, addr_family=ByteField("addr_family", 2),
                           mask_len=ByteField("mask_len", 128), src_ip=IP6Field("src_ip", "::"))
GroupAddrs6 = ipv6_variant(
    PIMv2GroupAddrs,
    addr_family=ByteField("addr_family", 2),
    mask_len=ByteField("mask_len", 128),
    gaddr=IP6Field("gaddr", "::"),
    join_ips=PacketListField("join_ips", [], JoinAddrs6, count_from=lambda x: x.num_joins),
    prune_ips=PacketListField("prune_ips", [], PruneAddrs6, count_from=lambda x: x.num_prunes),
)
JoinPrune6 = ipv6_variant(
    PIMv2JoinPrune,
    up_addr_family=ByteField("up_addr_family", 2),
    up_neighbor_ip=IP6Field("up_neighbor_ip", "::"),
    jp_ips=PacketListField("jp_ips", [], GroupAddrs6, count_from=lambda pkt: pkt.num_group),
)


class EncodedUnicast6(Packet):
    """RFC 7761 4.9.1 Encoded-Unicast address, IPv6 family (no scapy class exists)."""
    fields_desc = [ByteField("addr_family", 2), ByteField("encoding_type", 0),
                   IP6Field("addr", "::")]

    def extract_padding(self, s):
        return "", s


class HelloAddressList(_PIMv2GenericHello):
    """RFC 7761 4.9.2 option 24 (no scapy class exists)."""
    fields_desc = [ShortField("type", 24),
                   FieldLenField("length", None, length_of="addrs", fmt="!H"),
                   PacketListField("addrs", [], EncodedUnicast6,
                                   length_from=lambda pkt: pkt.length)]


class EncodedUnicast4(Packet):
    """RFC 7761 4.9.1 Encoded-Unicast address, IPv4 family (family 1), as a dual-stack
    router lists it in the Address List of its IPv6 Hellos."""
    fields_desc = [ByteField("addr_family", 1), ByteField("encoding_type", 0),
                   IPField("addr", "0.0.0.0")]

    def extract_padding(self, s):
        return "", s


class HelloAddressListMixed(_PIMv2GenericHello):
    """Option 24 with entries of both families."""
    fields_desc = [ShortField("type", 24),
                   FieldLenField("length", None, length_of="addrs", fmt="!H"),
                   PacketListField("addrs", [], lambda p: (EncodedUnicast4 if p[:1] == b"\x01"
                                                           else EncodedUnicast6),
                                   length_from=lambda pkt: pkt.length)]


class HelloBidirCapable(_PIMv2GenericHello):
    """RFC 5015 option 22, no value: a PIM-SSM router does not know it and skips it."""
    fields_desc = [ShortField("type", 22), ShortField("length", 0)]


class Assert6(Packet):
    """RFC 7761 4.9.6 Assert body (no scapy class exists): encoded group, encoded unicast
    source, R bit + 31-bit metric preference, metric."""
    fields_desc = [ByteField("g_addr_family", 2), ByteField("g_encoding_type", 0),
                   BitField("bidirection", 0, 1), BitField("reserved", 0, 6),
                   BitField("admin_scope_zone", 0, 1), ByteField("g_mask_len", 128),
                   IP6Field("gaddr", "::"),
                   ByteField("s_addr_family", 2), ByteField("s_encoding_type", 0),
                   IP6Field("saddr", "::"),
                   BitField("R", 0, 1), BitField("metric_pref", 0, 31), IntField("metric", 0)]


def fixtures():
    yield "ns", icmpv6("ns", ICMPv6ND_NS(tgt=HOA) / ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:02"))
    yield "ns_dad", icmpv6("ns_dad", ICMPv6ND_NS(tgt=HOA))
    yield "na", icmpv6("na", ICMPv6ND_NA(R=0, S=1, O=1, tgt=HOA)
                       / ICMPv6NDOptDstLLAddr(lladdr="02:00:00:00:00:01"))
    yield "na_unsolicited", icmpv6("na_unsolicited", ICMPv6ND_NA(R=0, S=0, O=1, tgt=HOA)
                                   / ICMPv6NDOptDstLLAddr(lladdr="02:00:00:00:00:01"))
    yield "rs", icmpv6("rs", ICMPv6ND_RS() / ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:02"))
    yield "ra", icmpv6("ra", ICMPv6ND_RA(chlim=64, M=0, O=1, prf=0, routerlifetime=1800,
                                         reachabletime=30000, retranstimer=1000)
                       / ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:01")
                       / ICMPv6NDOptPrefixInfo(prefixlen=64, L=1, A=1, validlifetime=86400,
                                               preferredlifetime=14400, prefix="2001:db8:1::")
                       / ICMPv6NDOptMTU(mtu=1500)
                       / ICMPv6NDOptMAP(dist=1, pref=15, R=1, validlifetime=3600, addr=MMA)
                       / ICMPv6NDOptRDNSS(lifetime=600, dns=["2001:db8:1::53"]))
    yield "mldv2_query_general", icmpv6("mldv2_query_general", ICMPv6MLQuery2(
        mrd=10000, mladdr="::", S=0, QRV=2, QQIC=125))
    # Codes above the linear range: mrd 0x8400 = 0x1400 << 3 ms, QQIC 0x88 = 0x18 << 3 s.
    yield "mldv2_query_group_source", icmpv6("mldv2_query_group_source", ICMPv6MLQuery2(
        mrd=0x8400, mladdr=GROUP, S=1, QRV=2, QQIC=0x88, sources=[MMA, MMA2]))
    records = [ICMPv6MLDMultAddrRec(rtype=t, dst=GROUP, sources=[MMA, MMA2][: t % 3])
               for t in range(1, 7)]
    yield "mldv2_report", icmpv6("mldv2_report", ICMPv6MLReport2(records=records))
    yield "mldv2_report_auxdata", icmpv6("mldv2_report_auxdata", ICMPv6MLReport2(records=[
        ICMPv6MLDMultAddrRec(rtype=1, dst=GROUP, sources=[MMA], auxdata_len=1,
                             auxdata=b"\xde\xad\xbe\xef"),
        ICMPv6MLDMultAddrRec(rtype=5, dst=V1_GROUP, sources=[MMA2]),
    ]))
    yield "mldv1_query", icmpv6("mldv1_query", ICMPv6MLQuery(mrd=10000, mladdr="::"))
    yield "mldv1_report", icmpv6("mldv1_report", ICMPv6MLReport(mladdr=V1_GROUP))
    yield "mldv1_done", icmpv6("mldv1_done", ICMPv6MLDone(mladdr=V1_GROUP))
    yield "pim_hello", pim("pim_hello", (0, PIMv2Hello(option=[
        PIMv2HelloHoldtime(holdtime=105),
        PIMv2HelloLANPruneDelay(value=[PIMv2HelloLANPruneDelayValue(
            t=0, propagation_delay=500, override_interval=2500)]),
        PIMv2HelloDRPriority(dr_priority=1),
        PIMv2HelloGenerationID(generation_id=0x12345678),
        HelloAddressList(addrs=[EncodedUnicast6(addr="2001:db8:1::1"),
                                EncodedUnicast6(addr="2001:db8:2::1")]),
    ])))
    # Every Hello option RFC 7761 defines (RFC 5059 defines none), the LAN Prune Delay with
    # the T bit, an Address List holding only an IPv4 entry (the bytes
    # 00 18 00 06 01 00 c0 00 02 02 of issue 10), one mixing both families, and two options
    # of other PIM variants (RFC 3973 State Refresh, RFC 5015 Bidirectional Capable).
    yield "pim_hello_foreign", pim("pim_hello_foreign", (0, PIMv2Hello(option=[
        PIMv2HelloHoldtime(holdtime=105),
        PIMv2HelloLANPruneDelay(value=[PIMv2HelloLANPruneDelayValue(
            t=1, propagation_delay=400, override_interval=2000)]),
        PIMv2HelloDRPriority(dr_priority=42),
        PIMv2HelloGenerationID(generation_id=0xcafef00d),
        HelloAddressListMixed(addrs=[EncodedUnicast4(addr="192.0.2.2")]),
        HelloAddressListMixed(addrs=[EncodedUnicast6(addr="2001:db8:1::1"),
                                     EncodedUnicast4(addr="192.0.2.3"),
                                     EncodedUnicast6(addr="2001:db8:2::1")]),
        PIMv2HelloStateRefresh(value=[PIMv2HelloStateRefreshValue(version=1, interval=60)]),
        HelloBidirCapable(),
    ])))
    yield "pim_join_prune", pim("pim_join_prune", (3, JoinPrune6(
        up_neighbor_ip=HOST, holdtime=210, jp_ips=[
            GroupAddrs6(gaddr=GROUP, join_ips=[
                JoinAddrs6(sparse=1, wildcard=0, rpt=0, src_ip=MMA)]),
            GroupAddrs6(gaddr="ff35::1", prune_ips=[
                PruneAddrs6(sparse=1, wildcard=0, rpt=0, src_ip=MMA2)]),
        ])))
    yield "pim_assert", pim("pim_assert", (5, Assert6(
        gaddr=GROUP, saddr=MMA, R=0, metric_pref=101, metric=20)))


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, data in fixtures():
        with open(os.path.join(OUT, name + ".bin"), "wb") as f:
            f.write(data)
        print(f"{name}.bin {len(data)} bytes {data.hex()}")


if __name__ == "__main__":
    main()
