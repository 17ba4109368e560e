//! Routes the Docker SDKs rely on beyond the network calls: exec and swarm. Tried before the
//! main router; `None` means "not one of these".

use super::json::{ExecCreateJson, ExecStartJson};
use super::{decode_body, exec, percent_decode, strip_version, swarm, Resp};
use crate::daemon::Daemon;
use crate::model::Error;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request};
use std::sync::Arc;

/// The connection to hijack for an attached exec start, when the client asked for it.
pub struct Upgrade(Option<hyper::upgrade::OnUpgrade>);

impl Upgrade {
    /// Take the upgrade handle before the body is read (`Connection: Upgrade` requests only).
    pub fn take(req: &mut Request<Incoming>) -> Upgrade {
        let asked = req.headers().contains_key(hyper::header::UPGRADE);
        Upgrade(asked.then(|| hyper::upgrade::on(req)))
    }
}

pub async fn route(
    d: &Arc<Daemon>,
    method: &Method,
    path: &str,
    content_type: Option<&str>,
    body: &Bytes,
    upgrade: Upgrade,
) -> Option<Result<Resp, Error>> {
    let path = strip_version(path).ok()?;
    let segs: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    if let Some((status, msg)) = swarm::answer(method, &segs) {
        return Some(Ok(swarm::respond(status, msg)));
    }
    let r = match (method.clone(), segs.as_slice()) {
        (Method::POST, ["containers", id, "exec"]) => {
            decode_body::<ExecCreateJson>(content_type, body)
                .and_then(|req| exec::create(d, id, req))
        }
        (Method::POST, ["exec", id, "start"]) => {
            match decode_body::<ExecStartJson>(content_type, body) {
                Ok(req) => exec::start(d, id, req, upgrade.0).await,
                Err(e) => Err(e),
            }
        }
        (Method::GET, ["exec", id, "json"]) => exec::inspect(d, id),
        _ => return None,
    };
    Some(r)
}

/// moby's `httputils.BoolValue` for query flags: anything but empty, `0`, `no`, `false` or
/// `none` (any case) is true — docker-py sends `force=True`.
pub fn form_bool(v: &str) -> bool {
    let v = v.trim().to_ascii_lowercase();
    !matches!(v.as_str(), "" | "0" | "no" | "false" | "none")
}

#[cfg(test)]
mod tests {
    #[test]
    fn form_bools_as_moby() {
        for t in ["1", "true", "True", "yes"] {
            assert!(super::form_bool(t), "{t}");
        }
        for f in ["", "0", "False", "no", "none"] {
            assert!(!super::form_bool(f), "{f}");
        }
    }
}
