//! nfnetlink framing for nf_tables: message and batch builders, attribute writer, reply walker.
//!
//! Numbers are from the kernel UAPI headers `linux/netfilter/nfnetlink.h` and
//! `linux/netfilter/nf_tables.h`; the unit tests compare our bytes with what `nft` 1.0.6 sends
//! and what kernel 6.18 dumps.
use netlink_packet_core::{
    NetlinkBuffer, NlaBuffer, NlasIterator, NLA_F_NESTED, NLM_F_ACK, NLM_F_REQUEST,
};

/// `NFNL_SUBSYS_NFTABLES`: the high byte of every nf_tables message type.
const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// `NFNL_MSG_BATCH_BEGIN` / `NFNL_MSG_BATCH_END` (`NLMSG_MIN_TYPE` and the next one).
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFNETLINK_V0: u8 = 0;
/// `NFPROTO_IPV6`: the `ip6` table family.
pub(super) const NFPROTO_IPV6: u8 = 10;
/// `sizeof(struct nlmsghdr)` and `sizeof(struct nfgenmsg)`.
const NLMSG_HDR_LEN: usize = 16;
pub(super) const NFGENMSG_LEN: usize = 4;
const NLA_HDR_LEN: usize = 4;
/// Netlink messages and attributes are padded to 4 bytes.
const ALIGN: usize = 4;

/// `enum nf_tables_msg_types`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum MsgType {
    NewTable = 0,
    DelTable = 2,
    NewChain = 3,
    NewRule = 6,
    GetRule = 7,
    DelRule = 8,
    NewSet = 9,
}

impl MsgType {
    fn nlmsg_type(self) -> u16 {
        NFNL_SUBSYS_NFTABLES << 8 | self as u16
    }

    /// Recognises the nf_tables message type of a reply.
    pub(super) fn is(self, nlmsg_type: u16) -> bool {
        nlmsg_type == self.nlmsg_type()
    }
}

/// Attribute numbers (`enum nft_*_attributes`) of the messages and expressions we build.
pub(super) mod attr {
    pub(crate) const TABLE_NAME: u16 = 1;
    pub(crate) const CHAIN_TABLE: u16 = 1;
    pub(crate) const CHAIN_NAME: u16 = 3;
    pub(crate) const CHAIN_HOOK: u16 = 4;
    pub(crate) const CHAIN_POLICY: u16 = 5;
    pub(crate) const CHAIN_TYPE: u16 = 7;
    pub(crate) const HOOK_HOOKNUM: u16 = 1;
    pub(crate) const HOOK_PRIORITY: u16 = 2;
    pub(crate) const RULE_TABLE: u16 = 1;
    pub(crate) const RULE_CHAIN: u16 = 2;
    pub(crate) const RULE_HANDLE: u16 = 3;
    pub(crate) const RULE_EXPRESSIONS: u16 = 4;
    pub(crate) const LIST_ELEM: u16 = 1;
    pub(crate) const EXPR_NAME: u16 = 1;
    pub(crate) const EXPR_DATA: u16 = 2;
    pub(crate) const DATA_VALUE: u16 = 1;
    pub(crate) const PAYLOAD_DREG: u16 = 1;
    pub(crate) const PAYLOAD_BASE: u16 = 2;
    pub(crate) const PAYLOAD_OFFSET: u16 = 3;
    pub(crate) const PAYLOAD_LEN: u16 = 4;
    pub(crate) const CMP_SREG: u16 = 1;
    pub(crate) const CMP_OP: u16 = 2;
    pub(crate) const CMP_DATA: u16 = 3;
    pub(crate) const IMMEDIATE_DREG: u16 = 1;
    pub(crate) const IMMEDIATE_DATA: u16 = 2;
    pub(crate) const META_DREG: u16 = 1;
    pub(crate) const META_KEY: u16 = 2;
    pub(crate) const META_SREG: u16 = 3;
    pub(crate) const COUNTER_BYTES: u16 = 1;
    pub(crate) const COUNTER_PACKETS: u16 = 2;
}

/// Appends netlink attributes to a message under construction.
pub(super) struct Attrs<'a>(pub(super) &'a mut Vec<u8>);

