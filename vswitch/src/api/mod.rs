//! Docker Engine API (network endpoints and the container calls tools need) over a unix
//! socket, served with hyper directly so the details the docker CLI depends on — `HEAD /_ping`
//! without a body, the `/vX.Y` prefix, `Content-Type: application/json` exactly on errors —
//! are explicit here.

mod attachments;
pub mod exec;
pub mod filters;
pub mod json;
pub mod observe;
pub mod sdk;
pub mod socket;
pub mod swarm;

use crate::daemon::Daemon;
use crate::model::Error;
use filters::Filters;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use std::collections::HashMap;
use std::sync::Arc;

pub const API_VERSION: &str = "1.50";
pub const MIN_API_VERSION: &str = "1.24";
pub const SERVER_HEADER: &str = concat!("vswitch/", env!("CARGO_PKG_VERSION"), " (linux)");
/// Largest request body accepted; network requests are a few hundred bytes.
pub const MAX_BODY: usize = 1 << 20;

type Resp = Response<Full<Bytes>>;

/// Serve the API on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::UnixListener, daemon: Arc<Daemon>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("accept on API socket: {e}");
                continue;
            }
        };
        let d = daemon.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let d = d.clone();
                async move { Ok::<_, std::convert::Infallible>(observe::dispatch(d, req).await) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, svc)
                .with_upgrades()
                .await
            {
                tracing::debug!("API connection: {e}");
            }
        });
    }
}

async fn handle(d: Arc<Daemon>, mut req: Request<Incoming>) -> Resp {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = parse_query(req.uri().query().unwrap_or(""));
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let upgrade = sdk::Upgrade::take(&mut req);
    let body = match http_body_util::Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return error(&Error::InvalidParameter(
                "request body too large or unreadable".into(),
            ))
        }
    };
    let routed = match sdk::route(&d, &method, &path, content_type.as_deref(), &body, upgrade).await
    {
        Some(r) => r,
        None => route(&d, &method, &path, &query, content_type.as_deref(), &body).await,
    };
    let mut resp = match routed {
        Ok(r) => r,
        Err(e) => {
            if e.status() >= 500 {
                tracing::warn!("{method} {path}: {e}");
            }
            error(&e)
        }
    };
    let h = resp.headers_mut();
    h.insert("Api-Version", HeaderValue::from_static(API_VERSION));
    h.insert("Ostype", HeaderValue::from_static("linux"));
    h.insert("Server", HeaderValue::from_static(SERVER_HEADER));
    if method == Method::HEAD {
        *resp.body_mut() = Full::new(Bytes::new());
        resp.headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
    }
    resp
}

/// Strip and check the `/v1.NN` prefix; returns the path without it.
fn strip_version(path: &str) -> Result<&str, Error> {
    let Some(rest) = path.strip_prefix("/v") else {
        return Ok(path);
    };
    let (ver, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let parse = |v: &str| -> Option<(u32, u32)> {
        let (a, b) = v.split_once('.')?;
        Some((a.parse().ok()?, b.parse().ok()?))
    };
    let Some(v) = parse(ver) else {
        return Ok(path);
    };
    let max = parse(API_VERSION).expect("constant");
    let min = parse(MIN_API_VERSION).expect("constant");
    if v > max {
        return Err(Error::InvalidParameter(format!(
            "client version {ver} is too new. Maximum supported API version is {API_VERSION}"
        )));
    }
    if v < min {
        return Err(Error::InvalidParameter(format!(
            "client version {ver} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
        )));
    }
    Ok(tail)
}

async fn route(
    d: &Arc<Daemon>,
    method: &Method,
    path: &str,
    q: &HashMap<String, String>,
    content_type: Option<&str>,
    body: &Bytes,
) -> Result<Resp, Error> {
    if path == "/_ping" {
        return Ok(ping(method));
    }
    let path = strip_version(path)?;
    let segs: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let m = method.clone();
    match (m, segs.as_slice()) {
        (Method::GET | Method::HEAD, ["_ping"]) => Ok(ping(method)),
        (Method::GET, ["version"]) => Ok(ok_json(200, &d.version())),
        (Method::GET, ["info"]) => Ok(ok_json(200, &d.info_with_facts().await)),
        (Method::GET, ["metrics"]) => observe::metrics(d).await,
        (Method::GET, ["networks"]) => {
            let f = Filters::parse(q.get("filters").map(String::as_str))?;
            Ok(ok_raw(200, d.list_networks(&f)?))
        }
        (Method::POST, ["networks", "create"]) => {
            let req: json::CreateNetworkJson = decode_body(content_type, body)?;
            let (id, warning) = blocking(d, move |d| d.create_network(req.into_model())).await?;
            Ok(ok_json(
                201,
                &serde_json::json!({ "Id": id, "Warning": warning }),
            ))
        }
        (Method::POST, ["networks", "prune"]) => {
            let f = Filters::parse(q.get("filters").map(String::as_str))?;
            let deleted = blocking(d, move |d| d.prune_networks(&f)).await?;
            let v = if deleted.is_empty() {
                serde_json::Value::Null
            } else {
                serde_json::json!(deleted)
            };
            Ok(ok_json(200, &serde_json::json!({ "NetworksDeleted": v })))
        }
        (Method::GET, ["networks", id]) => {
            if let Some(v) = q.get("verbose") {
                if crate::model::options::parse_bool(v).is_none() {
                    return Err(Error::InvalidParameter(format!(
                        "invalid value for verbose: {v}"
                    )));
                }
            }
            Ok(ok_raw(200, d.inspect_network(id)?))
        }
        (Method::DELETE, ["networks", id]) => {
            let id = id.to_string();
            blocking(d, move |d| d.remove_network(&id)).await?;
            Ok(empty(204))
        }
        (Method::POST, ["networks", id, "connect"]) => {
            let req: json::ConnectJson = decode_body(content_type, body)?;
            let settings = req.endpoint_config.unwrap_or_default().into_model();
            let id = id.to_string();
            blocking(d, move |d| d.connect(&id, &req.container, settings)).await?;
            Ok(empty(200))
        }
        (Method::POST, ["networks", id, "disconnect"]) => {
            let req: json::DisconnectJson = decode_body(content_type, body)?;
            let id = id.to_string();
            blocking(d, move |d| d.disconnect(&id, &req.container, req.force)).await?;
            Ok(empty(200))
        }
        (Method::POST, ["containers", "create"]) => {
            let mut req: json::ContainerCreateJson = decode_body(content_type, body)?;
            let warnings: Vec<&str> = req.migrate_mac()?.into_iter().collect();
            let name = q.get("name").cloned();
            let id = blocking(d, move |d| d.create_container(name, req)).await?;
            Ok(ok_json(
                201,
                &serde_json::json!({ "Id": id, "Warnings": warnings }),
            ))
        }
        (Method::POST, ["containers", id, "start"]) => {
            let id = id.to_string();
            blocking(d, move |d| d.start_container(&id)).await?;
            Ok(empty(204))
        }
        (Method::GET, ["vswitch", "graph"]) => Ok(ok_json(200, &d.graph())),
        (_, ["vswitch", "attachments", rest @ ..]) => {
            attachments::route(d, method, rest, q, content_type, body).await
        }
        (Method::GET, ["vswitch", "networks", id, "stats"]) => {
            let v = d.network_stats(id)?;
            Ok(ok_json(200, &v))
        }
        (Method::GET, ["containers", "json"]) => Ok(ok_raw(200, d.list_containers())),
        (Method::GET, ["containers", id, "json"]) => Ok(ok_raw(200, d.inspect_container(id)?)),
        (Method::DELETE, ["containers", id]) => {
            let id = id.to_string();
            let force = q.get("force").is_some_and(|v| sdk::form_bool(v));
            blocking(d, move |d| d.remove_container(&id, force)).await?;
            Ok(empty(204))
        }
        _ => Err(Error::NotFound("page not found".into())),
    }
}

/// Run a daemon operation (it may block on namespaces and the datapath) off the runtime.
async fn blocking<T: Send + 'static>(
    d: &Arc<Daemon>,
    f: impl FnOnce(&Daemon) -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    let d = d.clone();
    tokio::task::spawn_blocking(move || f(&d))
        .await
        .map_err(|e| Error::Internal(format!("operation failed: {e}")))?
}

