use std::io;

/// Everything the raw-socket and MRT6 layer can fail with. Each variant names the operation,
/// and OS failures carry the errno text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SocketError {
    /// A system call failed; `op` names it and what it was doing.
    #[error("{op}: {source}")]
    Os {
        op: String,
        #[source]
        source: io::Error,
    },
    /// A datagram did not fit the caller's buffer (it has been consumed).
    #[error("{op}: datagram longer than the {capacity}-byte buffer, dropped")]
    Truncated { op: &'static str, capacity: usize },
    /// The kernel did not deliver an ancillary item we asked for.
    #[error("recvmsg: the kernel supplied no {what} ancillary data")]
    MissingControl { what: &'static str },
    /// MRT6 allows 32 MIFs per table.
    #[error(
        "add MIF for ifindex {ifindex}: all {max} MIFs of this multicast routing table are in use"
    )]
    MifTableFull { ifindex: u32, max: usize },
    /// A MIF index this socket did not create.
    #[error("{op}: MIF {mifi} was not added through this socket")]
    UnknownMif { op: &'static str, mifi: u16 },
    /// `struct mif6ctl` carries the interface index in 16 bits.
    #[error("add MIF: interface index {0} does not fit the 16-bit mif6c_pifi field")]
    IfindexTooLarge(u32),
    /// Only one multicast routing socket may own a table.
    #[error(
        "MRT6_INIT on multicast routing table {table}: another socket (daemon) already owns it; \
         give each daemon its own table"
    )]
    TableInUse { table: u32 },
}

pub type Result<T> = std::result::Result<T, SocketError>;

impl SocketError {
    /// The error with its operation named `op()`: for calls made once per (S,G), whose
    /// description (two formatted addresses) is then only built when they fail.
    pub(crate) fn described(self, op: impl FnOnce() -> String) -> SocketError {
        match self {
            SocketError::Os { source, .. } => SocketError::Os { op: op(), source },
            other => other,
        }
    }

    /// The kernel's errno, when a system call failed (for `route::outcome_of`).
    pub fn errno(&self) -> Option<i32> {
        match self {
            SocketError::Os { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    pub(crate) fn os(op: impl Into<String>, source: io::Error) -> SocketError {
        SocketError::Os {
            op: op.into(),
            source,
        }
    }

    /// The errno of an OS failure, for callers that react to a specific one.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            SocketError::Os { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}
