//! Router Solicitation / Advertisement parsing must never panic, and what parses must re-emit
//! to the same value.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mipcast_wire::nd::{NdOption, NdPacket, NdRepr};

fuzz_target!(|data: &[u8]| {
    if let Ok(packet) = NdPacket::new_checked(data) {
        for raw in packet.options().flatten() {
            let _ = NdOption::parse(raw);
        }
    }
    if let Ok(repr) = NdRepr::parse(data) {
        let mut buf = vec![0; repr.buffer_len()];
        let n = repr.emit(&mut buf).expect("emit of a parsed repr");
        assert_eq!(NdRepr::parse(&buf[..n]).expect("reparse"), repr);
    }
});
