//! `correspondent status`: the running daemon's bindings, fetched from its metrics listener.
use std::fmt::Write as _;
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

/// One line per binding: HoA, CoA, seconds of lifetime left (of granted), sequence, SPI.
pub fn table(page: &StatusPage) -> String {
    let mut out = format!("{} binding(s)\n", page.bindings.len());
    if page.bindings.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "{:<40} {:<40} {:>14} {:>8} {:>10}  KERNEL",
        "HOME ADDRESS", "MMA (CARE-OF ADDRESS)", "LIFETIME LEFT", "SEQ", "SPI"
    );
    for b in &page.bindings {
        let _ = writeln!(
            out,
            "{:<40} {:<40} {:>14} {:>8} {:>10}  {}",
            b.hoa,
            b.coa,
            format!("{}/{} s", b.lifetime_left_s, b.lifetime_s),
            b.sequence,
            b.spi,
            if b.programmed { "ok" } else { "FAILED" }
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::BindingStatus;

    #[test]
    fn table_lists_every_field() {
        let page = StatusPage {
            bindings: vec![BindingStatus {
                hoa: "2001:db8:1::100".parse().unwrap(),
                coa: "2001:db8:2::9".parse().unwrap(),
                sequence: 42,
                lifetime_s: 40,
                lifetime_left_s: 33,
                spi: 1000,
                programmed: false,
            }],
        };
        let t = table(&page);
        let line = t.lines().nth(2).unwrap();
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            words,
            [
                "2001:db8:1::100",
                "2001:db8:2::9",
                "33/40",
                "s",
                "42",
                "1000",
                "FAILED"
            ]
        );
        assert!(t.starts_with("1 binding(s)\n"));
        assert_eq!(table(&StatusPage { bindings: vec![] }), "0 binding(s)\n");
    }
}
