//! `network prune`.

use clap::Args;

use crate::cli::client::{first_json_value, Client};
use crate::cli::opts::{parse_filter, parse_go_bool, FilterArg, Filters};
use crate::cli::{CliError, Io};

/// `docker network prune` flags.
#[derive(Args, Debug, Clone, Default)]
pub struct PruneArgs {
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long = "filter", value_name = "filter", value_parser = parse_filter)]
    pub filter: Vec<FilterArg>,

    /// Do not prompt for confirmation
    #[arg(short = 'f', long = "force", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false", hide_default_value = true,
          value_name = "bool", value_parser = parse_go_bool)]
    pub force: bool,
}

const WARNING: &str = "WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue?";

pub async fn run(client: &mut Client, args: &PruneArgs, io: &mut Io<'_>) -> Result<(), CliError> {
    if !args.force && !io.confirm(WARNING) {
        // docker: "network prune has been cancelled", exit 0 and nothing printed
        return Ok(());
    }
    let query = Filters::from_args(&args.filter).query();
    let resp = client
        .post_empty(&format!("/networks/prune{query}"))
        .await?;
    let report = first_json_value(&resp.body)
        .map_err(|e| CliError::msg(format!("Error retrieving network prune report: {e}")))?;
    let deleted: Vec<String> = report
        .get("NetworksDeleted")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .map(|x| x.as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default();
    if !deleted.is_empty() {
        let mut out = String::from("Deleted Networks:\n");
        for n in deleted {
            out.push_str(&n);
            out.push('\n');
        }
        out.push('\n');
        io.print(&out);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::cli::run_line;
    use crate::cli::testutil::FakeDaemon;

    const PROMPT: &str = "WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue? [y/N] ";

    #[tokio::test]
    async fn prompt_and_report() {
        let d = FakeDaemon::start(|r| {
            if r.path.contains("filters") {
                (
                    200,
                    "application/json",
                    "{\"NetworksDeleted\":null}\n".into(),
                )
            } else {
                (
                    200,
                    "application/json",
                    "{\"NetworksDeleted\":[\"testbridge2\",\"lbl\"]}\n".into(),
                )
            }
        })
        .await;
        let (code, out, err) = run_line(&d.host(), &["network", "prune"], "n\n").await;
        assert_eq!((code, out.as_str(), err.as_str()), (0, PROMPT, ""));
        let (code, out, _) = run_line(&d.host(), &["network", "prune"], "").await;
        assert_eq!((code, out.as_str()), (0, PROMPT));
        assert!(d.api_log().is_empty());
        let (code, out, _) = run_line(&d.host(), &["network", "prune"], " Y \n").await;
        assert_eq!(code, 0);
        assert_eq!(
            out,
            format!("{PROMPT}Deleted Networks:\ntestbridge2\nlbl\n\n")
        );
        let (code, out, _) = run_line(
            &d.host(),
            &[
                "network",
                "prune",
                "-f",
                "--filter",
                "until=24h",
                "--filter",
                " Label = a=b ",
            ],
            "",
        )
        .await;
        assert_eq!((code, out.as_str()), (0, ""));
        let log = d.api_log();
        assert_eq!(log[0], "POST /v1.50/networks/prune ");
        assert_eq!(
            log[1],
            "POST /v1.50/networks/prune?filters=%7B%22label%22%3A%7B%22a%3Db%22%3Atrue%7D%2C%22until%22%3A%7B%2224h%22%3Atrue%7D%7D "
        );
        let req = d
            .requests()
            .into_iter()
            .rfind(|r| r.path != "/_ping")
            .unwrap();
        assert_eq!(req.header("content-length").as_deref(), Some("0"));
        assert_eq!(req.header("content-type"), None);
    }
}
