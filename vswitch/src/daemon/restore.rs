//! Restore after a restart or a crash: converge whatever the previous daemon left (records of
//! operations it did not finish, namespaces without records, devices and sockets that were
//! still going away) to a state where every record is backed by the datapath and nothing
//! exists that no record owns.
//!
//! - A sandbox record without a namespace (creation cut before the namespace was recorded, or
//!   removal cut after it was deleted) is removed, its addresses freed.
//! - A namespace under `<exec-root>/netns` that no record owns (creation cut before it was
//!   recorded) is deleted.
//! - Bridge networks and their endpoints are brought up with bounded retries; an endpoint that
//!   still cannot be attached is disconnected (address freed) rather than left listed without
//!   an interface. Overlays (cluster-held state) get one attempt and are never dropped here.
//! - Sandboxes are re-attached [`RESTORE_PARALLEL`] at a time, after their networks.
//! - A network that is not on the datapath is brought up by the next operation that needs it
//!   ([`Daemon::ensure_network_up`]), so one failed step never fails that network forever.

use super::{overlay, Daemon};
use crate::model::{Driver, Error, Network, Sandbox};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Attempts of a restore step that can fail transiently (a device, address or socket of a
/// predecessor still going away).
pub const RESTORE_ATTEMPTS: u32 = 5;
/// Sandboxes re-attached at once at start (a restart with hundreds of sandboxes is bound by
/// kernel round trips, not CPU).
pub const RESTORE_PARALLEL: usize = 4;
/// Delay before the first retry, doubled after each (at most 1.5 s per step in all).
pub const RESTORE_BACKOFF: Duration = Duration::from_millis(100);

/// Run `f` up to [`RESTORE_ATTEMPTS`] times with exponential backoff; the last error wins.
fn retry<T>(what: &str, f: impl FnMut() -> Result<T, Error>) -> Result<T, Error> {
    retry_n(RESTORE_ATTEMPTS, what, f)
}

fn retry_n<T>(
    attempts: u32,
    what: &str,
    mut f: impl FnMut() -> Result<T, Error>,
) -> Result<T, Error> {
    let mut delay = RESTORE_BACKOFF;
    let mut attempt = 1;
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(e) if attempt >= attempts => return Err(e),
            Err(e) => {
                tracing::warn!("restore: {what}: {e} (attempt {attempt}, retrying)");
                std::thread::sleep(delay);
                delay *= 2;
                attempt += 1;
            }
        }
    }
}

