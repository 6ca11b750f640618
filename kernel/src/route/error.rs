//! The one error type of the rtnetlink layer: every message names the object or request and
//! carries the kernel's own words for what went wrong.
use std::fmt;

use mipcast_proto::Outcome;

use super::object::KObject;

/// What we were doing to an object when the kernel refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    Add,
    Replace,
    Delete,
}

impl Op {
    /// The operation's metric label.
    pub fn label(self) -> &'static str {
        match self {
            Op::Add => "add",
            Op::Replace => "replace",
            Op::Delete => "delete",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Add => "adding",
            Op::Replace => "replacing",
            Op::Delete => "deleting",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// The kernel (or the connection to it) failed a change to one object, e.g.
    /// "adding encap route 2001:db8::1/128 -> ff35::1 dev 3 table 254: File exists".
    #[error("{op} {object}: {text}")]
    Object {
        op: Op,
        object: KObject,
        /// The kernel's errno, None when there was no kernel answer (timeout, closed socket)
        /// or we refused ourselves (the object exists and belongs to someone else).
        errno: Option<i32>,
        text: String,
    },
    /// A request that is not about one of our objects (a dump, a lookup, the tunnel source,
    /// the local-table rule) failed.
    #[error("{what}: {text}")]
    Request {
        what: String,
        errno: Option<i32>,
        text: String,
    },
    #[error("opening a netlink socket: {0}")]
    Socket(#[source] std::io::Error),
    #[error("no interface named {0:?}")]
    NoSuchInterface(String),
}

impl RouteError {
    /// The errno policy of every daemon, in one place: what this failure means for the change
    /// that caused it. By errno, never by the kernel's text.
    pub fn outcome(&self) -> Outcome {
        outcome_of(self.errno(), || self.to_string())
    }

    /// The kernel's errno (positive, e.g. `libc::EEXIST`), when the kernel answered.
    pub fn errno(&self) -> Option<i32> {
        match self {
            RouteError::Object { errno, .. } | RouteError::Request { errno, .. } => *errno,
            RouteError::Socket(e) => e.raw_os_error(),
            RouteError::NoSuchInterface(_) => Some(libc::ENODEV),
        }
    }
}

/// The errno policy: EEXIST is "already present"; ENOENT/ESRCH/EADDRNOTAVAIL (no such entry)
/// and ENODEV (its interface is gone, and the kernel took the object with it) are "already
/// gone"; anything else (or no kernel answer) is a refusal with `reason`. Used for netlink
/// and for socket-option changes (MRT6, memberships, nftables) alike.
pub fn outcome_of(errno: Option<i32>, reason: impl FnOnce() -> String) -> Outcome {
    match errno {
        Some(libc::EEXIST) => Outcome::AlreadyPresent,
        Some(libc::ENOENT | libc::ESRCH | libc::EADDRNOTAVAIL | libc::ENODEV) => {
            Outcome::AlreadyGone
        }
        errno => Outcome::Refused {
            errno,
            reason: reason(),
        },
    }
}

/// A failure of one netlink request before it is attributed to an object or a request name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NlFailure {
    pub errno: Option<i32>,
    pub text: String,
}

impl NlFailure {
    /// The kernel refused with `errno` (positive); `ext` is its extended-ack message, if any.
    pub(crate) fn kernel(errno: i32, ext: Option<String>) -> NlFailure {
        let base = nix::errno::Errno::from_raw(errno).desc().to_owned();
        let text = match ext {
            Some(msg) if !msg.is_empty() => format!("{base} ({msg})"),
            _ => base,
        };
        NlFailure {
            errno: Some(errno),
            text,
        }
    }

    pub(crate) fn local(text: impl Into<String>) -> NlFailure {
        NlFailure {
            errno: None,
            text: text.into(),
        }
    }

    pub(crate) fn on(self, op: Op, object: KObject) -> RouteError {
        RouteError::Object {
            op,
            object,
            errno: self.errno,
            text: self.text,
        }
    }

    pub(crate) fn request(self, what: impl Into<String>) -> RouteError {
        RouteError::Request {
            what: what.into(),
            errno: self.errno,
            text: self.text,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(errno: i32) -> RouteError {
        NlFailure::kernel(errno, None).request("test")
    }

    #[test]
    fn one_errno_policy() {
        assert_eq!(failed(libc::EEXIST).outcome(), Outcome::AlreadyPresent);
        for errno in [libc::ENOENT, libc::ESRCH, libc::EADDRNOTAVAIL, libc::ENODEV] {
            assert_eq!(failed(errno).outcome(), Outcome::AlreadyGone);
        }
        assert!(matches!(
            failed(libc::EINVAL).outcome(),
            Outcome::Refused {
                errno: Some(libc::EINVAL),
                ..
            }
        ));
        // No kernel answer at all (a timeout): refused, no errno.
        assert!(matches!(
            NlFailure::local("timed out").request("x").outcome(),
            Outcome::Refused { errno: None, .. }
        ));
    }
}
