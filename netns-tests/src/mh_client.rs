//! The client side of Mobility Header signalling, for tests and benchmarks that play a mobile
//! node or a terminal against a real daemon: a signed Binding Update builder (mipcast-wire) and
//! a blocking raw-MH-socket client that reads the answers.
use std::io::{self, Read};
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::time::{Duration, SystemTime};

use mipcast_wire::auth::{Algorithm, Credentials};
use mipcast_wire::mh::{
    bu_flags, fill_checksum, BindingUpdate, Experimental, Message, MhRepr, MobilityOption,
};
use mipcast_wire::ntp::ntp_timestamp;
use socket2::{Domain, Protocol, Socket, Type};

/// IPPROTO_MH.
const MH_PROTOCOL: i32 = 135;

/// A Binding Update as a client sends it. Options are emitted in a fixed order: Home Network
/// Prefix (HoA/128), Alternate Care-of Address, Replay Protection, Terminal Group, Forwarding
/// Request, then the MN-HA Authentication option when `key` is set.
#[derive(Debug, Clone)]
pub struct Bu {
    pub sequence: u16,
    pub flags: u16,
    /// 4-second units.
    pub lifetime: u16,
    pub hoa: Ipv6Addr,
    /// The packet's source address; the authenticator covers it unless `alternate_coa` is set.
    pub coa: Ipv6Addr,
    pub alternate_coa: Option<Ipv6Addr>,
    pub group: Option<Ipv6Addr>,
    /// (new care-of address, grace seconds) of a forwarding request.
    pub forward: Option<(Ipv6Addr, u32)>,
    /// NTP timestamp of the Replay Protection option.
    pub timestamp: u64,
    pub spi: u32,
    pub algorithm: Algorithm,
    /// None: no Authentication option at all.
    pub key: Option<Vec<u8>>,
}

impl Bu {
    /// A BU with the A flag, lifetime 0, Replay Protection at the wall clock now, signed with
    /// HMAC-SHA256-128 under `spi` and `key`, and no optional options.
    pub fn new(sequence: u16, hoa: Ipv6Addr, coa: Ipv6Addr, spi: u32, key: &[u8]) -> Bu {
        Bu {
            sequence,
            flags: bu_flags::ACK,
            lifetime: 0,
            hoa,
            coa,
            alternate_coa: None,
            group: None,
            forward: None,
            timestamp: ntp_timestamp(SystemTime::now()),
            spi,
            algorithm: Algorithm::HmacSha256_128,
            key: Some(key.to_vec()),
        }
    }

    /// This BU as a deregistration (lifetime 0), optionally asking for forwarding.
    pub fn dereg(mut self, forward: Option<(Ipv6Addr, u32)>) -> Bu {
        self.lifetime = 0;
        self.forward = forward;
        self
    }

    /// The Mobility Header with a zero checksum (a kernel MH socket fills it in).
    ///
    /// # Panics
    /// When the wire crate refuses to emit the message (an HMAC key it cannot use): the
    /// caller's own test data is wrong.
    pub fn bytes(&self) -> Vec<u8> {
        let mut options = vec![MobilityOption::HomeNetworkPrefix {
            prefix_len: 128,
            prefix: self.hoa,
        }];
        options.extend(self.alternate_coa.map(MobilityOption::AlternateCareOf));
        options.push(MobilityOption::ReplayProtection {
            timestamp: self.timestamp,
        });
        if let Some(group) = self.group {
            options.push(MobilityOption::Experimental(Experimental::TerminalGroup(
                group,
            )));
        }
        if let Some((new_coa, grace_secs)) = self.forward {
            options.push(MobilityOption::Experimental(
                Experimental::ForwardingRequest {
                    new_coa,
                    grace_secs,
                },
            ));
        }
        let repr = MhRepr {
            message: Message::BindingUpdate(BindingUpdate {
                sequence: self.sequence,
                flags: self.flags,
                lifetime: self.lifetime,
            }),
            options,
        };
        // Room for the Authentication option, which `buffer_len` does not count.
        let mut buf = vec![0; repr.buffer_len() + 64];
        let len = match &self.key {
            Some(key) => {
                let creds = Credentials {
                    spi: self.spi,
                    algorithm: self.algorithm,
                    key,
                };
                let coa = self.alternate_coa.unwrap_or(self.coa);
                repr.emit_authenticated(&mut buf, &creds, &coa, &self.hoa)
            }
            None => repr.emit(&mut buf),
        }
        .expect("emit BU");
        buf.truncate(len);
        buf
    }
}

/// The decoded answer to a BU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    Ack {
        status: u8,
        sequence: u16,
        lifetime: u16,
    },
    Error {
        status: u8,
    },
}

/// The Binding Acknowledgement or Binding Error in `mh`; None for anything else (Binding
/// Refresh Requests, garbage).
pub fn parse_reply(mh: &[u8]) -> Option<Reply> {
    match MhRepr::parse(mh).ok()?.message {
        Message::BindingAck(b) => Some(Reply::Ack {
            status: b.status,
            sequence: b.sequence,
            lifetime: b.lifetime,
        }),
        Message::BindingError(e) => Some(Reply::Error { status: e.status }),
        _ => None,
    }
}

/// A blocking raw MH socket bound to one source address and talking to one daemon. The
/// checksum is computed here, so it works without the kernel's checksum offload.
pub struct MhClient {
    sock: Socket,
    source: Ipv6Addr,
    peer: Ipv6Addr,
}

