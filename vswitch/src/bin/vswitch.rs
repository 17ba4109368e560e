//! `vswitch`: command-line client of `vswitchd` (docker-compatible `network` commands).

fn main() {
    std::process::exit(vswitch::cli::main());
}
