//! Who may use the API socket, as dockerd's `-G/--group`: root only by default (0600), or a
//! group's members with `-G NAME` (0660, that group). An unknown group stops the daemon at
//! start with a clear error.

use std::os::unix::fs::MetadataExt;
use std::process::Command;
use vswitch_tests::*;

/// A system group every Debian has (gid 1).
const GROUP: &str = "daemon";
/// An unprivileged user for the access checks (`nobody`).
const NOBODY: &str = "65534";

/// `curl /_ping` on the daemon's socket as user `nobody`, with `groups` as its only
/// supplementary groups; the ping's body on success.
fn ping_as_nobody(d: &Daemon, groups: &str) -> Option<String> {
    let sock = d.sock.to_str().unwrap();
    let mut c = Command::new("setpriv");
    c.args(["--reuid", NOBODY, "--regid", NOBODY]);
    if groups.is_empty() {
        c.arg("--clear-groups");
    } else {
        c.args(["--groups", groups]);
    }
    c.args([
        "curl",
        "-sf",
        "--max-time",
        "5",
        "--unix-socket",
        sock,
        "http://d/_ping",
    ]);
    let o = run(&mut c);
    o.status.success().then(|| stdout(&o))
}

fn gid_of(group: &str) -> u32 {
    let o = ok(run(Command::new("getent").args(["group", group])));
    o.split(':').nth(2).unwrap().trim().parse().unwrap()
}

#[test]
fn api_socket_is_root_only_by_default() {
    let d = Daemon::start("sck");
    let m = std::fs::metadata(&d.sock).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o600, "mode {:o}", m.mode());
    assert_eq!((m.uid(), m.gid()), (0, 0));
    let gid = gid_of(GROUP).to_string();
    assert_eq!(ping_as_nobody(&d, &gid), None);
    // Root still gets in.
    assert_eq!(d.request("GET", "/_ping", None).status, 200);
}

#[test]
fn api_socket_group_gives_its_members_access() {
    let gid = gid_of(GROUP);
    let d = Daemon::start_with("sckg", &["-G", GROUP]);
    let m = std::fs::metadata(&d.sock).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o660, "mode {:o}", m.mode());
    assert_eq!((m.uid(), m.gid()), (0, gid));
    assert_eq!(
        ping_as_nobody(&d, &gid.to_string()).as_deref(),
        Some("OK"),
        "a member of {GROUP} reaches the API"
    );
    assert_eq!(ping_as_nobody(&d, ""), None, "a non-member does not");
    // Nothing of the staging directory is left beside the socket.
    let left: Vec<_> = std::fs::read_dir(d.sock.parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn unknown_group_is_a_clear_error_at_start() {
    let ns = Netns::new("sckx");
    let dir = TempDir::new("sckx");
    let sock = dir.0.join("vswitchd.sock");
    let mut cmd = Command::new(bin("vswitchd"));
    in_netns(&mut cmd, &ns.name);
    cmd.args(["-G", "no-such-group-vsw", "-H"])
        .arg(format!("unix://{}", sock.display()))
        .arg("--data-root")
        .arg(dir.0.join("data"))
        .arg("--exec-root")
        .arg(dir.0.join("exec"));
    let e = fails(run(&mut cmd));
    assert!(
        e.contains("--group: group \"no-such-group-vsw\" not found"),
        "{e}"
    );
    assert!(!sock.exists());
    assert!(!dir.0.join("data").exists(), "nothing made");
}
