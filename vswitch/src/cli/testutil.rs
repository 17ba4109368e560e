//! A scriptable fake daemon on a temporary unix socket, for the CLI's unit tests.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Response, StatusCode};

/// One request as the fake daemon saw it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    /// Path and query, as sent.
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }
}

type Handler = dyn Fn(&Recorded) -> (u16, &'static str, String) + Send + Sync;

/// The fake daemon; answers `/_ping` itself and everything else through the handler.
pub struct FakeDaemon {
    dir: PathBuf,
    socket: PathBuf,
    reqs: Arc<Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl FakeDaemon {
    /// Starts serving; `handler` returns (status, content type, body).
    pub async fn start<F>(handler: F) -> FakeDaemon
    where
        F: Fn(&Recorded) -> (u16, &'static str, String) + Send + Sync + 'static,
    {
        let dir = std::env::temp_dir().join(format!(
            "vswitch-cli-test-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let socket = dir.join("d.sock");
        let listener = tokio::net::UnixListener::bind(&socket).expect("bind");
        let reqs: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let handler: Arc<Handler> = Arc::new(handler);
        let r2 = reqs.clone();
        let app = axum::Router::new().fallback(move |req: Request| {
            let reqs = r2.clone();
            let handler = handler.clone();
            async move {
                let method = req.method().to_string();
                let path = req
                    .uri()
                    .path_and_query()
                    .map(|p| p.as_str().to_string())
                    .unwrap_or_default();
                let headers = req
                    .headers()
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                    .collect();
                let body = axum::body::to_bytes(req.into_body(), usize::MAX)
                    .await
                    .unwrap_or_default();
                let rec = Recorded {
                    method,
                    path,
                    headers,
                    body: String::from_utf8_lossy(&body).into_owned(),
                };
                reqs.lock().expect("lock").push(rec.clone());
                if rec.path == "/_ping" {
                    let mut r = Response::new(Body::from(if rec.method == "HEAD" {
                        ""
                    } else {
                        "OK"
                    }));
                    r.headers_mut()
                        .insert("Api-Version", HeaderValue::from_static("1.50"));
                    return r;
                }
                let (status, ct, body) = handler(&rec);
                let mut r = Response::new(Body::from(body));
                *r.status_mut() = StatusCode::from_u16(status).expect("status");
                if !ct.is_empty() {
                    r.headers_mut()
                        .insert("Content-Type", HeaderValue::from_static(ct));
                }
                r
            }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeDaemon {
            dir,
            socket,
            reqs,
            task,
        }
    }

    /// `unix:///…/d.sock`
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    pub fn socket_path(&self) -> String {
        self.socket.display().to_string()
    }

    /// Every request so far, pings included.
    pub fn requests(&self) -> Vec<Recorded> {
        self.reqs.lock().expect("lock").clone()
    }

    /// The requests other than `/_ping`, as `METHOD path body` lines.
    pub fn api_log(&self) -> Vec<String> {
        self.requests()
            .into_iter()
            .filter(|r| r.path != "/_ping")
            .map(|r| format!("{} {} {}", r.method, r.path, r.body))
            .collect()
    }
}

impl Drop for FakeDaemon {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
