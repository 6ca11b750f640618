//! PIMv2 (IPv6) parsing must never panic, and what parses must re-emit to the same value.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mipcast_wire::pim::{
    EncodedGroup, EncodedSource, EncodedUnicast, HelloOption, PimPacket, PimRepr,
};

fuzz_target!(|data: &[u8]| {
    let _ = (
        EncodedUnicast::parse(data),
        EncodedGroup::parse(data),
        EncodedSource::parse(data),
    );
    if let Ok(packet) = PimPacket::new_checked(data) {
        for raw in packet.hello_options().flatten() {
            let _ = HelloOption::parse(raw);
        }
        // Tolerant Hello parsing keeps only options that re-emit to themselves.
        for opt in mipcast_wire::pim::parse_hello(packet.payload()).options {
            let mut buf = vec![0; opt.buffer_len()];
            let n = opt.emit(&mut buf).expect("emit of a parsed option");
            assert_eq!(
                mipcast_wire::pim::parse_hello(&buf[..n]).options,
                vec![opt]
            );
        }
    }
    if let Ok(repr) = PimRepr::parse(data) {
        let mut buf = vec![0; repr.buffer_len()];
        let n = repr.emit(&mut buf).expect("emit of a parsed repr");
        assert_eq!(PimRepr::parse(&buf[..n]).expect("reparse"), repr);
    }
});
