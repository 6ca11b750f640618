//! Mobility Header parsing and RFC 4285 verification on arbitrary bytes: no panics, and every
//! message that parses re-emits to something that parses back the same.
#![no_main]

use std::net::Ipv6Addr;

use libfuzzer_sys::fuzz_target;
use mipcast_wire::auth::{self, Algorithm};
use mipcast_wire::mh::{verify_checksum, MhPacket, MhRepr};

fuzz_target!(|data: &[u8]| {
    let (coa, hoa) = (Ipv6Addr::LOCALHOST, Ipv6Addr::UNSPECIFIED);
    if let Ok(packet) = MhPacket::new_checked(data) {
        let _ = (packet.payload_proto(), packet.mh_type(), packet.checksum(), packet.message_data());
        if let Ok(options) = packet.options() {
            options.for_each(drop);
        }
    }
    if let Ok(repr) = MhRepr::parse(data) {
        let mut out = vec![0u8; repr.buffer_len()];
        if repr.emit(&mut out).is_ok() {
            assert_eq!(MhRepr::parse(&out), Ok(repr));
        }
    }
    let key = [0x5a; 20];
    for algorithm in [Algorithm::HmacSha1_96, Algorithm::HmacSha256_128] {
        let _ = auth::verify(data, &coa, &hoa, |_| Some((algorithm, &key[..])));
    }
    let _ = verify_checksum(data, &coa, &hoa);
});
