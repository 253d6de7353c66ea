//! adde: run AI agents' code safely in hardened Docker containers.
//!
//! The binary is a thin `main` over [`main`]. The library exists so that fuzz targets and
//! property tests reach the same parsers the binary uses.

mod admission;
mod call;
pub mod capture;
mod cli;
pub mod context;
pub mod dockerfile;
mod engine;
pub mod error;
mod helper;
mod history;
mod ids;
mod mcp;
mod paths;
pub mod policy;
pub mod protocol;
pub mod refs;
mod serve;
mod state;
pub mod tools;

use std::process::ExitCode;

/// adde's entry point: the CLI, or, inside an environment, the helper role.
pub fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // The same static binary is adde's helper inside every environment it creates.
    if args.get(1).is_some_and(|a| a == protocol::HELPER_FLAG) {
        return helper::main(&args);
    }
    // A detached process refilling a warm pool after a claim (see tools/pools.rs).
    if args.get(1).is_some_and(|a| a == tools::pools::REFILL_FLAG) {
        let pool = args.get(2).and_then(|a| a.to_str()).unwrap_or("");
        return tools::pools::refill_main(pool);
    }
    // A detached process making connections to a remote engine ahead of calls (engine/keeper.rs).
    if args.get(1).is_some_and(|a| a == engine::KEEPER_FLAG) {
        return engine::keeper_main();
    }
    cli::main(args)
}

/// Starts adde with `args` detached (its own session, no terminal, no inherited output), so
/// that the caller neither waits for it nor takes it along when interrupted.
fn spawn_detached(args: &[&str]) {
    use std::os::unix::process::CommandExt;
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut command = std::process::Command::new(exe);
    command
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: setsid is async-signal-safe: the process outlives the caller's terminal and
    // process group (Ctrl-C of the caller does not stop it).
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let _ = command.spawn();
}
