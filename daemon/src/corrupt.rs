//! A state file the daemon cannot read is kept aside, never overwritten: an operator (or a
//! bug report) needs the bytes, and the daemon starts afresh beside them.
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Renames `path` to `<path>.corrupt-<unix seconds>` (a `-N` suffix if that exists) and
/// returns the new name. Called after `StateFile::load` reported the file corrupt and before
/// anything writes a fresh one.
pub fn keep_aside(path: &Path) -> std::io::Result<PathBuf> {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".corrupt-{secs}"));
    let mut aside = PathBuf::from(&name);
    let mut n = 1;
    while aside.exists() {
        let mut numbered = name.clone();
        numbered.push(format!("-{n}"));
        aside = PathBuf::from(numbered);
        n += 1;
    }
    std::fs::rename(path, &aside)?;
    Ok(aside)
}

/// [`keep_aside`], logged: WARN with both names, or ERROR if the rename failed (the daemon
/// goes on; the next state write replaces the file).
pub fn keep_aside_logged(path: &Path, why: &dyn std::fmt::Display) {
    match keep_aside(path) {
        Ok(aside) => tracing::warn!(
            file = %path.display(),
            kept_as = %aside.display(),
            error = %why,
            "state file unreadable; kept aside, starting without its bindings"
        ),
        Err(e) => tracing::error!(
            file = %path.display(),
            error = %why,
            rename_error = %e,
            "state file unreadable and could not be kept aside; starting without its bindings"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_aside_under_a_new_name_each_time() {
        let dir = std::env::temp_dir().join(format!("mipcast-corrupt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        std::fs::write(&path, "{not json").unwrap();
        let first = keep_aside(&path).unwrap();
        assert!(!path.exists());
        assert_eq!(std::fs::read_to_string(&first).unwrap(), "{not json");
        assert!(first.to_string_lossy().contains("state.json.corrupt-"));
        std::fs::write(&path, "again").unwrap();
        let second = keep_aside(&path).unwrap();
        assert_ne!(first, second);
        assert_eq!(std::fs::read_to_string(&second).unwrap(), "again");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
