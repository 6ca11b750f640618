//! Empty: this package only carries the Debian package's metadata (see Cargo.toml).
