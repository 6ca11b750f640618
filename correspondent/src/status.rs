//! `correspondent status`: the running daemon's bindings, fetched from its metrics listener.
use std::net::SocketAddr;

use mipcast_daemon::metrics::{fetch, FetchError};

use crate::shell::StatusPage;

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("{0} (is the correspondent agent running?)")]
    Fetch(#[from] FetchError),
    #[error("unexpected /status answer: {0}")]
    Decode(#[from] serde_json::Error),
}

/// The `/status` page as JSON (pretty) or a table.
pub fn status(addr: SocketAddr, json: bool) -> Result<String, StatusError> {
    let body = fetch(addr, "/status")?;
    let page: StatusPage = serde_json::from_str(&body)?;
    if json {
        return Ok(serde_json::to_string_pretty(&page)? + "\n");
    }
    Ok(table(&page))
}

/// One line per binding (see [`home_agent::table::bindings_table`]): the care-of address is
/// the MMA's.
pub fn table(page: &StatusPage) -> String {
    home_agent::table::bindings_table(&page.bindings, "MMA (CARE-OF ADDRESS)")
}
