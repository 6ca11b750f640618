//! The Internet checksum (RFC 1071) and the IPv6 upper-layer pseudo-header (RFC 8200 §8.1).
use std::net::Ipv6Addr;

use crate::{Error, Result};

/// Ones'-complement sum of `data` folded into 16 bits (not yet complemented). An odd trailing
/// byte is padded with zero, as RFC 1071 requires.
pub fn sum(mut acc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        if let [a, b] = c {
            acc += u32::from(u16::from_be_bytes([*a, *b]));
        }
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(u16::from_be_bytes([*last, 0]));
    }
    fold(acc)
}

fn fold(mut acc: u32) -> u32 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc
}

/// Sum of the IPv6 pseudo-header for an upper-layer packet of `len` bytes.
pub fn pseudo_header(src: &Ipv6Addr, dst: &Ipv6Addr, next_header: u8, len: u32) -> u32 {
    let mut acc = sum(0, &src.octets());
    acc = sum(acc, &dst.octets());
    acc += len >> 16;
    acc += len & 0xffff;
    acc += u32::from(next_header);
    fold(acc)
}

/// The checksum to store in an upper-layer header whose checksum field is zero in `packet`.
pub fn ipv6_upper_layer(src: &Ipv6Addr, dst: &Ipv6Addr, next_header: u8, packet: &[u8]) -> u16 {
    let len = u32::try_from(packet.len()).unwrap_or(u32::MAX);
    let acc = sum(pseudo_header(src, dst, next_header, len), packet);
    !(acc as u16)
}

/// True when `packet`, checksum field included, verifies against the pseudo-header.
pub fn verify_ipv6_upper_layer(
    src: &Ipv6Addr,
    dst: &Ipv6Addr,
    next_header: u8,
    packet: &[u8],
) -> bool {
    let len = u32::try_from(packet.len()).unwrap_or(u32::MAX);
    sum(pseudo_header(src, dst, next_header, len), packet) == 0xffff
}

/// Writes the checksum of the upper-layer message `buf` (exactly one message, checksum field at
/// `offset`) sent from `src` to `dst` with `next_header`; the field's old value is ignored.
pub fn fill(
    buf: &mut [u8],
    offset: usize,
    src: &Ipv6Addr,
    dst: &Ipv6Addr,
    next_header: u8,
) -> Result<()> {
    buf.get_mut(offset..offset + 2)
        .ok_or(Error::Truncated)?
        .fill(0);
    let sum = ipv6_upper_layer(src, dst, next_header, buf);
    buf.get_mut(offset..offset + 2)
        .ok_or(Error::Truncated)?
        .copy_from_slice(&sum.to_be_bytes());
    Ok(())
}

/// Checks the checksum of the upper-layer message `buf`, which must at least reach past its
/// checksum field at `offset`: `Err(Truncated)` when it does not, `Err(BadChecksum)` when the
/// sum does not verify.
pub fn verify(
    buf: &[u8],
    offset: usize,
    src: &Ipv6Addr,
    dst: &Ipv6Addr,
    next_header: u8,
) -> Result<()> {
    if buf.len() < offset + 2 {
        return Err(Error::Truncated);
    }
    if verify_ipv6_upper_layer(src, dst, next_header, buf) {
        Ok(())
    } else {
        Err(Error::BadChecksum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the sum of 0001 f203 f4f5 f6f7 is ddf2.
        assert_eq!(
            sum(0, &[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0xddf2
        );
    }

    #[test]
    fn filled_checksum_verifies() {
        let src: Ipv6Addr = "fe80::1".parse().unwrap();
        let dst: Ipv6Addr = "ff02::d".parse().unwrap();
        let mut pkt = vec![0x20, 0, 0, 0, 1, 2, 3, 4, 5];
        let c = ipv6_upper_layer(&src, &dst, 103, &pkt);
        pkt[2..4].copy_from_slice(&c.to_be_bytes());
        assert!(verify_ipv6_upper_layer(&src, &dst, 103, &pkt));
        pkt[8] ^= 1;
        assert!(!verify_ipv6_upper_layer(&src, &dst, 103, &pkt));
    }
}
