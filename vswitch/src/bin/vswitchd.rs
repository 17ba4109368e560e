//! vswitchd: the daemon. Flag names follow dockerd's.

use clap::Parser;
use std::path::PathBuf;
use std::sync::Arc;
use vswitch::daemon::{Config, Daemon};
use vswitch::model::PoolSettings;

#[derive(Parser, Debug)]
#[command(
    name = "vswitchd",
    version,
    about = "Userspace virtual switch daemon with a Docker-compatible API"
)]
struct Args {
    /// Socket to serve the API on (unix:///path.sock).
    #[arg(
        short = 'H',
        long = "host",
        default_value = "unix:///run/vswitch/vswitchd.sock"
    )]
    host: Vec<String>,
    /// Group that may use the API socket (mode 0660, that group); default: root only (0600).
    #[arg(short = 'G', long = "group")]
    group: Option<String>,
    /// Directory for persistent state.
    #[arg(long, default_value = "/var/lib/vswitch")]
    data_root: PathBuf,
    /// Directory for runtime files (sandbox namespaces).
    #[arg(long, default_value = "/run/vswitch")]
    exec_root: PathBuf,
    /// Default address pool for local networks, as dockerd: base=172.30.0.0/16,size=24
    /// (repeatable; replaces the built-in list).
    #[arg(long = "default-address-pool")]
    default_address_pool: Vec<String>,
    /// Datapath worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    workers: usize,
    /// Microseconds a datapath worker keeps polling its ports after traffic before it sleeps
    /// (0: sleep at once; at most 1000). Trades CPU for fewer wake-ups; see README,
    /// Performance.
    #[arg(long = "busy-poll-us", default_value_t = vswitch::datapath::DEFAULT_BUSY_POLL.as_micros() as u64)]
    busy_poll_us: u64,
    /// Datapath workers each bridge network spans (at most --workers): every TAP of such a
    /// network gets one queue per worker, so the kernel spreads flows over workers. 1: each
    /// network on one worker. NAT and overlay traffic stays on one worker.
    #[arg(long = "tap-queues", default_value_t = vswitch::datapath::DEFAULT_TAP_QUEUES)]
    tap_queues: usize,
    /// Upstream DNS server for names the embedded DNS does not know (repeatable; default:
    /// the nameservers of /etc/resolv.conf).
    #[arg(long = "dns")]
    dns: Vec<std::net::IpAddr>,
    /// Cluster store for multi-host overlay networks: etcd://HOST:PORT[,HOST:PORT…].
    #[arg(long = "cluster-store")]
    cluster_store: Option<String>,
    /// This host's address on the underlay (VTEP), as IP or IP:PORT (the port is ignored).
    #[arg(long = "cluster-advertise")]
    cluster_advertise: Option<String>,
    /// UDP port of the VXLAN tunnels.
    #[arg(long = "data-path-port")]
    data_path_port: Option<u16>,
    /// Lease TTL in seconds: a host that dies loses its endpoints after this long.
    #[arg(long = "cluster-store-ttl")]
    cluster_store_ttl: Option<u64>,
    /// JSON daemon configuration (dockerd's daemon.json keys: "cluster-store",
    /// "cluster-advertise", "data-path-port", "cluster-store-ttl"); flags win over it.
    #[arg(long = "config-file")]
    config_file: Option<PathBuf>,
    /// Also serve Prometheus metrics (GET /metrics) over plain HTTP on HOST:PORT.
    #[arg(long = "metrics-addr", value_name = "HOST:PORT")]
    metrics_addr: Option<std::net::SocketAddr>,
    /// Serve the Docker remote network driver on this socket (default, when given without a
    /// value: /run/docker/plugins/vswitch.sock). The file's stem is the driver name:
    /// `docker network create -d vswitch …`.
    #[arg(long = "docker-plugin-socket", num_args = 0..=1, default_missing_value = vswitch::plugin::DEFAULT_DOCKER_SOCKET)]
    docker_plugin_socket: Option<PathBuf>,
    /// Log level: debug, info, warn, error.
    #[arg(short = 'l', long, default_value = "info")]
    log_level: String,
}

