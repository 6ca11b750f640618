use core::fmt;

/// Why a buffer could not be parsed or emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// The buffer ends before the structure it must hold.
    Truncated,
    /// A length field disagrees with the buffer or with the structure's rules.
    BadLength,
    /// The checksum does not verify.
    BadChecksum,
    /// A field holds a value the specification forbids; the string names the field.
    Malformed(&'static str),
    /// A type or version we do not implement; the string names what.
    Unsupported(&'static str),
    /// The output buffer is too small for `emit`.
    BufferTooSmall,
}

impl Error {
    /// A short stable label, used as a metrics label value for counted drops.
    pub fn label(&self) -> &'static str {
        match self {
            Error::Truncated => "truncated",
            Error::BadLength => "bad_length",
            Error::BadChecksum => "bad_checksum",
            Error::Malformed(_) => "malformed",
            Error::Unsupported(_) => "unsupported",
            Error::BufferTooSmall => "buffer_too_small",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated => f.write_str("truncated packet"),
            Error::BadLength => f.write_str("length field inconsistent with packet"),
            Error::BadChecksum => f.write_str("bad checksum"),
            Error::Malformed(what) => write!(f, "malformed {what}"),
            Error::Unsupported(what) => write!(f, "unsupported {what}"),
            Error::BufferTooSmall => f.write_str("output buffer too small"),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T> = core::result::Result<T, Error>;
