//! Tracing setup shared by the daemons.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("invalid log filter `{filter}`: {source}")]
    Filter {
        filter: String,
        source: tracing_subscriber::filter::ParseError,
    },
    #[error("a tracing subscriber is already installed")]
    AlreadyInstalled,
}

/// Logs to stderr at `level` (`info`, `debug`, or any `EnvFilter` directive such as
/// `info,mipcast_kernel=debug`); a non-empty `RUST_LOG` replaces it. `json` writes one JSON
/// object per line for log collectors. Colours only when stderr is a terminal, so journald
/// and files get no escape codes.
pub fn init_tracing(level: &str, json: bool) -> Result<(), LogError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => directives,
        _ => level.to_owned(),
    };
    let env_filter = EnvFilter::try_new(&filter).map_err(|source| LogError::Filter {
        filter: filter.clone(),
        source,
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(env_filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let installed = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    installed.map_err(|_| LogError::AlreadyInstalled)
}
