//! `network rm` / `network remove`.

use clap::Args;

use super::network_path;
use crate::cli::client::{first_json_value, Client};
use crate::cli::opts::parse_go_bool;
use crate::cli::{CliError, Io};

/// `docker network rm` flags.
#[derive(Args, Debug, Clone, Default)]
pub struct RmArgs {
    /// Do not error if the network does not exist
    #[arg(short = 'f', long = "force", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false", hide_default_value = true,
          value_name = "bool", value_parser = parse_go_bool)]
    pub force: bool,

    /// Networks to remove
    #[arg(value_name = "NETWORK", required = true, num_args = 1..)]
    pub names: Vec<String>,
}

const INGRESS_WARNING: &str = "WARNING! Before removing the routing-mesh network, make sure all the nodes in your swarm run the same docker engine version. Otherwise, removal may not be effective and functionality of newly create ingress networks will be impaired.\nAre you sure you want to continue?";

/// Per argument: `GET` (ingress check and prompt), then `DELETE`; prints the argument on
/// success, the error otherwise, and ends with `exit status 1` if anything failed.
pub async fn run(client: &mut Client, args: &RmArgs, io: &mut Io<'_>) -> Result<(), CliError> {
    let mut failed = false;
    for name in &args.names {
        let path = match network_path(name) {
            Ok(p) => p,
            Err(e) => {
                io.eprintln(&e.to_string());
                failed = true;
                continue;
            }
        };
        match client.get(&path).await {
            Ok(resp) => {
                let ingress = first_json_value(&resp.body)
                    .ok()
                    .and_then(|v| v.get("Ingress").and_then(|b| b.as_bool()))
                    .unwrap_or(false);
                if ingress && !io.confirm(INGRESS_WARNING) {
                    continue;
                }
            }
            Err(e) if e.is_connection_error() => return Err(e.into()),
            Err(_) => {}
        }
        match client.delete(&path).await {
            Ok(_) => io.print(&format!("{name}\n")),
            Err(e) if e.is_connection_error() => return Err(e.into()),
            Err(e) if args.force && e.is_not_found() => {}
            Err(e) => {
                io.eprintln(&e.to_string());
                failed = true;
            }
        }
    }
    if failed {
        Err(CliError::msg("exit status 1"))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::cli::run_line;
    use crate::cli::testutil::FakeDaemon;

    async fn daemon() -> FakeDaemon {
        FakeDaemon::start(|r| {
            let name = r.path.trim_start_matches("/v1.50/networks/").to_string();
            match (r.method.as_str(), name.as_str()) {
                ("GET", "ingressnet") => (
                    200,
                    "application/json",
                    "{\"Name\":\"ingressnet\",\"Id\":\"1234\",\"Ingress\":true}\n".into(),
                ),
                ("GET", "n1" | "n2" | "forbidden") => (
                    200,
                    "application/json",
                    format!("{{\"Name\":\"{name}\",\"Id\":\"1\"}}\n"),
                ),
                ("DELETE", "n1" | "n2" | "ingressnet") => (204, "", String::new()),
                ("DELETE", "forbidden") => (
                    403,
                    "application/json",
                    "{\"message\":\"forbidden is a pre-defined network and cannot be removed\"}\n"
                        .into(),
                ),
                (_, n) => (
                    404,
                    "application/json",
                    format!("{{\"message\":\"network {n} not found\"}}\n"),
                ),
            }
        })
        .await
    }

    #[tokio::test]
    async fn removes_in_order_and_reports() {
        let d = daemon().await;
        let (code, out, err) = run_line(
            &d.host(),
            &["network", "rm", "n1", "nope", "forbidden", "n2"],
            "",
        )
        .await;
        assert_eq!(code, 1);
        assert_eq!(out, "n1\nn2\n");
        assert_eq!(
            err,
            "Error response from daemon: network nope not found\n\
             Error response from daemon: forbidden is a pre-defined network and cannot be removed\n\
             exit status 1\n"
        );
        assert_eq!(
            d.api_log(),
            vec![
                "GET /v1.50/networks/n1 ",
                "DELETE /v1.50/networks/n1 ",
                "GET /v1.50/networks/nope ",
                "DELETE /v1.50/networks/nope ",
                "GET /v1.50/networks/forbidden ",
                "DELETE /v1.50/networks/forbidden ",
                "GET /v1.50/networks/n2 ",
                "DELETE /v1.50/networks/n2 ",
            ]
        );
    }

    #[tokio::test]
    async fn force_and_prompt() {
        let d = daemon().await;
        let (code, out, err) =
            run_line(&d.host(), &["network", "remove", "-f", "nope", "n1"], "").await;
        assert_eq!((code, out.as_str(), err.as_str()), (0, "n1\n", ""));
        let (code, out, err) = run_line(&d.host(), &["network", "rm", "-f", "forbidden"], "").await;
        assert_eq!(code, 1);
        assert_eq!(out, "");
        assert_eq!(
            err,
            "Error response from daemon: forbidden is a pre-defined network and cannot be removed\nexit status 1\n"
        );
        let (code, out, _) = run_line(&d.host(), &["network", "rm", "ingressnet"], "n\n").await;
        assert_eq!(code, 0);
        assert_eq!(out, "WARNING! Before removing the routing-mesh network, make sure all the nodes in your swarm run the same docker engine version. Otherwise, removal may not be effective and functionality of newly create ingress networks will be impaired.\nAre you sure you want to continue? [y/N] ");
        let (code, out, _) = run_line(&d.host(), &["network", "rm", "ingressnet"], " y \n").await;
        assert_eq!(code, 0);
        assert!(out.ends_with("[y/N] ingressnet\n"));
        let (code, out, err) = run_line(&d.host(), &["network", "rm", " "], "").await;
        assert_eq!((code, out.as_str()), (1, ""));
        assert_eq!(
            err,
            "invalid network name or ID: value is empty\nexit status 1\n"
        );
    }
}
