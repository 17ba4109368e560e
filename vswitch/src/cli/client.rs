//! A small HTTP/1.1 client for the daemon's Docker Engine–compatible API on a unix socket.
//!
//! One keep-alive connection (reopened when the daemon closed it), `Host: vswitch`,
//! versioned paths (`/v1.50/networks`), and docker's error handling: any status ≥ 400 is
//! an error whose text is what the docker CLI prints (`Error response from daemon: …`).
//!
//! ```no_run
//! # async fn f() -> Result<(), vswitch::cli::client::ClientError> {
//! use vswitch::cli::client::Client;
//! let mut c = Client::new("unix:///run/vswitch/vswitchd.sock")?;
//! let resp = c.get("/networks").await?;
//! println!("{}", String::from_utf8_lossy(&resp.body));
//! # Ok(()) }
//! ```

use std::path::PathBuf;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderMap, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, HOST, USER_AGENT};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;

use super::gojson;

/// The API version this client speaks (docker CLI 28.2.2).
pub const API_VERSION: &str = "1.50";

/// Where `vswitchd` listens unless told otherwise.
pub const DEFAULT_HOST: &str = "unix:///run/vswitch/vswitchd.sock";

/// Largest error body the docker client reads.
const MAX_ERROR_BODY: usize = 1024 * 1024;

/// Errors of [`Client`]; `Display` is the text the CLI prints.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket is missing or nobody listens on it.
    #[error("Cannot connect to the vswitch daemon at {0}. Is the vswitch daemon running?")]
    Connect(String),
    #[error("permission denied while trying to connect to the vswitch daemon socket at {host}: {detail}")]
    PermissionDenied { host: String, detail: String },
    #[error("{0}")]
    InvalidHost(String),
    /// The connection broke mid-request, or the answer was not HTTP.
    #[error("error during connect: {0}")]
    Transport(String),
    /// The daemon answered with status ≥ 400; `message` is the full text docker prints
    /// (normally `Error response from daemon: <message>`).
    #[error("{message}")]
    Daemon { status: u16, message: String },
}

impl ClientError {
    /// A 404 from the daemon (`errdefs.IsNotFound`).
    pub fn is_not_found(&self) -> bool {
        matches!(self, ClientError::Daemon { status: 404, .. })
    }

    /// The daemon's HTTP status, for daemon errors.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Daemon { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The daemon could not be reached at all.
    pub fn is_connection_error(&self) -> bool {
        matches!(
            self,
            ClientError::Connect(_)
                | ClientError::PermissionDenied { .. }
                | ClientError::InvalidHost(_)
        )
    }
}

/// A successful (status < 400) answer.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Response {
    /// The first JSON value of the body, decoded like Go's `json.Decoder.Decode`
    /// (an empty body is the error `EOF`).
    pub fn json(&self) -> Result<serde_json::Value, String> {
        first_json_value(&self.body)
    }
}

/// Decodes the first JSON value in `body` (trailing data ignored, as `json.Decoder` does).
/// Syntax errors read like Go's (`invalid character 'x' looking for beginning of value`).
pub fn first_json_value(body: &[u8]) -> Result<serde_json::Value, String> {
    let end = gojson::check_syntax(body, true)?;
    serde_json::from_slice(&body[..end]).map_err(|e| e.to_string())
}

/// Client for one daemon socket.
pub struct Client {
    host: String,
    socket: PathBuf,
    version: String,
    needs_ping: bool,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("host", &self.host)
            .field("version", &self.version)
            .finish()
    }
}

impl Client {
    /// A client for `host` (`unix:///path.sock`, or a bare absolute socket path). Nothing
    /// is connected until the first request.
    pub fn new(host: &str) -> Result<Client, ClientError> {
        let path = if let Some(p) = host.strip_prefix("unix://") {
            p
        } else if host.starts_with('/') {
            host
        } else {
            return Err(ClientError::InvalidHost(format!(
                "invalid host {host:?}: only unix:///path/to/socket hosts are supported"
            )));
        };
        if path.is_empty() {
            return Err(ClientError::InvalidHost(format!(
                "invalid host {host:?}: empty socket path"
            )));
        }
        Ok(Client {
            host: format!("unix://{path}"),
            socket: PathBuf::from(path),
            version: API_VERSION.to_string(),
            needs_ping: true,
            sender: None,
        })
    }

    /// The host as shown in messages (`unix:///path.sock`).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The API version used in request paths (after negotiation).
    pub fn api_version(&self) -> &str {
        &self.version
    }