fn parse_pool(s: &str) -> Result<ipam::PoolSpec, String> {
    let mut base = None;
    let mut size = None;
    for kv in s.split(',') {
        match kv.split_once('=') {
            Some(("base", v)) => {
                base = Some(v.parse().map_err(|e| format!("invalid base {v}: {e}"))?)
            }
            Some(("size", v)) => {
                size = Some(v.parse().map_err(|e| format!("invalid size {v}: {e}"))?)
            }
            _ => {
                return Err(format!(
                    "invalid default address pool {s:?}: expected base=CIDR,size=N"
                ))
            }
        }
    }
    match (base, size) {
        (Some(base), Some(size)) => Ok(ipam::PoolSpec { base, size }),
        _ => Err(format!(
            "invalid default address pool {s:?}: expected base=CIDR,size=N"
        )),
    }
}

/// `--cluster-store`/`--cluster-advertise` from flags and the config file.
fn cluster_settings(args: &Args) -> Result<Option<vswitch::daemon::ClusterSettings>, String> {
    let file: serde_json::Value = match &args.config_file {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| format!("cannot read {}: {e}", p.display()))?;
            serde_json::from_str(&text)
                .map_err(|e| format!("invalid config file {}: {e}", p.display()))?
        }
        None => serde_json::Value::Null,
    };
    let from_file = |k: &str| file.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let store = args
        .cluster_store
        .clone()
        .or_else(|| from_file("cluster-store"));
    let advertise = args
        .cluster_advertise
        .clone()
        .or_else(|| from_file("cluster-advertise"));
    let (store, advertise) = match (store, advertise) {
        (None, None) => return Ok(None),
        (Some(_), None) => {
            return Err(
                "--cluster-store needs --cluster-advertise (this host's underlay address)".into(),
            )
        }
        (None, Some(_)) => return Err("--cluster-advertise needs --cluster-store".into()),
        (Some(s), Some(a)) => (s, a),
    };
    let ip = advertise
        .parse::<std::net::IpAddr>()
        .or_else(|_| advertise.parse::<std::net::SocketAddr>().map(|s| s.ip()))
        .map_err(|_| {
            format!(
                "invalid --cluster-advertise {advertise:?}: expected an IP address (or IP:PORT)"
            )
        })?;
    let num = |k: &str| file.get(k).and_then(|v| v.as_u64());
    let port = match args
        .data_path_port
        .map(u64::from)
        .or_else(|| num("data-path-port"))
    {
        None => vswitch::daemon::DEFAULT_DATA_PATH_PORT,
        Some(p) if (1024..=49151).contains(&p) => p as u16,
        Some(p) => {
            return Err(format!(
                "invalid data-path-port {p}: must be within 1024-49151"
            ))
        }
    };
    let ttl = args
        .cluster_store_ttl
        .or_else(|| num("cluster-store-ttl"))
        .map(std::time::Duration::from_secs);
    Ok(Some(vswitch::daemon::ClusterSettings {
        store,
        advertise: ip,
        data_path_port: port,
        ttl,
    }))
}

fn socket_path(h: &str) -> Result<PathBuf, String> {
    h.strip_prefix("unix://")
        .map(PathBuf::from)
        .ok_or_else(|| format!("unsupported host {h:?}: only unix:///path.sock is supported"))
}

fn main() {
    // Before any thread: it edits the environment.
    let notifier = vswitch::notify::Notifier::from_env();
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&args.log_level)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = run(args, notifier) {
        eprintln!("vswitchd: {e}");
        std::process::exit(1);
    }
}

