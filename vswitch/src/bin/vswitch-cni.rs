//! `vswitch-cni`: the CNI plugin (spec 1.0.0/1.1.0). The runtime runs it with `CNI_*` in the
//! environment and the network config on stdin; the answer (result or error JSON) goes to
//! stdout, logs to stderr. See `vswitch::cni`.

use std::io::{Read, Write};

fn main() {
    let mut stdin = Vec::new();
    // One byte over the limit is enough for the parser to refuse it.
    let limit = vswitch::cni::config::MAX_CONFIG_BYTES as u64 + 1;
    let _ = std::io::stdin().take(limit).read_to_end(&mut stdin);
    let (out, code) = vswitch::cni::plugin::main(|k| std::env::var(k).ok(), &stdin);
    let mut so = std::io::stdout().lock();
    let _ = so.write_all(&out);
    let _ = so.flush();
    std::process::exit(code);
}
