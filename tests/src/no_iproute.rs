//! The daemon runs with no iproute2: its PATH is a per-daemon directory of symlinks to every
//! program of the usual system directories except the hidden ones, so programs users start in
//! sandboxes (`sleep`, `python3`, …) are still found while `ip` is not. Tests themselves keep
//! the full PATH and may still use `ip` to look.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Where the symlinked programs come from, in PATH order.
pub const SYSTEM_DIRS: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// Programs the daemon must do without.
pub const HIDDEN: &[&str] = &["ip"];

/// Make (once) `dir` holding a symlink to each executable of [`SYSTEM_DIRS`] except
/// [`HIDDEN`]; returns `dir`, which is the daemon's whole PATH.
pub fn path_without_iproute(dir: &Path) -> PathBuf {
    if dir.is_dir() {
        return dir.to_path_buf();
    }
    std::fs::create_dir_all(dir).expect("create PATH dir");
    for src in SYSTEM_DIRS {
        let Ok(rd) = std::fs::read_dir(src) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name();
            if HIDDEN.iter().any(|h| name == *h) {
                continue;
            }
            let target = e.path();
            let exec = std::fs::metadata(&target)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false);
            let link = dir.join(&name);
            // First directory wins, as PATH lookup would.
            if exec && std::fs::symlink_metadata(&link).is_err() {
                let _ = std::os::unix::fs::symlink(&target, &link);
            }
        }
    }
    dir.to_path_buf()
}
