//! MLDv1/MLDv2 parsing must never panic, and what parses must re-emit to the same value.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mipcast_wire::mld::{MldPacket, MldRepr};

fuzz_target!(|data: &[u8]| {
    if let Ok(packet) = MldPacket::new_checked(data) {
        let _ = packet.query_sources().count();
        for record in packet.records().flatten() {
            let _ = record.sources().count();
        }
    }
    if let Ok(repr) = MldRepr::parse(data) {
        let mut buf = vec![0; repr.buffer_len()];
        let n = repr.emit(&mut buf).expect("emit of a parsed repr");
        assert_eq!(MldRepr::parse(&buf[..n]).expect("reparse"), repr);
    }
});
