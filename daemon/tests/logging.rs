//! Its own test binary: the tracing subscriber is process-global.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking

use mipcast_daemon::logging::{init_tracing, LogError};

#[test]
fn bad_filter_is_refused_then_one_subscriber_installs() {
    // This binary runs a single test, so no other thread reads the environment meanwhile.
    std::env::remove_var("RUST_LOG");
    let err = init_tracing("info,[unclosed", false).expect_err("bad directive");
    assert!(matches!(err, LogError::Filter { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("invalid log filter `info,[unclosed`: "),
        "{err}"
    );

    // RUST_LOG overrides the level argument: the broken level is never parsed.
    std::env::set_var("RUST_LOG", "debug");
    init_tracing("info,[unclosed", true).expect("RUST_LOG used instead of the level");
    assert!(tracing::enabled!(tracing::Level::DEBUG));
    assert!(!tracing::enabled!(tracing::Level::TRACE));
    assert!(matches!(
        init_tracing("info", false),
        Err(LogError::AlreadyInstalled)
    ));
}
