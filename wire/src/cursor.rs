//! Bounds-checked big-endian readers and writers shared by the ICMPv6 and PIM modules.
use std::net::Ipv6Addr;

use crate::{Error, Result};

/// Reads fields front to back; running out of bytes is [`Error::Truncated`].
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { rest: buf }
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let (head, tail) = self.rest.split_at_checked(n).ok_or(Error::Truncated)?;
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        self.take(N)?.try_into().map_err(|_| Error::Truncated)
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(u8::from_be_bytes(self.array()?))
    }

    pub(crate) fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn addr(&mut self) -> Result<Ipv6Addr> {
        Ok(Ipv6Addr::from(self.array::<16>()?))
    }

    pub(crate) fn rest(&self) -> &'a [u8] {
        self.rest
    }
}

/// Writes fields front to back; running out of room is [`Error::BufferTooSmall`].
pub(crate) struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        Writer { buf, pos: 0 }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// The unwritten part, for nested `emit` calls; follow with [`Writer::advance`].
    pub(crate) fn remaining(&mut self) -> &mut [u8] {
        self.buf.get_mut(self.pos..).unwrap_or(&mut [])
    }

    /// Skips `n` bytes a nested `emit` wrote into [`Writer::remaining`].
    pub(crate) fn advance(&mut self, n: usize) {
        self.pos = self.pos.saturating_add(n).min(self.buf.len());
    }

    pub(crate) fn bytes(&mut self, src: &[u8]) -> Result<()> {
        let end = self
            .pos
            .checked_add(src.len())
            .ok_or(Error::BufferTooSmall)?;
        let dst = self
            .buf
            .get_mut(self.pos..end)
            .ok_or(Error::BufferTooSmall)?;
        dst.copy_from_slice(src);
        self.pos = end;
        Ok(())
    }

    pub(crate) fn zeros(&mut self, n: usize) -> Result<()> {
        let end = self.pos.checked_add(n).ok_or(Error::BufferTooSmall)?;
        self.buf
            .get_mut(self.pos..end)
            .ok_or(Error::BufferTooSmall)?
            .fill(0);
        self.pos = end;
        Ok(())
    }

    pub(crate) fn u8(&mut self, v: u8) -> Result<()> {
        self.bytes(&[v])
    }

    pub(crate) fn u16(&mut self, v: u16) -> Result<()> {
        self.bytes(&v.to_be_bytes())
    }

    pub(crate) fn u32(&mut self, v: u32) -> Result<()> {
        self.bytes(&v.to_be_bytes())
    }

    pub(crate) fn addr(&mut self, a: &Ipv6Addr) -> Result<()> {
        self.bytes(&a.octets())
    }
}

/// Big-endian u16 at `offset`, 0 when out of bounds (views check lengths up front).
pub(crate) fn be_u16(buf: &[u8], offset: usize) -> u16 {
    buf.get(offset..)
        .and_then(|s| s.first_chunk::<2>())
        .map_or(0, |b| u16::from_be_bytes(*b))
}

/// Big-endian u32 at `offset`, 0 when out of bounds (views check lengths up front).
pub(crate) fn be_u32(buf: &[u8], offset: usize) -> u32 {
    buf.get(offset..)
        .and_then(|s| s.first_chunk::<4>())
        .map_or(0, |b| u32::from_be_bytes(*b))
}

/// IPv6 address at `offset`, `::` when out of bounds (views check lengths up front).
pub(crate) fn addr_at(buf: &[u8], offset: usize) -> Ipv6Addr {
    buf.get(offset..)
        .and_then(|s| s.first_chunk::<16>())
        .map_or(Ipv6Addr::UNSPECIFIED, |b| Ipv6Addr::from(*b))
}
