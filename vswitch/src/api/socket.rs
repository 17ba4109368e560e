//! The API socket's owner and mode, as dockerd's `-G/--group`: root only ([`MODE_ROOT`]) by
//! default, or readable and writable by one group ([`MODE_GROUP`]). The socket is bound in a
//! private directory, given its mode and group there, then renamed into place, so nobody can
//! connect while it still has the umask's mode.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Mode of the API socket without `--group`: only root may connect.
pub const MODE_ROOT: u32 = 0o600;
/// Mode of the API socket with `--group`: root and the group's members may connect.
pub const MODE_GROUP: u32 = 0o660;
/// Longest group entry `getgrnam_r` may need (names and member lists).
const GROUP_BUF: usize = 64 * 1024;

/// Errors of setting up the API socket.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// No such group (by name or number).
    #[error("group {0:?} not found")]
    NoGroup(String),
    /// A system call on the socket path failed.
    #[error("API socket {path}: {op}: {source}")]
    Sys {
        path: PathBuf,
        op: &'static str,
        source: std::io::Error,
    },
}

/// The gid of `group`: a group name (as in /etc/group), or a number, as dockerd.
pub fn lookup_group(group: &str) -> Result<u32, SocketError> {
    let missing = || SocketError::NoGroup(group.to_string());
    let name = CString::new(group).map_err(|_| missing())?;
    let mut buf = vec![0u8; GROUP_BUF];
    // SAFETY: an all-zero `group` is a valid out-parameter; getgrnam_r writes into it and
    // `buf` (of the length given), and sets `found` to it or to null.
    let gid = unsafe {
        let mut grp: libc::group = std::mem::zeroed();
        let mut found: *mut libc::group = std::ptr::null_mut();
        let rc = libc::getgrnam_r(
            name.as_ptr(),
            &mut grp,
            buf.as_mut_ptr() as *mut libc::c_char,
            buf.len(),
            &mut found,
        );
        (rc == 0 && !found.is_null()).then_some(grp.gr_gid)
    };
    match gid {
        Some(g) => Ok(g),
        None => group.parse::<u32>().map_err(|_| missing()),
    }
}

/// Binds the API socket at `path`: mode [`MODE_GROUP`] owned by `gid` when given, else
/// [`MODE_ROOT`] (owned by the daemon's user). Call inside the tokio runtime.
pub fn bind(path: &Path, gid: Option<u32>) -> Result<tokio::net::UnixListener, SocketError> {
    let err = |op: &'static str| {
        let path = path.to_path_buf();
        move |source| SocketError::Sys { path, op, source }
    };
    let parent = path.parent().unwrap_or(Path::new("/"));
    let name = path.file_name().unwrap_or(path.as_os_str());
    let private = parent.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&private);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&private)
        .map_err(err("create private directory"))?;
    let staged = private.join("sock");
    let res = (|| {
        let l = std::os::unix::net::UnixListener::bind(&staged).map_err(err("bind"))?;
        let mode = if gid.is_some() { MODE_GROUP } else { MODE_ROOT };
        if let Some(gid) = gid {
            let c = CString::new(staged.as_os_str().as_bytes())
                .map_err(|_| err("path")(std::io::ErrorKind::InvalidInput.into()))?;
            // SAFETY: chown(2) on a valid C string; -1 keeps the owner.
            if unsafe { libc::chown(c.as_ptr(), u32::MAX, gid) } != 0 {
                return Err(err("chown")(std::io::Error::last_os_error()));
            }
        }
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(mode))
            .map_err(err("chmod"))?;
        std::fs::rename(&staged, path).map_err(err("move into place"))?;
        l.set_nonblocking(true).map_err(err("nonblocking"))?;
        tokio::net::UnixListener::from_std(l).map_err(err("register"))
    })();
    let _ = std::fs::remove_dir_all(&private);
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_by_name_or_number() {
        assert_eq!(lookup_group("root").ok(), Some(0));
        assert_eq!(lookup_group("4242").ok(), Some(4242));
        let e = lookup_group("no-such-group-vsw").unwrap_err();
        assert_eq!(e.to_string(), "group \"no-such-group-vsw\" not found");
        assert!(lookup_group("bad\0name").is_err());
    }
}