impl Attrs<'_> {
    pub(super) fn bytes(&mut self, kind: u16, value: &[u8]) {
        let start = self.begin(kind);
        self.0.extend_from_slice(value);
        self.end(start);
    }

    /// A NUL-terminated string, as the kernel's `NLA_STRING` policy with `nla_strcmp` expects.
    pub(super) fn string(&mut self, kind: u16, value: &str) {
        let start = self.begin(kind);
        self.0.extend_from_slice(value.as_bytes());
        self.0.push(0);
        self.end(start);
    }

    /// nf_tables carries every integer in network byte order.
    pub(super) fn u32_be(&mut self, kind: u16, value: u32) {
        self.bytes(kind, &value.to_be_bytes());
    }

    pub(super) fn u64_be(&mut self, kind: u16, value: u64) {
        self.bytes(kind, &value.to_be_bytes());
    }

    pub(super) fn nested(&mut self, kind: u16, fill: impl FnOnce(&mut Attrs<'_>)) {
        let start = self.begin(kind | NLA_F_NESTED);
        fill(&mut Attrs(self.0));
        self.end(start);
    }

    fn begin(&mut self, kind: u16) -> usize {
        let start = self.0.len();
        self.0.extend_from_slice(&[0, 0]);
        self.0.extend_from_slice(&kind.to_ne_bytes());
        start
    }

    /// Patches the attribute length (padding excluded, as `nla_len` counts) and pads to 4.
    fn end(&mut self, start: usize) {
        // Our messages are bounded (table names are at most 255 bytes, one rule of six small
        // expressions), so an attribute never reaches the 64 KiB an `nla_len` can express.
        let len = (self.0.len() - start) as u16;
        if let Some(field) = self.0.get_mut(start..start + 2) {
            field.copy_from_slice(&len.to_ne_bytes());
        }
        pad(self.0);
    }
}

fn pad(buf: &mut Vec<u8>) {
    let aligned = buf.len().div_ceil(ALIGN) * ALIGN;
    buf.resize(aligned, 0);
}