fn run(args: Args, notifier: vswitch::notify::Notifier) -> Result<(), String> {
    let mut pools = PoolSettings::default();
    if !args.default_address_pool.is_empty() {
        pools.local = args
            .default_address_pool
            .iter()
            .map(|s| parse_pool(s))
            .collect::<Result<_, _>>()?;
    }
    let cluster = cluster_settings(&args)?;
    let gid = match &args.group {
        Some(g) => {
            Some(vswitch::api::socket::lookup_group(g).map_err(|e| format!("--group: {e}"))?)
        }
        None => None,
    };
    let sockets: Vec<PathBuf> = args
        .host
        .iter()
        .map(|h| socket_path(h))
        .collect::<Result<_, _>>()?;
    for dir in [&args.data_root, &args.exec_root] {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    // Never two daemons on one data root; held until this process ends.
    let _lock =
        vswitch::daemon::lock::DataRootLock::acquire(&args.data_root).map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let dns = if args.dns.is_empty() {
        let text = std::fs::read_to_string(vswitch::host::RESOLV_CONF).unwrap_or_default();
        vswitch::dns::upstreams_from_resolv_conf(&text)
    } else {
        args.dns
            .iter()
            .map(|ip| std::net::SocketAddr::new(*ip, 53))
            .collect()
    };
    let daemon = Daemon::open(
        Config {
            data_root: args.data_root.clone(),
            exec_root: args.exec_root.clone(),
            pools,
            workers: args.workers,
            busy_poll: std::time::Duration::from_micros(
                args.busy_poll_us
                    .min(vswitch::datapath::BUSY_POLL_MAX.as_micros() as u64),
            ),
            tap_queues: args.tap_queues,
            dns,
            cluster,
        },
        rt.handle().clone(),
    )
    .map_err(|e| e.to_string())?;
    let daemon = Arc::new(daemon);
    daemon.start_cluster_watch();
    if args.docker_plugin_socket.is_some() {
        daemon.docker_restore();
    }
    let plugin_socket = args.docker_plugin_socket.clone();
    let d2 = daemon.clone();
    let res = rt.block_on(async move {
        let mut servers = Vec::new();
        if let Some(path) = &plugin_socket {
            let l = vswitch::plugin::bind_docker_socket(path)?;
            tracing::info!(
                "Docker network driver {:?} listening on unix://{}",
                vswitch::plugin::driver_name(path),
                path.display()
            );
            servers.push(tokio::spawn(vswitch::plugin::serve_docker(
                l,
                daemon.clone(),
            )));
        }
        for path in &sockets {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
            }
            // A socket left by a killed daemon is stale: nobody can be listening on it if
            // connect fails.
            if path.exists() {
                if std::os::unix::net::UnixStream::connect(path).is_ok() {
                    return Err(format!("another daemon is listening on {}", path.display()));
                }
                let _ = std::fs::remove_file(path);
            }
            let l = vswitch::api::socket::bind(path, gid)
                .map_err(|e| format!("cannot listen on {}: {e}", path.display()))?;
            tracing::info!("API listening on unix://{}", path.display());
            servers.push(tokio::spawn(vswitch::api::serve(l, daemon.clone())));
        }
        if let Some(addr) = args.metrics_addr {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen on {addr} for metrics: {e}"))?;
            tracing::info!("metrics on http://{addr}/metrics");
            servers.push(tokio::spawn(vswitch::api::observe::serve_metrics(
                l,
                daemon.clone(),
            )));
        }
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| format!("signal handler: {e}"))?;
        let listening: Vec<String> = sockets.iter().map(|p| p.display().to_string()).collect();
        if let Err(e) = notifier.ready(&format!("API listening on {}", listening.join(", "))) {
            tracing::warn!("sd_notify READY: {e}");
        }
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("shutting down");
        if let Err(e) = notifier.stopping() {
            tracing::warn!("sd_notify STOPPING: {e}");
        }
        for s in servers {
            s.abort();
        }
        for path in sockets.iter().chain(plugin_socket.iter()) {
            let _ = std::fs::remove_file(path);
        }
        Ok::<(), String>(())
    });
    d2.close_cluster();
    res
}