fn ping(method: &Method) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from_static(b"OK")));
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(
        "Cache-Control",
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    h.insert("Pragma", HeaderValue::from_static("no-cache"));
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    h.insert("Builder-Version", HeaderValue::from_static("1"));
    h.insert("Swarm", HeaderValue::from_static("inactive"));
    if method == Method::HEAD {
        *r.body_mut() = Full::new(Bytes::new());
    }
    r
}

fn decode_body<T: serde::de::DeserializeOwned + Default>(
    content_type: Option<&str>,
    body: &Bytes,
) -> Result<T, Error> {
    if let Some(ct) = content_type {
        let base = ct.split(';').next().unwrap_or("").trim();
        if base != "application/json" {
            return Err(Error::InvalidParameter(format!(
                "unsupported Content-Type header ({ct}): must be 'application/json'"
            )));
        }
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::InvalidParameter(
            "invalid JSON: got EOF while reading request body".into(),
        ));
    }
    // A `null` body decodes to the zero request, as with Go's decoder.
    serde_json::from_slice::<Option<T>>(body)
        .map(Option::unwrap_or_default)
        .map_err(|e| Error::InvalidParameter(format!("invalid JSON: {e}")))
}

/// Go's encoder output: compact JSON and a trailing newline.
fn ok_json<T: serde::Serialize>(status: u16, v: &T) -> Resp {
    let mut bytes = serde_json::to_vec(v).unwrap_or_else(|_| b"{}".to_vec());
    bytes.push(b'\n');
    ok_raw(status, bytes)
}

fn ok_raw(status: u16, bytes: Vec<u8>) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(bytes)));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn empty(status: u16) -> Resp {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    r
}

fn error(e: &Error) -> Resp {
    ok_json(e.status(), &serde_json::json!({ "message": e.to_string() }))
}

fn parse_query(q: &str) -> HashMap<String, String> {
    q.split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// Decode %XX escapes and `+` (form encoding, as Go's url.Values sends).
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_prefix() {
        assert_eq!(strip_version("/v1.50/networks").unwrap(), "/networks");
        assert_eq!(strip_version("/v1.24/networks").unwrap(), "/networks");
        assert_eq!(strip_version("/networks").unwrap(), "/networks");
        let e = strip_version("/v1.51/networks").unwrap_err();
        assert_eq!(
            e.to_string(),
            "client version 1.51 is too new. Maximum supported API version is 1.50"
        );
        assert!(strip_version("/v1.23/networks").is_err());
    }

    #[test]
    fn decoding() {
        assert_eq!(percent_decode("%7B%22a%22%7D"), "{\"a\"}");
        assert_eq!(percent_decode("a+b%"), "a b%");
        assert_eq!(percent_decode("%zz"), "%zz");
        let q = parse_query("filters=%7B%7D&name=web1");
        assert_eq!(q["filters"], "{}");
        assert_eq!(q["name"], "web1");
    }
}
