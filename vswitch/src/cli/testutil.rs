//! A scriptable fake daemon on a temporary unix socket, for the CLI's unit tests.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use clap::Parser;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// Runs a command line against `host`, returning (exit code, stdout, stderr).
pub async fn run_line(host: &str, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut argv = vec!["vswitch", "-H", host];
    argv.extend_from_slice(args);
    let cli = super::Cli::try_parse_from(argv).expect("valid command line");
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut input = std::io::Cursor::new(stdin.as_bytes().to_vec());
    let mut io = super::Io {
        out: &mut out,
        err: &mut err,
        input: &mut input,
    };
    let code = match super::run(cli, &mut io).await {
        Ok(()) => 0,
        Err(e) => {
            if let Some(m) = &e.message {
                io.eprintln(m);
            }
            e.code
        }
    };
    (
        code,
        String::from_utf8(out).expect("utf-8"),
        String::from_utf8(err).expect("utf-8"),
    )
}

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
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let reqs = r2.clone();
                let handler = handler.clone();
                tokio::spawn(async move {
                    let _ = serve_conn(stream, reqs, handler).await;
                });
            }
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

/// A minimal HTTP/1.1 keep-alive server loop (Content-Length bodies only).
async fn serve_conn(
    stream: tokio::net::UnixStream,
    reqs: Arc<Mutex<Vec<Recorded>>>,
    handler: Arc<Handler>,
) -> std::io::Result<()> {
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    loop {
        let mut line = String::new();
        if rd.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            rd.read_line(&mut h).await?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_lowercase(), v.trim().to_string()));
            }
        }
        let len: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        rd.read_exact(&mut body).await?;
        let rec = Recorded {
            method,
            path,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        };
        reqs.lock().expect("lock").push(rec.clone());
        let (status, ct, body) = if rec.path == "/_ping" {
            let b = if rec.method == "HEAD" { "" } else { "OK" };
            (200, "text/plain; charset=utf-8", b.to_string())
        } else {
            handler(&rec)
        };
        let mut resp = format!("HTTP/1.1 {status} X\r\nApi-Version: 1.50\r\n");
        if !ct.is_empty() {
            resp.push_str(&format!("Content-Type: {ct}\r\n"));
        }
        let send_body = rec.method != "HEAD";
        resp.push_str(&format!(
            "Content-Length: {}\r\n\r\n",
            if send_body { body.len() } else { 0 }
        ));
        if send_body {
            resp.push_str(&body);
        }
        wr.write_all(resp.as_bytes()).await?;
    }
}

impl Drop for FakeDaemon {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
