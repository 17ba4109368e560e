//! `vswitch network …`: the `docker network` commands, byte for byte.

pub mod connect;
pub mod create;
pub mod graph;
pub mod inspect;
pub mod ls;
pub mod prune;
pub mod rm;
pub mod types;

use clap::Subcommand;

use super::client::Client;
use super::{CliError, Io};

pub use connect::{ConnectArgs, DisconnectArgs};
pub use create::CreateArgs;
pub use graph::GraphArgs;
pub use inspect::InspectArgs;
pub use ls::LsArgs;
pub use prune::PruneArgs;
pub use rm::RmArgs;

/// `vswitch network` subcommands.
#[derive(Subcommand, Debug, Clone)]
pub enum NetworkCmd {
    /// Connect a container to a network
    Connect(ConnectArgs),
    /// Create a network
    Create(CreateArgs),
    /// Disconnect a container from a network
    Disconnect(DisconnectArgs),
    /// Draw networks, containers, host interfaces, NAT and VTEPs (DOT, SVG or JSON)
    Graph(GraphArgs),
    /// Display detailed information on one or more networks
    Inspect(InspectArgs),
    /// List networks
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Remove all unused networks
    Prune(PruneArgs),
    /// Remove one or more networks
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
}

/// Runs one `network` subcommand.
pub async fn run(client: &mut Client, cmd: NetworkCmd, io: &mut Io<'_>) -> Result<(), CliError> {
    match cmd {
        NetworkCmd::Connect(a) => connect::run_connect(client, &a, io).await,
        NetworkCmd::Create(a) => create::run(client, &a, io).await,
        NetworkCmd::Disconnect(a) => connect::run_disconnect(client, &a, io).await,
        NetworkCmd::Graph(a) => graph::run(client, &a, io).await,
        NetworkCmd::Inspect(a) => inspect::run(client, &a, io).await,
        NetworkCmd::Ls(a) => ls::run(client, &a, io).await,
        NetworkCmd::Prune(a) => prune::run(client, &a, io).await,
        NetworkCmd::Rm(a) => rm::run(client, &a, io).await,
    }
}

/// `/networks/<escaped id>` for a reference the user typed (trimmed; empty is an error,
/// as in the docker client).
pub(crate) fn network_path(reference: &str) -> Result<String, CliError> {
    let id = super::opts::trim_id("network", reference).map_err(CliError::msg)?;
    Ok(format!("/networks/{}", super::opts::path_escape(&id)))
}