    /// Pins the API version and skips the `_ping` negotiation (like `DOCKER_API_VERSION`).
    pub fn set_api_version(&mut self, v: &str) {
        self.version = v.to_string();
        self.needs_ping = false;
    }

    /// `HEAD /_ping` (unversioned), any status.
    pub async fn ping(&mut self) -> Result<(StatusCode, HeaderMap), ClientError> {
        let (status, headers, _) = self.send_raw(Method::HEAD, "/_ping", None).await?;
        Ok((status, headers))
    }

    /// `GET /vX/<path>`; `path` starts with `/` and may carry a query string.
    pub async fn get(&mut self, path: &str) -> Result<Response, ClientError> {
        self.request(Method::GET, path, None).await
    }

    /// `HEAD /vX/<path>`.
    pub async fn head(&mut self, path: &str) -> Result<Response, ClientError> {
        self.request(Method::HEAD, path, None).await
    }

    /// `DELETE /vX/<path>` without a body.
    pub async fn delete(&mut self, path: &str) -> Result<Response, ClientError> {
        self.request(Method::DELETE, path, None).await
    }

    /// `POST /vX/<path>` with `Content-Length: 0` and no body.
    pub async fn post_empty(&mut self, path: &str) -> Result<Response, ClientError> {
        self.request(Method::POST, path, Some(Vec::new())).await
    }

    /// `POST /vX/<path>` with a JSON body (sent as given: callers produce Go-encoder
    /// bytes, normally ending in `\n`).
    pub async fn post_json(
        &mut self,
        path: &str,
        body: impl Into<Vec<u8>>,
    ) -> Result<Response, ClientError> {
        let body = body.into();
        self.request(Method::POST, path, Some(body)).await
    }

    /// `POST` of any serde-serializable value (compact JSON + `\n`).
    pub async fn post_serialize<T: serde::Serialize>(
        &mut self,
        path: &str,
        value: &T,
    ) -> Result<Response, ClientError> {
        let mut body =
            serde_json::to_vec(value).map_err(|e| ClientError::Transport(e.to_string()))?;
        body.push(b'\n');
        self.post_json(path, body).await
    }

    /// A versioned API request; statuses ≥ 400 become [`ClientError::Daemon`].
    /// `body: Some(..)` on a POST is sent as JSON (`Some(empty)` → `Content-Length: 0`).
    pub async fn request(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Response, ClientError> {
        self.negotiate().await?;
        let full = format!("/v{}{}", self.version, path);
        let (status, headers, body) = self.send_raw(method, &full, body).await?;
        if status.as_u16() >= 400 {
            return Err(self.daemon_error(status, &headers, &body, &full));
        }
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    /// `GET /vX/<path>` on a connection of its own whose body is read as it arrives (a
    /// capture); statuses ≥ 400 become [`ClientError::Daemon`] as with [`Client::request`].
    pub async fn get_stream(
        &mut self,
        path: &str,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        self.negotiate().await?;
        let full = format!("/v{}{}", self.version, path);
        let mut sender = self.connect().await?;
        let req = build_request(&Method::GET, &full, None)?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        let status = resp.status();
        if status.as_u16() >= 400 {
            let headers = resp.headers().clone();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| ClientError::Transport(e.to_string()))?
                .to_bytes();
            return Err(self.daemon_error(status, &headers, &body, &full));
        }
        Ok(resp)
    }

    /// API version negotiation (once), as the docker client does it: `HEAD /_ping`
    /// (then `GET /_ping` unless the HEAD got 200 or 500) and adopt the daemon's
    /// `Api-Version` when lower than ours (a missing header means 1.24). A ping that
    /// fails with an HTTP error leaves the version alone; only a connection failure is
    /// an error. Runs automatically before the first request.
    pub async fn negotiate(&mut self) -> Result<(), ClientError> {
        if !self.needs_ping {
            return Ok(());
        }
        self.needs_ping = false;
        let (mut status, mut headers) = match self.ping().await {
            Ok(r) => r,
            Err(e) if e.is_connection_error() => return Err(e),
            Err(_) => (StatusCode::NOT_FOUND, HeaderMap::new()),
        };
        if status != StatusCode::OK && status != StatusCode::INTERNAL_SERVER_ERROR {
            match self.send_raw(Method::GET, "/_ping", None).await {
                Ok((s, h, _)) => {
                    status = s;
                    headers = h;
                }
                Err(e) if e.is_connection_error() => return Err(e),
                Err(_) => return Ok(()),
            }
            if status.as_u16() >= 400 {
                return Ok(());
            }
        }
        let server = headers
            .get("api-version")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .unwrap_or("1.24")
            .to_string();
        if version_less(&server, &self.version) {
            self.version = server;
        }
        Ok(())
    }

    async fn connect(&mut self) -> Result<SendRequest<Full<Bytes>>, ClientError> {
        let stream = match tokio::net::UnixStream::connect(&self.socket).await {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                return Err(ClientError::PermissionDenied {
                    host: self.host.clone(),
                    detail: format!(
                        "dial unix {}: connect: permission denied",
                        self.socket.display()
                    ),
                })
            }
            Err(_) => return Err(ClientError::Connect(self.host.clone())),
        };
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    /// Sends one request on the kept-alive connection (reconnecting once when the
    /// daemon closed it) and reads the whole answer.
    async fn send_raw(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, HeaderMap, Bytes), ClientError> {
        for attempt in 0..2 {
            let reused = self.sender.is_some();
            let mut sender = match self.sender.take() {
                Some(s) if !s.is_closed() => s,
                _ => self.connect().await?,
            };
            if sender.ready().await.is_err() {
                if reused && attempt == 0 {
                    continue;
                }
                return Err(ClientError::Transport("connection closed".into()));
            }
            let req = build_request(&method, path, body.as_deref())?;
            let resp = match sender.send_request(req).await {
                Ok(r) => r,
                Err(e) => {
                    if reused && attempt == 0 && (e.is_canceled() || e.is_closed()) {
                        continue;
                    }
                    return Err(ClientError::Transport(e.to_string()));
                }
            };
            let status = resp.status();
            let headers = resp.headers().clone();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| ClientError::Transport(e.to_string()))?
                .to_bytes();
            if !sender.is_closed() {
                self.sender = Some(sender);
            }
            return Ok((status, headers, body));
        }
        Err(ClientError::Transport("connection closed".into()))
    }

