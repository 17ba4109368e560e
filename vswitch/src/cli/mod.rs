//! `vswitch`: the command-line client of `vswitchd`.
//!
//! `vswitch network …` reproduces the `docker network …` CLI (28.2.2) byte for byte:
//! requests, output layout, error texts and exit codes. The building blocks are public so
//! that later top-level commands (`run`, `exec`, `ps`, `rm`, `port`) reuse them:
//!
//! - [`client::Client`]: HTTP/1.1 over the daemon's unix socket, docker error handling;
//! - [`template::Template`] + [`goval::Value`]: Go `text/template` for `--format`;
//! - [`format::write_rows`]: docker's table / json / custom row formatter;
//! - [`tabwriter`]: Go's tab writer; [`gojson`]: Go-compatible JSON encoding and
//!   `json.Indent`; [`gotime`]: Go `time.Time` parsing and printing;
//! - [`opts`]: pflag / docker option semantics (CSV slices, `k=v` maps, filters).
//!
//! To add a top-level command, add a variant to [`Command`] and a branch in [`run`].

pub mod capture;
pub mod client;
pub mod container;
pub mod format;
pub mod gojson;
pub use crate::gotime;
pub mod goval;
pub mod network;
pub mod opts;
pub mod tabwriter;
pub mod template;
#[cfg(test)]
pub mod testutil;
#[cfg(test)]
pub(crate) use testutil::run_line;

use std::io::{BufRead, Write};

use clap::{Parser, Subcommand};

use client::{Client, ClientError};

/// `vswitch` command line.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "vswitch",
    version,
    about = "Command-line client for the vswitch daemon (docker-compatible)",
    disable_help_subcommand = true
)]
pub struct Cli {
    /// Daemon socket to connect to
    #[arg(
        short = 'H',
        long = "host",
        env = "VSWITCH_HOST",
        default_value = client::DEFAULT_HOST,
        global = true,
        value_name = "unix:///path.sock"
    )]
    pub host: String,

    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Manage networks
    #[command(subcommand)]
    Network(network::NetworkCmd),
    /// Create a sandbox attached to a network and run a command in it
    Run(container::RunArgs),
    /// Run a command inside a sandbox
    Exec(container::ExecArgs),
    /// List sandboxes
    Ps(container::PsArgs),
    /// Remove sandboxes (stop what runs inside with -f)
    Rm(container::RmArgs),
    /// List a sandbox's published ports
    Port(container::PortArgs),
    /// Capture what the switch sees on a network or a container's interface (pcap)
    Capture(capture::CaptureArgs),
}

/// A failed command: the text for stderr (if any) and the exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    pub code: i32,
    pub message: Option<String>,
}

impl CliError {
    /// Exit 1 with `message` on stderr.
    pub fn msg(message: impl Into<String>) -> CliError {
        CliError {
            code: 1,
            message: Some(message.into()),
        }
    }

    /// Exit `code` with `message` on stderr.
    pub fn status(code: i32, message: impl Into<String>) -> CliError {
        CliError {
            code,
            message: Some(message.into()),
        }
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.message {
            Some(m) => f.write_str(m),
            None => write!(f, "exit status {}", self.code),
        }
    }
}

impl std::error::Error for CliError {}

impl From<ClientError> for CliError {
    fn from(e: ClientError) -> Self {
        CliError::msg(e.to_string())
    }
}

/// The streams a command uses (the process's, or buffers in tests). Write errors (a
/// closed pipe) are ignored, as the docker CLI does.
pub struct Io<'a> {
    pub out: &'a mut dyn Write,
    pub err: &'a mut dyn Write,
    pub input: &'a mut dyn BufRead,
}

impl Io<'_> {
    /// Writes to stdout.
    pub fn print(&mut self, s: &str) {
        let _ = self.out.write_all(s.as_bytes());
    }

    /// Writes `s` and a newline to stderr.
    pub fn eprintln(&mut self, s: &str) {
        let _ = self.err.write_all(s.as_bytes());
        let _ = self.err.write_all(b"\n");
    }

    /// docker's `PromptForConfirmation`: prints `message [y/N] ` and reads one line;
    /// true only for `y` / `Y` (surrounding blanks ignored). EOF is "no".
    pub fn confirm(&mut self, message: &str) -> bool {
        let _ = write!(self.out, "{message} [y/N] ");
        let _ = self.out.flush();
        let mut line = String::new();
        match self.input.read_line(&mut line) {
            Ok(0) | Err(_) => false,
            Ok(_) => line.trim().eq_ignore_ascii_case("y"),
        }
    }
}

