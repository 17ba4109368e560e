//! `vswitch capture NETWORK|CONTAINER [-i ethN] [-w FILE|-] [-c COUNT] [--filter EXPR]`:
//! what the switch sees, from inside the datapath (no tcpdump needed in the sandbox). With
//! `-w` the pcap goes to the file (`-`: stdout) as it arrives; without, one line per frame.

use super::client::Client;
use super::opts::query_escape;
use super::{CliError, Io};
use crate::capture::{pcap, summary};
use clap::Args;
use http_body_util::BodyExt;
use std::io::Write;

#[derive(Args, Debug, Clone)]
pub struct CaptureArgs {
    /// Network (all of its ports) or container (one interface) to capture on
    pub target: String,
    /// The container's interface (default eth0)
    #[arg(short = 'i', long = "interface")]
    pub interface: Option<String>,
    /// Write pcap to FILE (`-`: standard output) instead of printing a line per frame
    #[arg(short = 'w', long = "write")]
    pub write: Option<String>,
    /// Stop after COUNT frames
    #[arg(short = 'c', long = "count")]
    pub count: Option<u64>,
    /// Capture only what matches (icmp, arp, tcp port 80, host 10.0.0.2, not …, and/or, (…))
    #[arg(long = "filter", default_value = "")]
    pub filter: String,
    /// Bytes kept of each frame
    #[arg(short = 's', long = "snaplen")]
    pub snaplen: Option<u32>,
}

enum Sink {
    File(std::fs::File),
    Stdout,
    Lines,
}

pub async fn capture(client: &mut Client, a: CaptureArgs, io: &mut Io<'_>) -> Result<(), CliError> {
    let mut q = format!("target={}", query_escape(&a.target));
    if let Some(i) = &a.interface {
        q += &format!("&interface={}", query_escape(i));
    }
    if let Some(c) = a.count {
        q += &format!("&count={c}");
    }
    if let Some(s) = a.snaplen {
        q += &format!("&snaplen={s}");
    }
    if !a.filter.is_empty() {
        q += &format!("&filter={}", query_escape(&a.filter));
    }
    let mut sink = match a.write.as_deref() {
        Some("-") => Sink::Stdout,
        Some(path) => Sink::File(
            std::fs::File::create(path).map_err(|e| CliError::msg(format!("{path}: {e}")))?,
        ),
        None => Sink::Lines,
    };
    let resp = client.get_stream(&format!("/vswitch/capture?{q}")).await?;
    let mut body = resp.into_body();
    let mut frames = 0u64;
    // The stream as parsed so far (whole records are consumed).
    let mut buf = Vec::new();
    let mut header_seen = false;
    while let Some(f) = body.frame().await {
        let f = f.map_err(|e| CliError::msg(format!("capture: {e}")))?;
        let Ok(data) = f.into_data() else { continue };
        let print = match &mut sink {
            Sink::File(file) => {
                file.write_all(&data)
                    .and_then(|_| file.flush())
                    .map_err(|e| CliError::msg(format!("capture: write: {e}")))?;
                false
            }
            Sink::Stdout => {
                let _ = io.out.write_all(&data);
                let _ = io.out.flush();
                false
            }
            Sink::Lines => true,
        };
        buf.extend_from_slice(&data);
        frames += records(&mut buf, &mut header_seen, print.then_some(&mut *io));
    }
    io.eprintln(&format!("{frames} packets captured"));
    Ok(())
}

/// Consumes every whole record in `buf` (printing a line for each with `io`); returns how
/// many.
fn records(buf: &mut Vec<u8>, header_seen: &mut bool, mut io: Option<&mut Io<'_>>) -> u64 {
    let mut at = 0;
    if !*header_seen {
        if buf.len() < pcap::HEADER_LEN {
            return 0;
        }
        at = pcap::HEADER_LEN;
        *header_seen = true;
    }
    let mut n = 0;
    while let Some(h) = buf.get(at..at + pcap::RECORD_HEADER_LEN) {
        let word = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        let (secs, usec, incl, orig) = (word(0), word(4), word(8) as usize, word(12));
        let start = at + pcap::RECORD_HEADER_LEN;
        let Some(frame) = buf.get(start..start + incl) else {
            break;
        };
        if let Some(io) = io.as_deref_mut() {
            let t = secs % 86_400;
            io.print(&format!(
                "{:02}:{:02}:{:02}.{usec:06} {}\n",
                t / 3600,
                t / 60 % 60,
                t % 60,
                summary::describe(frame, orig)
            ));
        }
        at = start + incl;
        n += 1;
    }
    buf.drain(..at);
    n
}