    /// docker's `checkResponseErr`.
    fn daemon_error(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
        path: &str,
    ) -> ClientError {
        let code = status.as_u16();
        let reason = status.canonical_reason().unwrap_or("");
        let status_msg = format!("{code} {reason}").trim_end().to_string();
        let url = format!(
            "http://{}{}",
            host_escape(&self.socket.to_string_lossy()),
            path
        );
        let message = if body.len() >= MAX_ERROR_BODY {
            format!("request returned {status_msg} with a message (> {MAX_ERROR_BODY} bytes) for API route and version {url}, check if the server supports the requested API version")
        } else if body.is_empty() {
            format!("request returned {status_msg} for API route and version {url}, check if the server supports the requested API version")
        } else if headers
            .get(CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes() == b"application/json")
        {
            let parsed = gojson::check_syntax(body, false).and_then(|_| {
                serde_json::from_slice::<serde_json::Value>(body).map_err(|e| e.to_string())
            });
            match parsed {
                Err(e) => format!("Error reading JSON: {e}"),
                Ok(v) => {
                    let msg = v.as_object().and_then(|o| {
                        o.get("message").or_else(|| {
                            o.iter()
                                .find(|(k, _)| k.eq_ignore_ascii_case("message"))
                                .map(|(_, m)| m)
                        })
                    });
                    match msg {
                        Some(m) if !m.is_string() && !m.is_null() => format!(
                            "Error reading JSON: json: cannot unmarshal {} into Go struct field ErrorResponse.message of type string",
                            match m {
                                serde_json::Value::Bool(_) => "bool",
                                serde_json::Value::Number(_) => "number",
                                serde_json::Value::Array(_) => "array",
                                _ => "object",
                            }
                        ),
                        Some(serde_json::Value::String(m)) if !m.is_empty() => {
                            format!("Error response from daemon: {}", m.trim())
                        }
                        _ => format!(
                            "Error response from daemon: API returned a {code} ({reason}) but provided no error-message"
                        ),
                    }
                }
            }
        } else {
            format!(
                "Error response from daemon: {}",
                String::from_utf8_lossy(body).trim()
            )
        };
        ClientError::Daemon {
            status: code,
            message,
        }
    }
}

