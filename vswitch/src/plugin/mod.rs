//! Front ends for container runtimes that drive vswitchd as their network plugin. Each one
//! translates its protocol to the daemon's attach path (`daemon/plugin.rs`).
//!
//! `docker`: the libnetwork remote network driver, served over HTTP/1.1 on a unix socket in
//! `/run/docker/plugins/` (dockerd finds it there by name: the socket's file stem).

pub mod docker;

use crate::daemon::Daemon;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use std::path::Path;
use std::sync::Arc;

/// Where dockerd looks for legacy plugins; the socket's stem is the driver name.
pub const DEFAULT_DOCKER_SOCKET: &str = "/run/docker/plugins/vswitch.sock";
/// Largest request body accepted (dockerd's requests are a few KiB).
pub const MAX_BODY: usize = 1 << 20;

type Resp = Response<Full<Bytes>>;

/// The driver name dockerd will know this socket by (`-d NAME`).
pub fn driver_name(socket: &Path) -> String {
    socket
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Serve the remote driver protocol on `listener` until the task is dropped.
pub async fn serve_docker(listener: tokio::net::UnixListener, daemon: Arc<Daemon>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("accept on docker plugin socket: {e}");
                continue;
            }
        };
        let d = daemon.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let d = d.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(d, req).await) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, svc)
                .await
            {
                tracing::debug!("docker plugin connection: {e}");
            }
        });
    }
}

async fn handle(d: Arc<Daemon>, req: Request<Incoming>) -> Resp {
    let path = req.uri().path().to_string();
    if req.method() != hyper::Method::POST {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            &docker::err_reply("only POST is served"),
        );
    }
    let body = match http_body_util::Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return reply(
                StatusCode::BAD_REQUEST,
                &docker::err_reply("request body too large or unreadable"),
            )
        }
    };
    let call = match docker::parse(&path, &body) {
        Ok(c) => c,
        Err(e @ docker::ProtoError::UnknownMethod(_)) => {
            tracing::debug!("docker plugin: {e}");
            return reply(StatusCode::NOT_FOUND, &docker::err_reply(&e.to_string()));
        }
        Err(e) => {
            tracing::warn!("docker plugin: {e}");
            return reply(StatusCode::BAD_REQUEST, &docker::err_reply(&e.to_string()));
        }
    };
    tracing::debug!("docker plugin: {path}");
    // The daemon blocks on namespaces and the datapath: keep that off the runtime.
    let res = tokio::task::spawn_blocking(move || d.docker_call(call)).await;
    let v = match res {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            tracing::warn!("docker plugin: {path}: {e}");
            docker::err_reply(&e.to_string())
        }
        Err(e) => docker::err_reply(&format!("operation failed: {e}")),
    };
    reply(StatusCode::OK, &v)
}

fn reply(status: StatusCode, v: &serde_json::Value) -> Resp {
    let bytes = serde_json::to_vec(v).unwrap_or_else(|_| b"{}".to_vec());
    let mut r = Response::new(Full::new(Bytes::from(bytes)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(docker::CONTENT_TYPE));
    r
}

/// Bind the plugin socket, replacing a stale one left by a killed daemon.
pub fn bind_docker_socket(path: &Path) -> Result<tokio::net::UnixListener, String> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    if driver_name(path).is_empty() {
        return Err(format!(
            "{}: the socket's file name is the driver name and must not be empty",
            path.display()
        ));
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(format!("another plugin is listening on {}", path.display()));
        }
        let _ = std::fs::remove_file(path);
    }
    tokio::net::UnixListener::bind(path)
        .map_err(|e| format!("cannot listen on {}: {e}", path.display()))
}
