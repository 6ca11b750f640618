#!/usr/bin/python3
"""Decodes what pim-lite sent on the wire with scapy (an independent implementation) and
reports, as JSON, what it found and anything that did not decode cleanly.

Usage: /usr/bin/python3 scapy_decode.py CAPTURE.pcap

- MLDv2 queries (ICMPv6MLQuery2) must carry a hop-by-hop Router Alert, hop limit 1, a good
  ICMPv6 checksum and leave no Raw/Padding bytes.
- Router advertisements must decode with the RFC 5380 MAP option and leave no Raw bytes.
- PIM: scapy.contrib.pim is IPv4-only and not bound to IPv6, so PIM bytes are re-dissected
  with IPv6 variants of its layers (address fields swapped for IP6Field, the same approach as
  wire/tests/gen_icmp_pim_fixtures.py), plus the Hello Address List option scapy lacks; the
  checksum is checked over the IPv6 pseudo-header (RFC 7761 4.9).
"""
import json
import struct
import sys

from scapy.all import rdpcap
from scapy.contrib import pim as scapy_pim
from scapy.contrib.pim import (PIMv2GroupAddrs, PIMv2Hello, PIMv2JoinAddrs, PIMv2JoinPrune,
                               PIMv2PruneAddrs, _PIMv2GenericHello)
from scapy.fields import ByteField, FieldLenField, IP6Field, PacketListField, ShortField
from scapy.layers.inet6 import (IPv6, ICMPv6MLQuery2, ICMPv6ND_RA, ICMPv6NDOptMAP,
                                IPv6ExtHdrHopByHop, RouterAlert, in6_chksum)
from scapy.packet import Packet, Padding, Raw


def ipv6_variant(cls, **replace):
    fields = [replace.get(f.name, f) for f in cls.fields_desc]
    return type(cls.__name__ + "6", (cls,), {"fields_desc": fields})


JoinAddrs6 = ipv6_variant(PIMv2JoinAddrs, mask_len=ByteField("mask_len", 128),
                          src_ip=IP6Field("src_ip", "::"))
PruneAddrs6 = ipv6_variant(PIMv2PruneAddrs, mask_len=ByteField("mask_len", 128),
                           src_ip=IP6Field("src_ip", "::"))
GroupAddrs6 = ipv6_variant(
    PIMv2GroupAddrs,
    mask_len=ByteField("mask_len", 128),
    gaddr=IP6Field("gaddr", "::"),
    join_ips=PacketListField("join_ips", [], JoinAddrs6, count_from=lambda x: x.num_joins),
    prune_ips=PacketListField("prune_ips", [], PruneAddrs6, count_from=lambda x: x.num_prunes),
)
JoinPrune6 = ipv6_variant(
    PIMv2JoinPrune,
    up_neighbor_ip=IP6Field("up_neighbor_ip", "::"),
    jp_ips=PacketListField("jp_ips", [], GroupAddrs6, count_from=lambda pkt: pkt.num_group),
)


class EncodedUnicast6(Packet):
    fields_desc = [ByteField("addr_family", 2), ByteField("encoding_type", 0),
                   IP6Field("addr", "::")]

    def extract_padding(self, s):
        return "", s


class HelloAddressList(_PIMv2GenericHello):
    fields_desc = [ShortField("type", 24),
                   FieldLenField("length", None, length_of="addrs", fmt="!H"),
                   PacketListField("addrs", [], EncodedUnicast6,
                                   length_from=lambda pkt: pkt.length)]


scapy_pim.PIMv2_HELLO_CLASSES[24] = HelloAddressList


def leftover(layer):
    return layer.haslayer(Raw) or layer.haslayer(Padding)


def icmp_checksum_ok(layer):
    raw = bytes(layer)
    zeroed = raw[:2] + b"\0\0" + raw[4:]
    return in6_chksum(58, layer, zeroed) == struct.unpack("!H", raw[2:4])[0]


def main(path):
    report = {"mld_queries": [], "router_adverts": [], "pim_hellos": [], "pim_join_prunes": [],
              "errors": []}
    for n, pkt in enumerate(rdpcap(path), 1):
        if IPv6 not in pkt:
            continue
        ip = pkt[IPv6]
        if ICMPv6MLQuery2 in pkt:
            q = pkt[ICMPv6MLQuery2]
            ra_opt = pkt.haslayer(IPv6ExtHdrHopByHop) and pkt.haslayer(RouterAlert)
            if not ra_opt or ip.hlim != 1:
                report["errors"].append(f"frame {n}: MLD query without Router Alert / hop limit 1")
            if leftover(q) or not icmp_checksum_ok(q):
                report["errors"].append(f"frame {n}: MLD query leftover bytes or bad checksum")
            report["mld_queries"].append({"group": q.mladdr, "sources": list(q.sources or []),
                                          "qrv": q.QRV, "qqic": q.QQIC})
        elif ICMPv6ND_RA in pkt:
            ra = pkt[ICMPv6ND_RA]
            if leftover(ra) or not icmp_checksum_ok(ra) or ip.hlim != 255:
                report["errors"].append(f"frame {n}: RA leftover bytes, bad checksum or hop limit")
            m = pkt[ICMPv6NDOptMAP] if ICMPv6NDOptMAP in pkt else None
            report["router_adverts"].append({
                "src": ip.src, "router_lifetime": ra.routerlifetime,
                "map": None if m is None else {"address": m.addr, "dist": m.dist,
                                               "pref": m.pref, "R": m.R,
                                               "valid_lifetime": m.validlifetime}})
        elif ip.nh == 103:
            raw = bytes(ip.payload)
            zeroed = raw[:2] + b"\0\0" + raw[4:]
            carrier = IPv6(src=ip.src, dst=ip.dst, nh=103) / Raw(zeroed)
            if in6_chksum(103, carrier[Raw], zeroed) != struct.unpack("!H", raw[2:4])[0]:
                report["errors"].append(f"frame {n}: PIM checksum")
            ver, typ = raw[0] >> 4, raw[0] & 0xF
            if ver != 2:
                report["errors"].append(f"frame {n}: PIM version {ver}")
            body = raw[4:]
            if typ == 0:
                h = PIMv2Hello(body)
                if leftover(h):
                    report["errors"].append(f"frame {n}: Hello leftover: {h.summary()}")
                opts = {}
                for o in h.option:
                    if hasattr(o, "holdtime"):
                        opts["holdtime"] = o.holdtime
                    elif hasattr(o, "generation_id"):
                        opts["generation_id"] = o.generation_id
                    elif hasattr(o, "dr_priority"):
                        opts["dr_priority"] = o.dr_priority
                    elif isinstance(o, HelloAddressList):
                        opts["addresses"] = [a.addr for a in o.addrs]
                    elif o.type == 2:
                        opts["lan_prune_delay"] = True
                    else:
                        report["errors"].append(f"frame {n}: unknown Hello option {o.type}")
                report["pim_hellos"].append({"src": ip.src, **opts})
            elif typ == 3:
                jp = JoinPrune6(body)
                if leftover(jp):
                    report["errors"].append(f"frame {n}: Join/Prune leftover: {jp.summary()}")
                for g in jp.jp_ips:
                    report["pim_join_prunes"].append({
                        "src": ip.src, "upstream": jp.up_neighbor_ip, "holdtime": jp.holdtime,
                        "group": g.gaddr,
                        "joins": [s.src_ip for s in g.join_ips if s.sparse == 1],
                        "prunes": [s.src_ip for s in g.prune_ips if s.sparse == 1]})
            else:
                report["errors"].append(f"frame {n}: unexpected PIM type {typ}")
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