/// Appends one nfnetlink message (header, `nfgenmsg`, attributes) to `buf`.
fn push_message(
    buf: &mut Vec<u8>,
    nlmsg_type: u16,
    flags: u16,
    seq: u32,
    nfgen: [u8; NFGENMSG_LEN],
    fill: impl FnOnce(&mut Attrs<'_>),
) {
    let start = buf.len();
    buf.extend_from_slice(&[0; 4]);
    buf.extend_from_slice(&nlmsg_type.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
    buf.extend_from_slice(&nfgen);
    fill(&mut Attrs(buf));
    pad(buf);
    let len = (buf.len() - start) as u32;
    if let Some(field) = buf.get_mut(start..start + 4) {
        field.copy_from_slice(&len.to_ne_bytes());
    }
}

/// `struct nfgenmsg` for an nf_tables object of the given family.
fn nfgen(family: u8) -> [u8; NFGENMSG_LEN] {
    [family, NFNETLINK_V0, 0, 0]
}

/// A transaction: nf_tables applies every message between BATCH_BEGIN and BATCH_END, or none.
///
/// Each inner message asks for an ack so the caller knows when the kernel is done and which
/// message an error belongs to.
pub(super) struct Batch {
    buf: Vec<u8>,
    next_seq: u32,
    /// Sequence number and a word for the error message, of each message awaiting its ack.
    acked: Vec<(u32, &'static str)>,
}

/// The sequence number of BATCH_BEGIN: an error carrying it means the kernel refused the batch
/// as a whole, which happens when the nf_tables subsystem is absent.
pub(super) const BATCH_BEGIN_SEQ: u32 = 1;

impl Batch {
    pub(super) fn new() -> Batch {
        let mut buf = Vec::with_capacity(1024);
        // res_id of a batch message names the subsystem, in network byte order.
        let subsys = NFNL_SUBSYS_NFTABLES.to_be_bytes();
        let begin = [0, NFNETLINK_V0, subsys[0], subsys[1]];
        push_message(
            &mut buf,
            NFNL_MSG_BATCH_BEGIN,
            NLM_F_REQUEST,
            BATCH_BEGIN_SEQ,
            begin,
            |_| {},
        );
        Batch {
            buf,
            next_seq: BATCH_BEGIN_SEQ + 1,
            acked: Vec::new(),
        }
    }

    pub(super) fn push(
        &mut self,
        msg: MsgType,
        flags: u16,
        family: u8,
        what: &'static str,
        fill: impl FnOnce(&mut Attrs<'_>),
    ) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.acked.push((seq, what));
        push_message(
            &mut self.buf,
            msg.nlmsg_type(),
            NLM_F_REQUEST | NLM_F_ACK | flags,
            seq,
            nfgen(family),
            fill,
        );
    }

    pub(super) fn is_empty(&self) -> bool {
        self.acked.is_empty()
    }

    /// The datagram to send and the sequence numbers that will each get an ack or an error.
    pub(super) fn finish(mut self) -> (Vec<u8>, Vec<(u32, &'static str)>) {
        let subsys = NFNL_SUBSYS_NFTABLES.to_be_bytes();
        let end = [0, NFNETLINK_V0, subsys[0], subsys[1]];
        push_message(
            &mut self.buf,
            NFNL_MSG_BATCH_END,
            NLM_F_REQUEST,
            self.next_seq,
            end,
            |_| {},
        );
        (self.buf, self.acked)
    }
}

/// A stand-alone (non-batched) request, used for dumps.
pub(super) fn request(
    msg: MsgType,
    flags: u16,
    seq: u32,
    family: u8,
    fill: impl FnOnce(&mut Attrs<'_>),
) -> Vec<u8> {
    let mut buf = Vec::with_capacity(128);
    push_message(
        &mut buf,
        msg.nlmsg_type(),
        NLM_F_REQUEST | flags,
        seq,
        nfgen(family),
        fill,
    );
    buf
}

/// One message of a kernel reply datagram.
pub(super) struct Reply<'a> {
    pub(super) nlmsg_type: u16,
    pub(super) flags: u16,
    pub(super) seq: u32,
    pub(super) payload: &'a [u8],
}

/// Splits a reply datagram into its netlink messages; `Err` describes the first malformed one.
pub(super) fn replies(datagram: &[u8]) -> impl Iterator<Item = Result<Reply<'_>, String>> {
    let mut rest = datagram;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let msg = match NetlinkBuffer::new_checked(rest) {
            Ok(m) => m,
            Err(e) => {
                rest = &[];
                return Some(Err(format!("bad netlink message: {e}")));
            }
        };
        let len = msg.length() as usize;
        let reply = Reply {
            nlmsg_type: msg.message_type(),
            flags: msg.flags(),
            seq: msg.sequence_number(),
            payload: rest.get(NLMSG_HDR_LEN..len).unwrap_or(&[]),
        };
        rest = rest.get(len.div_ceil(ALIGN) * ALIGN..).unwrap_or(&[]);
        Some(Ok(reply))
    })
}

/// The errno of an `NLMSG_ERROR` payload (0 for an ack), as a positive number.
pub(super) fn error_code(payload: &[u8]) -> Option<i32> {
    let raw: [u8; 4] = payload.get(..4)?.try_into().ok()?;
    Some(i32::from_ne_bytes(raw).wrapping_neg())
}

/// The attributes of `buf`, as (kind without flags, value); stops at the first malformed one.
pub(super) fn attributes(buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    NlasIterator::new(buf).map_while(|nla: Result<NlaBuffer<&[u8]>, _>| {
        let nla = nla.ok()?;
        let (kind, len) = (nla.kind(), usize::from(nla.length()));
        let value = nla.into_inner().get(NLA_HDR_LEN..len)?;
        Some((kind, value))
    })
}

/// The value of the first attribute of the given kind.
pub(super) fn find(buf: &[u8], kind: u16) -> Option<&[u8]> {
    attributes(buf).find(|(k, _)| *k == kind).map(|(_, v)| v)
}

pub(super) fn be_u32(value: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(value.try_into().ok()?))
}

pub(super) fn be_u64(value: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(value.try_into().ok()?))
}
