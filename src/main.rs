//! adde: run AI agents' code safely in hardened Docker containers.

mod capture;
mod cli;
mod context;
mod dockerfile;
mod engine;
mod error;
mod helper;
mod history;
mod ids;
mod paths;
mod protocol;
mod tools;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // The same static binary is adde's helper inside every environment it creates.
    if args.get(1).is_some_and(|a| a == protocol::HELPER_FLAG) {
        return helper::main(&args);
    }
    cli::main(args)
}