fn build_request(
    method: &Method,
    path: &str,
    body: Option<&[u8]>,
) -> Result<Request<Full<Bytes>>, ClientError> {
    let mut b = Request::builder()
        .method(method.clone())
        .uri(path)
        .header(HOST, HeaderValue::from_static("vswitch"))
        .header(
            USER_AGENT,
            HeaderValue::from_static(concat!("vswitch/", env!("CARGO_PKG_VERSION"))),
        );
    let data = match body {
        Some(d) => {
            if !d.is_empty() {
                b = b.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            }
            b = b.header(CONTENT_LENGTH, d.len());
            Bytes::copy_from_slice(d)
        }
        None => Bytes::new(),
    };
    b.body(Full::new(data))
        .map_err(|e| ClientError::Transport(format!("invalid request {path:?}: {e}")))
}

/// Go's URL host escaping (what docker shows in `…for API route and version http://%2F…`).
fn host_escape(s: &str) -> String {
    let mut out = String::new();
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~!$&'()*+,;=:[]<>\"".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `versions.LessThan` for `1.NN` strings.
pub fn version_less(a: &str, b: &str) -> bool {
    let parse = |s: &str| -> Vec<u64> { s.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    let (va, vb) = (parse(a), parse(b));
    for i in 0..va.len().max(vb.len()) {
        let (x, y) = (
            va.get(i).copied().unwrap_or(0),
            vb.get(i).copied().unwrap_or(0),
        );
        if x != y {
            return x < y;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::testutil::FakeDaemon;

    #[test]
    fn hosts() {
        assert_eq!(
            Client::new("unix:///a/b.sock").unwrap().host(),
            "unix:///a/b.sock"
        );
        assert_eq!(Client::new("/a/b.sock").unwrap().host(), "unix:///a/b.sock");
        assert!(Client::new("tcp://1.2.3.4:2375").is_err());
        assert!(version_less("1.43", "1.50"));
        assert!(!version_less("1.51", "1.50"));
        assert_eq!(host_escape("/path/fake.sock"), "%2Fpath%2Ffake.sock");
    }

    #[tokio::test]
    async fn missing_socket() {
        let mut c = Client::new("unix:///nonexistent/x.sock").unwrap();
        let e = c.get("/networks").await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "Cannot connect to the vswitch daemon at unix:///nonexistent/x.sock. Is the vswitch daemon running?"
        );
    }

    #[tokio::test]
    async fn requests_and_errors() {
        let d = FakeDaemon::start(|req| match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/v1.50/networks") => (200, "application/json", "[]\n".into()),
            ("GET", "/v1.50/networks/nf") => (
                404,
                "application/json",
                "{\"message\":\"network nf not found\"}\n".into(),
            ),
            ("GET", "/v1.50/networks/plain") => (500, "text/plain", " boom \n".into()),
            ("GET", "/v1.50/networks/nomsg") => (404, "application/json", "{}".into()),
            ("GET", "/v1.50/networks/empty") => (404, "application/json", String::new()),
            ("POST", "/v1.50/networks/prune") => (200, "application/json", "{}".into()),
            _ => (
                404,
                "application/json",
                "{\"message\":\"page not found\"}".into(),
            ),
        })
        .await;
        let mut c = Client::new(&d.host()).unwrap();
        let r = c.get("/networks").await.unwrap();
        assert_eq!(&r.body[..], b"[]\n");
        let e = c.get("/networks/nf").await.unwrap_err();
        assert!(e.is_not_found());
        assert_eq!(
            e.to_string(),
            "Error response from daemon: network nf not found"
        );
        let e = c.get("/networks/plain").await.unwrap_err();
        assert_eq!(e.to_string(), "Error response from daemon: boom");
        let e = c.get("/networks/nomsg").await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "Error response from daemon: API returned a 404 (Not Found) but provided no error-message"
        );
        let e = c.get("/networks/empty").await.unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "request returned 404 Not Found for API route and version http://{}/v1.50/networks/empty, check if the server supports the requested API version",
                host_escape(&d.socket_path())
            )
        );
        c.post_empty("/networks/prune").await.unwrap();
        let reqs = d.requests();
        assert_eq!(reqs[0].method, "HEAD");
        assert_eq!(reqs[0].path, "/_ping");
        assert_eq!(reqs.iter().filter(|r| r.path == "/_ping").count(), 1);
        let prune = reqs.last().unwrap();
        assert_eq!(prune.header("content-length").as_deref(), Some("0"));
        assert_eq!(prune.header("content-type"), None);
        assert_eq!(reqs[1].header("host").as_deref(), Some("vswitch"));
    }
}
