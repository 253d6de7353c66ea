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

/// Starts adde with `args` detached (its own session, no terminal, none of the caller's open
/// files), so that the caller neither waits for it nor takes it along when interrupted, and
/// a pipe the caller was given (a shell's `3>&1 | wc`, a test harness's) ends with the caller.
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
    // SAFETY: setsid, close_range, getrlimit and fcntl are async-signal-safe. setsid: the
    // process outlives the caller's terminal and process group (Ctrl-C of the caller does not
    // stop it). Every descriptor above stderr is closed at exec (close-on-exec rather than
    // closed here: the standard library's own exec-error pipe is among them).
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
            let all = libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            );
            if all != 0 {
                // Kernels before 5.11: each one up to the limit.
                let mut limit = std::mem::zeroed::<libc::rlimit>();
                libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
                for fd in 3..limit.rlim_cur.min(1 << 20) as i32 {
                    libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
                }
            }
            Ok(())
        });
    }
    let _ = command.spawn();
}
