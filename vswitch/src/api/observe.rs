//! `GET /metrics` (Prometheus text) and `GET /vswitch/capture` (a pcap stream).
//!
//! A capture's answer is a chunked `application/vnd.tcpdump.pcap` body that lasts until
//! `count` frames were sent, the network or port goes away, or the client hangs up. A
//! thread per capture moves frames from the datapath's queue into the body; when the client
//! does not read, that thread waits and the datapath drops (and counts) what the capture
//! cannot hold, so the switch never waits for a reader.

use super::{error, parse_query, strip_version, Resp};
use crate::capture::{pcap, CaptureReader, DEFAULT_SNAPLEN};
use crate::daemon::Daemon;
use crate::model::Error;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// What the API answers with: whole bodies, or a capture's stream.
pub type AnyResp = Response<BoxBody<Bytes, Infallible>>;

/// Bytes gathered before a chunk goes out (unless the queue is empty first).
const CHUNK: usize = 64 * 1024;
/// Chunks buffered between the capture thread and the connection.
const CHUNKS_IN_FLIGHT: usize = 16;
/// How often an idle capture checks that its client is still there.
const IDLE_POLL: Duration = Duration::from_millis(250);

/// `GET /metrics`.
pub async fn metrics(d: &Arc<Daemon>) -> Result<Resp, Error> {
    let text = d.metrics_text().await?;
    let mut r = Response::new(Full::new(Bytes::from(text)));
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
    );
    Ok(r)
}

/// Serves `GET /metrics` (and nothing else) over plain HTTP on `listener`
/// (`vswitchd --metrics-addr`).
pub async fn serve_metrics(listener: tokio::net::TcpListener, daemon: Arc<Daemon>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("accept on metrics listener: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let d = daemon.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let d = d.clone();
                async move {
                    let r = match (req.method(), req.uri().path()) {
                        (&Method::GET, "/metrics") => metrics(&d).await,
                        _ => Err(Error::NotFound("page not found".into())),
                    };
                    Ok::<_, Infallible>(r.unwrap_or_else(|e| error(&e)))
                }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, svc)
                .await
            {
                tracing::debug!("metrics connection: {e}");
            }
        });
    }
}

/// Serves one request: a capture as a stream, anything else through [`super::handle`].
pub async fn dispatch(d: Arc<Daemon>, req: Request<Incoming>) -> AnyResp {
    let path = req.uri().path();
    let is_capture = req.method() == Method::GET
        && strip_version(path).is_ok_and(|p| p.trim_end_matches('/') == "/vswitch/capture");
    if !is_capture {
        return super::handle(d, req).await.map(BodyExt::boxed);
    }
    let q = parse_query(req.uri().query().unwrap_or(""));
    let mut resp = match start(&d, &q).await {
        Ok(r) => r,
        Err(e) => error(&e).map(BodyExt::boxed),
    };
    let h = resp.headers_mut();
    h.insert("Api-Version", HeaderValue::from_static(super::API_VERSION));
    h.insert("Ostype", HeaderValue::from_static("linux"));
    h.insert("Server", HeaderValue::from_static(super::SERVER_HEADER));
    resp
}

async fn start(
    d: &Arc<Daemon>,
    q: &std::collections::HashMap<String, String>,
) -> Result<AnyResp, Error> {
    let target = q
        .get("target")
        .filter(|t| !t.is_empty())
        .cloned()
        .ok_or_else(|| Error::InvalidParameter("capture: target is required".into()))?;
    let num = |k: &str, default: u64| -> Result<u64, Error> {
        match q.get(k).filter(|v| !v.is_empty()) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| Error::InvalidParameter(format!("capture: invalid {k}: {v:?}"))),
        }
    };
    let count = num("count", 0)?;
    let snaplen =
        u32::try_from(num("snaplen", u64::from(DEFAULT_SNAPLEN))?).unwrap_or(DEFAULT_SNAPLEN);
    let iface = q.get("interface").filter(|v| !v.is_empty()).cloned();
    let filter = q.get("filter").cloned().unwrap_or_default();
    let dd = d.clone();
    let reader = tokio::task::spawn_blocking(move || {
        dd.start_capture(&target, iface.as_deref(), &filter, snaplen)
    })
    .await
    .map_err(|e| Error::Internal(format!("capture: {e}")))??;
    let (tx, rx) = tokio::sync::mpsc::channel(CHUNKS_IN_FLIGHT);
    std::thread::Builder::new()
        .name("vswitch-capture".into())
        .spawn(move || pump(reader, tx, count))
        .map_err(|e| Error::Internal(format!("capture: {e}")))?;
    let mut r = Response::new(ChunkBody { rx }.boxed());
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.tcpdump.pcap"),
    );
    Ok(r)
}

/// Moves captured frames into pcap chunks until `count` (0: no limit) were sent, the tap
/// is gone, or the client is.
fn pump(reader: CaptureReader, tx: tokio::sync::mpsc::Sender<Bytes>, count: u64) {
    let header = pcap::file_header(reader.snaplen());
    if tx.blocking_send(Bytes::copy_from_slice(&header)).is_err() {
        return;
    }
    let mut sent = 0u64;
    let mut chunk = Vec::with_capacity(CHUNK);
    loop {
        let first = match reader.recv(IDLE_POLL) {
            Ok(c) => c,
            Err(true) => return,
            Err(false) => {
                if tx.is_closed() {
                    return;
                }
                continue;
            }
        };
        let mut next = Some(first);
        while let Some(c) = next.take() {
            pcap::write_record(&mut chunk, c.ts, c.orig_len, &c.data);
            reader.recycle(c);
            sent += 1;
            if (count > 0 && sent >= count) || chunk.len() >= CHUNK {
                break;
            }
            next = reader.try_recv();
        }
        if tx
            .blocking_send(Bytes::from(std::mem::replace(
                &mut chunk,
                Vec::with_capacity(CHUNK),
            )))
            .is_err()
        {
            return;
        }
        if count > 0 && sent >= count {
            return;
        }
    }
}

/// A response body fed by a channel of chunks; ends when the sender is dropped.
struct ChunkBody {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
}

impl hyper::body::Body for ChunkBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}
