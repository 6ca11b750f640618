//! The few socket options and structures neither socket2 nor nix cover (ICMP6 filter, IPV6_CHECKSUM,
//! sticky hop-by-hop options, source-specific joins, MRT6), as thin checked wrappers.
use std::io;
use std::mem;
use std::net::Ipv6Addr;
use std::os::fd::{AsRawFd, BorrowedFd};

use socket2::Socket;
use tokio::io::unix::AsyncFd;

use super::error::{Result, SocketError};

/// `ICMPV6_FILTER` from linux/icmpv6.h (the glibc name is ICMP6_FILTER); libc does not export it.
pub(crate) const ICMPV6_FILTER: libc::c_int = 1;

/// Sets a socket option whose value is the plain-old-data `value`.
pub(crate) fn set_opt<T: Copy>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
    op: &str,
) -> Result<()> {
    let len = libc::socklen_t::try_from(mem::size_of::<T>())
        .map_err(|_| SocketError::os(op, io::Error::from_raw_os_error(libc::EINVAL)))?;
    // SAFETY: `value` is a live, initialised `T` of `len` bytes for the duration of the call;
    // the kernel only reads it.
    let rc =
        unsafe { libc::setsockopt(fd.as_raw_fd(), level, name, (value as *const T).cast(), len) };
    check(rc, op)
}

/// Sets a socket option from a byte buffer (possibly empty, which clears sticky options).
pub(crate) fn set_opt_bytes(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: &[u8],
    op: &str,
) -> Result<()> {
    let len = libc::socklen_t::try_from(value.len())
        .map_err(|_| SocketError::os(op, io::Error::from_raw_os_error(libc::EINVAL)))?;
    // SAFETY: the pointer and length describe the live slice `value`; the kernel only reads it.
    let rc = unsafe { libc::setsockopt(fd.as_raw_fd(), level, name, value.as_ptr().cast(), len) };
    check(rc, op)
}

/// Runs an ioctl whose argument is a read-write `T` (the MRT6 counter requests).
pub(crate) fn ioctl_inout<T: Copy>(
    fd: BorrowedFd<'_>,
    request: libc::c_ulong,
    arg: &mut T,
    op: &str,
) -> Result<()> {
    // SAFETY: `arg` is a live, exclusively borrowed `T` matching the layout the kernel expects
    // for `request` (checked by the callers' struct definitions); the kernel writes within it.
    let rc = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            request as _,
            (arg as *mut T).cast::<libc::c_void>(),
        )
    };
    check(rc, op)
}

fn check(rc: libc::c_int, op: &str) -> Result<()> {
    if rc < 0 {
        Err(SocketError::os(op, io::Error::last_os_error()))
    } else {
        Ok(())
    }
}

pub(crate) fn sockaddr_in6(addr: Ipv6Addr, scope_id: u32) -> libc::sockaddr_in6 {
    // SAFETY: sockaddr_in6 is plain old data; all-zero is a valid value.
    let mut sa: libc::sockaddr_in6 = unsafe { mem::zeroed() };
    sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    sa.sin6_addr.s6_addr = addr.octets();
    sa.sin6_scope_id = scope_id;
    sa
}

pub(crate) fn sockaddr_storage_v6(addr: Ipv6Addr) -> libc::sockaddr_storage {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
    let mut ss: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let sa = sockaddr_in6(addr, 0);
    // SAFETY: sockaddr_storage is by definition large enough and aligned for any sockaddr.
    unsafe {
        std::ptr::write(
            (&mut ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>(),
            sa,
        )
    };
    ss
}

/// Hands `socket` to the current tokio runtime's reactor; an error (not tokio's panic) when
/// called outside a runtime.
pub(crate) fn register(socket: Socket, what: &str) -> Result<AsyncFd<Socket>> {
    let op = || format!("register {what} socket with tokio");
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(SocketError::os(
            op(),
            io::Error::other("not called within a tokio runtime"),
        ));
    }
    // SAFETY: the Socket owns its descriptor and keeps returning that same descriptor until
    // the AsyncFd, which owns the Socket, is dropped.
    unsafe { AsyncFd::register(socket) }.map_err(|e| SocketError::os(op(), io::Error::from(e)))
}
