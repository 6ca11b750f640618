//! Checks every daemon's configuration shares: the file itself (size, nesting), paths that
//! must be regular files, prefixes that would authorise everything, and windows that would
//! defeat replay protection.
use std::fmt;
use std::path::Path;
use std::time::Duration;

use super::{Ipv6Prefix, Validator};

/// Larger configuration files are refused before parsing: no real one comes near.
pub const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;
/// Deeper YAML is refused before parsing: the daemons' configs nest 5 levels at most, and
/// the parser's cost grows badly with depth (200,000 levels took it over 30 s).
pub const MAX_NESTING: usize = 64;
/// The RFC 4285 timestamp window either side of our clock may not exceed this: a wider one
/// lets a captured BU be replayed that much later.
pub const MAX_REPLAY_WINDOW: Duration = Duration::from_secs(300);

/// Why a path that must name a regular file does not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotRegular {
    pub kind: &'static str,
}

impl fmt::Display for NotRegular {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "is a {}, not a regular file (a daemon reading it would block or fail)",
            self.kind
        )
    }
}

/// Ok when `path` is absent or a regular file (symbolic links followed); anything else (a
/// FIFO, a directory, a device, a socket) is named in the error, without opening it: opening
/// a FIFO for reading blocks until someone writes.
pub fn regular_or_absent(path: &Path) -> Result<(), NotRegular> {
    use std::os::unix::fs::FileTypeExt;
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(());
    };
    let t = meta.file_type();
    let kind = if t.is_file() {
        return Ok(());
    } else if t.is_dir() {
        "directory"
    } else if t.is_fifo() {
        "FIFO (named pipe)"
    } else if t.is_socket() {
        "socket"
    } else if t.is_block_device() || t.is_char_device() {
        "device"
    } else {
        "special file"
    };
    Err(NotRegular { kind })
}

/// Reports `path` at `field` unless it is absent or a regular file (state files).
pub fn check_state_path(field: &str, path: &Path, v: &mut Validator) {
    if let Err(e) = regular_or_absent(path) {
        v.error(field, format!("{}: {e}", path.display()));
    }
}

/// A home or security-association prefix of length 0 would let any address register.
pub fn check_not_everything(field: &str, prefix: &Ipv6Prefix, v: &mut Validator) {
    if prefix.prefix_len() == 0 {
        v.error(
            field,
            format!("{prefix} covers every address; name the home prefix itself"),
        );
    }
}

/// The replay window must be positive and at most [`MAX_REPLAY_WINDOW`].
pub fn check_replay_window(field: &str, window: Duration, v: &mut Validator) {
    if window.is_zero() {
        v.error(field, "must be at least 1 second");
    } else if window > MAX_REPLAY_WINDOW {
        v.error(
            field,
            format!(
                "{} s is too wide: a captured binding update could be replayed that long \
                 (at most {} s; RFC 4285 suggests 7)",
                window.as_secs(),
                MAX_REPLAY_WINDOW.as_secs()
            ),
        );
    }
}

/// The deepest nesting of `text` as YAML, estimated without parsing: block indentation
/// levels, plus leading `- ` items on a line, plus open flow brackets. It never reports less
/// than the parser would build, give or take the levels of one line.
pub fn nesting_depth(text: &str) -> usize {
    let mut indents: Vec<usize> = Vec::new();
    let mut flow = 0usize;
    let mut deepest = 0usize;
    for line in text.lines() {
        let body = line.trim_start_matches(' ');
        let indent = line.len() - body.len();
        if flow == 0 && !body.is_empty() && !body.starts_with('#') {
            while indents.last().is_some_and(|&top| top > indent) {
                indents.pop();
            }
            if indents.last().is_none_or(|&top| top < indent) {
                indents.push(indent);
            }
        }
        let mut rest = body;
        let mut dashes = 0;
        while let Some(after) = rest.strip_prefix("- ").or_else(|| rest.strip_prefix("-\t")) {
            dashes += 1;
            rest = after.trim_start();
        }
        let mut quote: Option<char> = None;
        let mut line_flow_max = flow;
        for c in rest.chars() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '"' | '\'') => quote = Some(c),
                (None, '#') => break,
                (None, '[' | '{') => {
                    flow += 1;
                    line_flow_max = line_flow_max.max(flow);
                }
                (None, ']' | '}') => flow = flow.saturating_sub(1),
                _ => {}
            }
        }
        deepest = deepest.max(indents.len() + dashes + line_flow_max);
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_of_real_and_hostile_documents() {
        let real = "a:\n  b:\n    - c: 1\n      d: [1, 2]\n  e: {x: 1}\n";
        let d = nesting_depth(real);
        assert!((3..=6).contains(&d), "{d}");
        assert!(nesting_depth(&"[".repeat(100)) >= 100);
        assert!(nesting_depth(&"- ".repeat(100)) >= 100);
        let block: String = (0..100).map(|i| format!("{}k:\n", " ".repeat(i))).collect();
        assert!(nesting_depth(&block) >= 100);
        assert_eq!(
            nesting_depth("a: \"[[[[[[\"\n"),
            1,
            "quoted brackets are text"
        );
    }

    #[test]
    fn regular_files_only() {
        let dir = std::env::temp_dir().join(format!("mipcast-limits-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(regular_or_absent(&dir.join("absent")).is_ok());
        std::fs::write(dir.join("f"), "x").unwrap();
        assert!(regular_or_absent(&dir.join("f")).is_ok());
        assert_eq!(regular_or_absent(&dir).unwrap_err().kind, "directory");
        let fifo = dir.join("p");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert_eq!(
            regular_or_absent(&fifo).unwrap_err().kind,
            "FIFO (named pipe)"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