impl Daemon {
    pub(super) fn restore(&self) {
        self.refresh_isolation();
        self.remove_unfinished_sandboxes();
        self.remove_orphan_namespaces();
        let (nets, sbs): (Vec<Network>, Vec<Sandbox>) = {
            let st = self.state();
            (
                st.networks().cloned().collect(),
                st.sandboxes().cloned().collect(),
            )
        };
        for n in &nets {
            // Overlays depend on the cluster store, whose own reconnect logic brings them up:
            // one attempt here, as before.
            let attempts = if n.driver == Driver::Overlay {
                1
            } else {
                RESTORE_ATTEMPTS
            };
            let res = retry_n(attempts, &format!("network {}", n.name), || {
                self.network_up(n)
            });
            if let Err(e) = res {
                tracing::error!(
                    "restore: network {}: {e} (the next operation on it tries again)",
                    n.name
                );
            }
        }
        // Sandboxes are independent (each its own namespace and endpoints): re-attach them a
        // few at a time, as most of a re-attach is waiting on the kernel.
        let next = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..RESTORE_PARALLEL.min(sbs.len()) {
                s.spawn(|| {
                    while let Some(sb) =
                        sbs.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
                    {
                        self.restore_sandbox(sb);
                    }
                });
            }
        });
    }

    /// Records whose namespace was never made or is gone: nothing can run in them and their
    /// addresses are held for nothing.
    /// Docker endpoints' sandboxes have no namespace of their own (dockerd holds the
    /// container's): `docker_restore` converges them.
    fn remove_unfinished_sandboxes(&self) {
        let docker = self.docker_sandbox_ids();
        let gone: Vec<Sandbox> = self
            .state()
            .sandboxes()
            .filter(|sb| !docker.contains(&sb.id))
            .filter(|sb| {
                sb.netns
                    .as_deref()
                    .is_none_or(|p| !crate::netns::is_namespace(Path::new(p)))
            })
            .cloned()
            .collect();
        for sb in gone {
            let why = match &sb.netns {
                None => "its creation did not finish".to_string(),
                Some(p) => format!("its namespace {p} is gone"),
            };
            let problems = self.teardown(&sb.id, true);
            if problems.is_empty() {
                tracing::warn!("restore: sandbox {}: {why}; removed", sb.name);
            } else {
                tracing::error!(
                    "restore: sandbox {}: {why}; removing it: {}",
                    sb.name,
                    problems.join("; ")
                );
            }
        }
    }

    /// Namespaces under the exec root that no record owns (made by a creation that was cut
    /// before recording it). Nothing was started in them, so they are only unmounted.
    fn remove_orphan_namespaces(&self) {
        let dir = self.config.exec_root.join("netns");
        let owned: HashSet<PathBuf> = self
            .state()
            .sandboxes()
            .filter_map(|sb| sb.netns.as_deref().map(PathBuf::from))
            .collect();
        self.remove_orphan_files();
        let Ok(rd) = std::fs::read_dir(&dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            if owned.contains(&p) {
                continue;
            }
            match crate::netns::delete(&p) {
                Ok(()) => tracing::warn!(
                    "restore: namespace {} had no sandbox record; removed",
                    p.display()
                ),
                Err(e) => tracing::error!("restore: orphan namespace {}: {e}", p.display()),
            }
        }
    }

    /// resolv.conf and log files of sandboxes that have no record any more.
    fn remove_orphan_files(&self) {
        let owned: HashSet<String> = self
            .state()
            .sandboxes()
            .map(|sb| crate::util::short_id(&sb.id).to_string())
            .collect();
        for (dir, ext) in [("resolv", "conf"), ("logs", "log")] {
            let Ok(rd) = std::fs::read_dir(self.config.exec_root.join(dir)) else {
                continue;
            };
            for e in rd.flatten() {
                let p = e.path();
                let id = p.file_stem().and_then(|s| s.to_str()).unwrap_or("");
                if p.extension().is_some_and(|x| x == ext) && !owned.contains(id) {
                    let _ = std::fs::remove_file(&p);
                }
            }
        }
    }

    fn restore_sandbox(&self, sb: &Sandbox) {
        let Some(ns) = sb.netns.as_deref().map(PathBuf::from) else {
            return;
        };
        let mut ok = true;
        for ep in &sb.endpoints {
            if overlay::is_overlay(self, ep) {
                // Cluster-held addresses: left to the cluster logic, never dropped here.
                let res = self
                    .reclaim_addresses(sb, ep)
                    .and_then(|_| self.attach(sb, ep, &ns));
                if let Err(e) = res {
                    ok = false;
                    tracing::error!("restore: sandbox {}: {}: {e}", sb.name, ep.ifname);
                }
                continue;
            }
            if let Err(e) = retry(&format!("sandbox {}: {}", sb.name, ep.ifname), || {
                self.attach(sb, ep, &ns)
            }) {
                ok = false;
                tracing::error!(
                    "restore: sandbox {}: {} could not be re-attached ({e}); disconnected, address freed",
                    sb.name,
                    ep.ifname
                );
                if let Err(e) = self.disconnect(&ep.network_id, &sb.id, true) {
                    tracing::error!(
                        "restore: sandbox {}: disconnect {}: {e}",
                        sb.name,
                        ep.ifname
                    );
                }
            }
        }
        let what = |step: &str| format!("sandbox {}: {step}", sb.name);
        if let Err(e) = retry(&what("default route"), || self.apply_default_route(&sb.id)) {
            tracing::error!("restore: sandbox {}: default route: {e}", sb.name);
            ok = false;
        }
        if let Err(e) = retry(&what("dns"), || self.sync_dns(&sb.id)) {
            tracing::error!("restore: sandbox {}: dns: {e}", sb.name);
            ok = false;
        }
        if let Err(e) = retry(&what("published ports"), || self.publish(&sb.id, true)) {
            tracing::error!("restore: sandbox {}: published ports: {e}", sb.name);
            ok = false;
        }
        if ok {
            tracing::info!("restore: sandbox {} re-attached", sb.name);
        }
    }

    /// Bring `n` onto the datapath when it is not (its restore step failed, or it was taken
    /// down by a failed operation): operations on a network converge instead of failing with
    /// "not on the datapath" forever.
    pub(super) fn ensure_network_up(&self, n: &Network) -> Result<(), Error> {
        let wanted = matches!(n.driver, Driver::Bridge | Driver::Overlay) && !n.config_only;
        if !wanted || super::lock(&self.dp).has_network(&n.id) {
            return Ok(());
        }
        tracing::warn!("network {} is not on the datapath: bringing it up", n.name);
        self.network_up(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn retry_stops_at_first_success_and_is_bounded() {
        let n = Cell::new(0);
        let r: Result<u32, Error> = retry("t", || {
            n.set(n.get() + 1);
            if n.get() < 2 {
                Err(Error::Internal("transient".into()))
            } else {
                Ok(7)
            }
        });
        assert_eq!(r.unwrap(), 7);
        assert_eq!(n.get(), 2);
        n.set(0);
        let r: Result<(), Error> = retry("t", || {
            n.set(n.get() + 1);
            Err(Error::Internal("permanent".into()))
        });
        assert!(r.is_err());
        assert_eq!(n.get(), RESTORE_ATTEMPTS);
    }
}