/// Runs a parsed command line.
pub async fn run(cli: Cli, io: &mut Io<'_>) -> Result<(), CliError> {
    let mut client = Client::new(&cli.host)?;
    match cli.command {
        Command::Network(cmd) => network::run(&mut client, cmd, io).await,
        Command::Run(a) => container::run(&mut client, a, io).await,
        Command::Exec(a) => container::exec(&mut client, a, io).await,
        Command::Ps(a) => container::ps(&mut client, a, io).await,
        Command::Rm(a) => container::rm(&mut client, a, io).await,
        Command::Port(a) => container::port(&mut client, a, io).await,
        Command::Capture(a) => capture::capture(&mut client, a, io).await,
    }
}

/// Runs a parsed command line on a fresh single-threaded runtime with the given streams
/// and returns the exit code; the error text, if any, goes to `io.err`.
pub fn run_with(cli: Cli, io: &mut Io<'_>) -> i32 {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            io.eprintln(&format!("cannot start the runtime: {e}"));
            return 1;
        }
    };
    let res = rt.block_on(run(cli, io));
    let _ = io.out.flush();
    match res {
        Ok(()) => 0,
        Err(e) => {
            if let Some(m) = &e.message {
                io.eprintln(m);
            }
            let _ = io.err.flush();
            e.code
        }
    }
}

/// Entry point of the `vswitch` binary: parses the process arguments (clap prints usage
/// errors and exits 2 on its own), runs the command, returns the exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let stdin = std::io::stdin();
    let mut out = stdout.lock();
    let mut err = stderr.lock();
    let mut input = stdin.lock();
    let mut io = Io {
        out: &mut out,
        err: &mut err,
        input: &mut input,
    };
    run_with(cli, &mut io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[tokio::test]
    async fn cannot_connect() {
        let (code, out, err) =
            run_line("unix:///nonexistent/vs.sock", &["network", "ls"], "").await;
        assert_eq!(code, 1);
        assert_eq!(out, "");
        assert_eq!(
            err,
            "Cannot connect to the vswitch daemon at unix:///nonexistent/vs.sock. Is the vswitch daemon running?\n"
        );
    }
}

#[cfg(test)]
mod robustness {
    //! Parsers fed arbitrary input must fail cleanly, never panic.
    use proptest::prelude::*;

    use super::goval::Value;
    use super::template::{json_value, ExecOptions, Template};

    proptest! {
        #[test]
        fn templates_never_panic(src in r#"([a-z.$ "`'|(),:=\-{}\\/*0-9A-Z]|\{\{|\}\}|é){0,40}"#) {
            if let Ok(t) = Template::parse(&src) {
                let data = json_value(r#"{"A":"x","B":[1,"y",null],"C":{"d":true},"N":null}"#).unwrap();
                let _ = t.execute(&data, &ExecOptions::default());
                let _ = t.execute(&data, &ExecOptions { missing_key_error: true, header: false });
                let _ = t.execute(&Value::Str("s".into()), &ExecOptions::default());
            }
        }

        #[test]
        fn json_scanner_never_panics(src in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = super::gojson::check_syntax(&src, true);
            let _ = super::gojson::check_syntax(&src, false);
            let _ = super::gojson::indent(&src, "", "    ");
            let _ = super::client::first_json_value(&src);
        }

        #[test]
        fn json_scanner_agrees_with_serde(src in r#"[\[\]{}",:0-9a-z.eE+\- \\]{0,24}"#) {
            let ours = super::gojson::check_syntax(src.as_bytes(), false).is_ok();
            let serde = serde_json::from_str::<serde::de::IgnoredAny>(&src).is_ok();
            prop_assert_eq!(ours, serde);
        }

        #[test]
        fn small_parsers_never_panic(s in ".{0,32}") {
            let _ = super::gotime::GoTime::parse_rfc3339(&s);
            let _ = super::opts::parse_csv(&s);
            let _ = super::opts::natural_less(&s, "a10");
            let _ = super::network::create::parse_cidr(&s);
            let _ = super::tabwriter::format_table(&s);
        }
    }
}