impl MhClient {
    /// Opens the socket in the calling thread's namespace; receives give up after `timeout`.
    pub fn bind(source: Ipv6Addr, peer: Ipv6Addr, timeout: Duration) -> io::Result<MhClient> {
        let sock = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::from(MH_PROTOCOL)))?;
        sock.bind(&SocketAddr::V6(SocketAddrV6::new(source, 0, 0, 0)).into())?;
        sock.set_read_timeout(Some(timeout))?;
        // A big receive buffer: the answers to a whole window of BUs may be queued at once.
        // Best effort: a smaller buffer only means more lost answers.
        let _ = sock.set_recv_buffer_size(4 << 20);
        Ok(MhClient { sock, source, peer })
    }

    /// Sends `mh` (checksum field ignored) to the peer.
    pub fn send(&self, mh: &[u8]) -> io::Result<()> {
        let mut packet = mh.to_vec();
        fill_checksum(&mut packet, &self.source, &self.peer)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        self.sock.send_to(
            &packet,
            &SocketAddr::V6(SocketAddrV6::new(self.peer, 0, 0, 0)).into(),
        )?;
        Ok(())
    }

    /// The next message: Some(reply) for a BAck or BE, None for anything else; an error after
    /// the timeout.
    pub fn recv(&self) -> io::Result<Option<Reply>> {
        let mut buf = [0u8; 2048];
        let n = (&self.sock).read(&mut buf)?;
        Ok(buf.get(..n).and_then(parse_reply))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mipcast_wire::auth::verify;

    const HOA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x100);
    const SRC: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 9);
    const ALT: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 3, 0, 0, 0, 0, 1);
    const GROUP: Ipv6Addr = Ipv6Addr::new(0xff35, 0, 0, 0, 0, 0, 0, 1);
    const KEY: &[u8] = b"a test key";

    fn parsed(bytes: &[u8]) -> MhRepr {
        MhRepr::parse(bytes).expect("parse own BU")
    }

    #[test]
    fn options_in_order_and_signed_over_the_alternate_coa() {
        let bu = Bu {
            alternate_coa: Some(ALT),
            group: Some(GROUP),
            forward: Some((SRC, 7)),
            ..Bu::new(5, HOA, SRC, 1000, KEY)
        };
        let bytes = bu.bytes();
        let repr = parsed(&bytes);
        assert!(matches!(
            repr.message,
            Message::BindingUpdate(BindingUpdate {
                sequence: 5,
                flags: bu_flags::ACK,
                lifetime: 0
            })
        ));
        let expected = [
            MobilityOption::HomeNetworkPrefix {
                prefix_len: 128,
                prefix: HOA,
            },
            MobilityOption::AlternateCareOf(ALT),
            MobilityOption::ReplayProtection {
                timestamp: bu.timestamp,
            },
            MobilityOption::Experimental(Experimental::TerminalGroup(GROUP)),
            MobilityOption::Experimental(Experimental::ForwardingRequest {
                new_coa: SRC,
                grace_secs: 7,
            }),
        ];
        assert_eq!(repr.options.get(..5), Some(&expected[..]));
        assert_eq!(repr.options.len(), 6, "{:?}", repr.options);
        let lookup = |spi| (spi == 1000).then_some((Algorithm::HmacSha256_128, KEY));
        assert_eq!(verify(&bytes, &ALT, &HOA, lookup), Ok(1000));
        assert!(
            verify(&bytes, &SRC, &HOA, lookup).is_err(),
            "the source is not what is signed"
        );
    }

    #[test]
    fn unsigned_and_source_signed() {
        let unsigned = Bu {
            key: None,
            ..Bu::new(1, HOA, SRC, 1000, KEY)
        }
        .bytes();
        assert!(!parsed(&unsigned)
            .options
            .iter()
            .any(|o| matches!(o, MobilityOption::Authentication { .. })));
        let signed = Bu::new(1, HOA, SRC, 1000, KEY).dereg(None).bytes();
        let lookup = |spi| (spi == 1000).then_some((Algorithm::HmacSha256_128, KEY));
        assert_eq!(verify(&signed, &SRC, &HOA, lookup), Ok(1000));
    }

    #[test]
    fn replies() {
        let bu = Bu::new(1, HOA, SRC, 1000, KEY).bytes();
        assert_eq!(parse_reply(&bu), None);
        assert_eq!(parse_reply(&[1, 2, 3]), None);
        let back = |message| {
            let repr = MhRepr {
                message,
                options: vec![],
            };
            let mut buf = vec![0; repr.buffer_len()];
            let n = repr.emit(&mut buf).expect("emit");
            buf.truncate(n);
            buf
        };
        let ack = back(Message::BindingAck(mipcast_wire::mh::BindingAck {
            status: 146,
            flags: 0,
            sequence: 9,
            lifetime: 3,
        }));
        assert_eq!(
            parse_reply(&ack),
            Some(Reply::Ack {
                status: 146,
                sequence: 9,
                lifetime: 3
            })
        );
        let be = back(Message::BindingError(mipcast_wire::mh::BindingError {
            status: 2,
            home_address: HOA,
        }));
        assert_eq!(parse_reply(&be), Some(Reply::Error { status: 2 }));
    }
}
