//! systemd's readiness protocol (`sd_notify`): `READY=1` once the API listens, `STOPPING=1`
//! on shutdown, as datagrams to `$NOTIFY_SOCKET` (a path, or `@name` in the abstract
//! namespace). A few lines over a unix datagram socket; no crate needed.

use std::io;
use std::os::unix::net::UnixDatagram;

/// Where to send notifications; taken from the environment once at start.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    socket: Option<String>,
}

impl Notifier {
    /// Read `$NOTIFY_SOCKET` and remove it from the environment, so processes the daemon
    /// starts (sandbox commands, exec) do not inherit it. Call before any thread starts.
    pub fn from_env() -> Notifier {
        let socket = std::env::var("NOTIFY_SOCKET")
            .ok()
            .filter(|s| !s.is_empty());
        if socket.is_some() {
            // Single-threaded here (see above), so changing the environment is sound.
            std::env::remove_var("NOTIFY_SOCKET");
        }
        Notifier { socket }
    }

    pub fn enabled(&self) -> bool {
        self.socket.is_some()
    }

    /// Send one state message (`KEY=VALUE` lines). `Ok(false)` when not run under systemd.
    pub fn notify(&self, state: &str) -> io::Result<bool> {
        let Some(path) = &self.socket else {
            return Ok(false);
        };
        let sock = UnixDatagram::unbound()?;
        match path.strip_prefix('@') {
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
                sock.send_to_addr(state.as_bytes(), &addr)?;
            }
            None => {
                sock.send_to(state.as_bytes(), path)?;
            }
        }
        Ok(true)
    }

    /// `READY=1` with the main pid and a status line.
    pub fn ready(&self, status: &str) -> io::Result<bool> {
        self.notify(&format!(
            "READY=1\nMAINPID={}\nSTATUS={status}\n",
            std::process::id()
        ))
    }

    pub fn stopping(&self) -> io::Result<bool> {
        self.notify("STOPPING=1\nSTATUS=shutting down\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_to_a_path_and_an_abstract_socket() {
        let dir = std::env::temp_dir().join(format!("vsw-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let rx = UnixDatagram::bind(&path).unwrap();
        let n = Notifier {
            socket: Some(path.to_string_lossy().into_owned()),
        };
        assert!(n.ready("API listening").unwrap());
        let mut buf = [0u8; 256];
        let len = rx.recv(&mut buf).unwrap();
        let msg = std::str::from_utf8(&buf[..len]).unwrap();
        assert!(msg.starts_with("READY=1\nMAINPID="), "{msg}");
        std::fs::remove_dir_all(&dir).unwrap();

        use std::os::linux::net::SocketAddrExt;
        let name = format!("vsw-notify-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let rx = UnixDatagram::bind_addr(&addr).unwrap();
        let n = Notifier {
            socket: Some(format!("@{name}")),
        };
        assert!(n.stopping().unwrap());
        let len = rx.recv(&mut buf).unwrap();
        assert!(buf[..len].starts_with(b"STOPPING=1\n"));
        assert!(!Notifier::default().ready("x").unwrap());
    }
}
