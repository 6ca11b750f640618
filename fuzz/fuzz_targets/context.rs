//! Context transfer messages between MMAs on arbitrary bytes: no panics; the Terminal Context
//! view agrees with the owned parse; a parsed request or reply re-emits to the same value.
#![no_main]

use std::net::Ipv6Addr;

use libfuzzer_sys::fuzz_target;
use mipcast_wire::auth::{Algorithm, Credentials};
use mipcast_wire::context::{self, ContextReply, ContextRequest, TerminalContext, TerminalContextView};
use mipcast_wire::mh::MhRepr;

fuzz_target!(|data: &[u8]| {
    // The option data alone (sub-type byte first).
    if let Ok(view) = TerminalContextView::new_checked(data) {
        let owned = TerminalContext::parse(data).expect("view accepted it");
        assert_eq!(owned.correspondents.len(), view.correspondent_count());
        assert_eq!(owned.group, view.group());
    }
    let _ = context::is_context_request(data);
    let requester = Ipv6Addr::LOCALHOST;
    let key = [0x5a; 20];
    let creds = Credentials { spi: 300, algorithm: Algorithm::HmacSha1_96, key: &key };
    if let Ok(repr) = MhRepr::parse(data) {
        if let Some(req) = ContextRequest::from_repr(&repr) {
            let bytes = req.emit_authenticated(&creds, &requester).expect("emit");
            let back = MhRepr::parse(&bytes).expect("parse own");
            assert_eq!(ContextRequest::from_repr(&back), Some(req));
            let _ = context::verify(data, &requester, &req.hoa, |_| Some((Algorithm::HmacSha1_96, &key[..])));
        }
        if let Some(reply) = ContextReply::from_repr(&repr) {
            if let Ok(bytes) = reply.emit_authenticated(&creds, &requester) {
                let back = MhRepr::parse(&bytes).expect("parse own");
                assert_eq!(ContextReply::from_repr(&back), Some(reply));
            }
        }
    }
});
