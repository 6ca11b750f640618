//! YAML configuration files with errors an operator can act on.
//!
//! Every error names the file, the line and column, and the field path, e.g.
//! `configs/home-agent.yaml:12:5: security_associations[1].spi: invalid type: ...`.
//!
//! Conventions for the daemons' config structs:
//! - put `#[serde(deny_unknown_fields)]` on every struct, so a misspelt key is an error instead
//!   of a silently ignored setting (this module cannot enforce it for them);
//! - do not use `#[serde(flatten)]` or untagged enums: both hide the field path;
//! - implement [`Validate`] for the semantic checks serde cannot express and report them with
//!   the field path (`"home_prefixes[0]"`); [`load`] finds the line of that path.

pub mod background;
pub mod keygen;
pub mod limits;
mod locate;
mod prefix;
pub mod ratelimit;
pub mod sa;
mod secret;
pub mod secs;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

pub use keygen::{keygen, KeygenError};
use locate::FieldPath;
pub use prefix::{Ipv6Prefix, PrefixError};
pub use secret::{set_keygen_program, KeyError, SecretKey};

/// Why a configuration file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read: {source}", file.display())]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    /// Syntax, type or semantic errors; never empty. Displayed one per line.
    #[error("{}", DisplayProblems(problems))]
    Invalid { problems: Vec<Problem> },
}

/// One located error in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    /// 1-based line and column of the offending value, when it could be found in the text.
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Field path such as `security_associations[1].spi`; empty for the document itself.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let (Some(line), Some(column)) = (self.line, self.column) {
            write!(f, ":{line}:{column}")?;
        }
        if self.path.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": {}: {}", self.path, self.message)
        }
    }
}

struct DisplayProblems<'a>(&'a [Problem]);

impl fmt::Display for DisplayProblems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

/// Semantic checks a daemon adds on top of deserialization.
pub trait Validate {
    /// Report every problem through `v` (do not stop at the first one).
    fn validate(&self, v: &mut Validator);
}

/// Collects semantic errors by field path; [`load`] turns them into located [`Problem`]s.
#[derive(Debug, Default)]
pub struct Validator {
    problems: Vec<(String, String)>,
}

impl Validator {
    /// Records an error at `path`, written like serde paths: `mmas[2].address`, `home_prefixes[0]`.
    pub fn error(&mut self, path: impl Into<String>, message: impl fmt::Display) {
        self.problems.push((path.into(), message.to_string()));
    }

    /// Records `result`'s error at `path`, or hands back its value.
    pub fn check<T, E: fmt::Display>(
        &mut self,
        path: impl Into<String>,
        result: Result<T, E>,
    ) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(err) => {
                self.error(path, err);
                None
            }
        }
    }
}

/// Reads, parses and validates a YAML configuration file. Refused before parsing: anything
/// but a regular file (a FIFO would block), files over [`limits::MAX_CONFIG_BYTES`].
pub fn load<T: DeserializeOwned + Validate>(path: &Path) -> Result<T, ConfigError> {
    use std::io::Read;
    let read_error = |source| ConfigError::Read {
        file: path.to_owned(),
        source,
    };
    limits::regular_or_absent(path)
        .map_err(|e| read_error(std::io::Error::other(e.to_string())))?;
    let file = std::fs::File::open(path).map_err(read_error)?;
    let mut bytes = Vec::new();
    file.take(limits::MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    let text = String::from_utf8(bytes).map_err(|e| read_error(std::io::Error::other(e)))?;
    load_str(path, &text)
}

/// Like [`load`] for text already in memory; `file` is only used to name it in errors.
pub fn load_str<T: DeserializeOwned + Validate>(file: &Path, text: &str) -> Result<T, ConfigError> {
    let refuse = |message: String| ConfigError::Invalid {
        problems: vec![Problem {
            file: file.to_owned(),
            line: None,
            column: None,
            path: String::new(),
            message,
        }],
    };
    if text.len() as u64 > limits::MAX_CONFIG_BYTES {
        return Err(refuse(format!(
            "larger than {} MiB; is it the right file?",
            limits::MAX_CONFIG_BYTES >> 20
        )));
    }
    let depth = limits::nesting_depth(text);
    if depth > limits::MAX_NESTING {
        return Err(refuse(format!(
            "nested {depth} levels deep, more than the {} allowed",
            limits::MAX_NESTING
        )));
    }
    let config: T = parse(file, text).map_err(|problem| ConfigError::Invalid {
        problems: vec![problem],
    })?;
    let mut validator = Validator::default();
    config.validate(&mut validator);
    if validator.problems.is_empty() {
        return Ok(config);
    }
    let problems = validator
        .problems
        .into_iter()
        .map(|(path, message)| {
            let location = FieldPath::parse(&path).and_then(|p| locate::locate(text, &p));
            Problem {
                file: file.to_owned(),
                line: location.map(|(line, _)| line),
                column: location.map(|(_, column)| column),
                path,
                message,
            }
        })
        .collect();
    Err(ConfigError::Invalid { problems })
}

fn parse<T: DeserializeOwned>(file: &Path, text: &str) -> Result<T, Problem> {
    let _dir = secret::ConfigDirGuard::set(file.parent().filter(|d| !d.as_os_str().is_empty()));
    let deserializer = serde_norway::Deserializer::from_str(text);
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let path = FieldPath::from_serde(err.path());
        let inner = err.inner();
        let message = bare_message(inner, &path);
        // serde_norway stamps an error with the node being deserialized when it was raised;
        // a value's own check (e.g. a prefix parsed from a string) fails after its node is
        // done and gets the enclosing list's or map's position instead. So locate the value
        // by its full path; an unknown key is the exception: its position is the key's.
        // At the root (syntax errors, a document of the wrong type) serde_norway's own
        // position is the precise one.
        let location = if path.is_root() || message.starts_with("unknown field `") {
            None
        } else {
            locate::locate(text, &path)
        }
        .or_else(|| inner.location().map(|l| (l.line(), l.column())));
        Problem {
            file: file.to_owned(),
            line: location.map(|(line, _)| line),
            column: location.map(|(_, column)| column),
            path: path.to_string(),
            message,
        }
    })
}

/// serde_norway's message repeats its own path (the value's, or an ancestor's) and position,
/// which [`Problem`] prints in front already; strip them.
fn bare_message(err: &serde_norway::Error, path: &FieldPath) -> String {
    let mut message = err.to_string();
    if let Some(location) = err.location() {
        let suffix = format!(" at line {} column {}", location.line(), location.column());
        if let Some(stripped) = message.strip_suffix(&suffix) {
            message.truncate(stripped.len());
        }
    }
    for ancestor in path.ancestors() {
        if let Some(stripped) = message.strip_prefix(&format!("{ancestor}: ")) {
            return stripped.to_owned();
        }
    }
    message
}
