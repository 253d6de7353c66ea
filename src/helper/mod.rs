//! adde's in-container roles. adde is built as a static binary and copies itself into every
//! environment at [`HELPER_PATH`](crate::protocol::HELPER_PATH), so these run even in images
//! with no shell and no coreutils. The host starts them by [`Role`]:
//!
//! - `idle`: the environment's main process, PID 1 (no Docker init): reaps orphans, ignores
//!   every signal sent from inside the container, and exits when the engine stops it.
//!   Environments with `use_image_cmd` have no idle: the image's command runs under Docker's
//!   init, so `kill 1` from inside can stop those.
//! - `run SPEC`: the supervisor of one execution. It writes the file it reads from stdin,
//!   starts the program, relays its output as frames, and at the deadline kills the program's
//!   whole process tree. It is a child subreaper, so descendants that double-fork or call
//!   setsid are re-parented to it rather than to PID 1 and cannot escape the kill; where
//!   subreapers are unsupported (gVisor), it kills the orphans its run left to PID 1 instead
//!   (see `procs::RunScope`).
//!   A background run (started by the agent for start_process, see background.rs) also
//!   announces the program's PID, and may have no deadline.
//! - `install SPEC`: installs dependencies with the package manager the image has (in a
//!   short-lived installer container).
//! - `chown USER`: gives /workspace to USER (in a short-lived container with CAP_CHOWN).
//! - `write PATH MODE`, `read PATH CAP`, `list PATH [recursive]`: files the archive API
//!   cannot reach (tmpfs mounts) or would write as the wrong user.
//! - `kill RUN_ID`: kills what a supervisor started (the host's way to stop a run early).
//! - `sweep [RUN_ID]`: kills what runs whose supervisor died left behind: every process that
//!   is neither adde's own nor part of a live execution (and run RUN_ID, supervisor included).
//! - `context LANGUAGE WORKDIR NAME`: hosts one code-interpreter context for the agent
//!   (context_host.rs; the agent's side is contexts.rs).
//! - `spare`: a supervisor the agent starts ahead of a warm Python run: it starts Python
//!   first, then reads the run's spec on stdin and supervises it as `run` does (warm.rs).
//! - `runs PLACEHOLDER`: a supervisor the agent keeps between runs: it reads run specs on
//!   stdin as `spare` does and supervises them one after another (runs.rs).
//!
//! Every role makes itself non-dumpable first, so that no process of a run can reach adde's
//! own processes through /proc or ptrace. Everything here uses only std and libc: no async
//! runtime, no engine access.

mod agent;
mod background;
mod context_host;
mod contexts;
mod files;
mod procs;
mod runs;
mod spawn;
mod title;
mod warm;

use std::ffi::OsString;
use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::protocol::{
    encode_frame, FileSpec, HelperFailure, InstallSpec, Role, RunSpec, RunStatus,
    AGENT_WORKDIR_ENV, DEPS_DIR, INSTALL_MARKER, LIST_RECURSIVE, NO_PACKAGE_MANAGER_EXIT,
    TAG_STARTED, TAG_STATUS, TAG_STDERR, TAG_STDOUT, TIMEOUT_EXIT_CODE, WRITE_OK,
};
use procs::RunScope;
use spawn::Program;

/// How long output may still arrive after the program ended or was killed.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

pub fn main(args: &[OsString]) -> ExitCode {
    // Code runs as the same user as adde's processes, so without this it could open their
    // fds (a supervisor's stdout carries the run's result), read their memory or ptrace them.
    // A non-dumpable process is out of reach of anyone without CAP_SYS_PTRACE, which every
    // environment drops. (execve resets it, so the programs adde starts stay ordinary.)
    // SAFETY: plain prctl on the calling process.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    // Helpers the agent starts inherit PID 1's blocked stop signals (it reads them from a
    // signalfd); the programs they start must get SIGINT and SIGTERM like any program.
    // SAFETY: an empty, initialised sigset; sigprocmask on the calling thread.
    unsafe {
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
    }
    let arg = |i: usize| args.get(i).and_then(|a| a.to_str()).unwrap_or("");
    let Some(role) = Role::parse(arg(2)) else {
        eprintln!("adde helper: unknown role {:?}", arg(2));
        return ExitCode::from(2);
    };
    if let Err(message) = enter_agent_workdir() {
        return match role {
            Role::Run | Role::Runs => {
                supervise_and_report(Err(message), None, || false);
                ExitCode::SUCCESS
            }
            _ => {
                eprintln!("{message}");
                ExitCode::from(127)
            }
        };
    }
    match role {
        Role::Idle => idle(),
        Role::Run => run(arg(3)),
        Role::Install => install(arg(3)),
        Role::Chown => match files::chown_workspace(arg(3)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(3)
            }
        },
        Role::Write => match files::write_stdin_to(Path::new(arg(3)), arg(4)) {
            Ok(()) => {
                println!("{WRITE_OK}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("cannot write {}: {e}", arg(3));
                ExitCode::from(1)
            }
        },
        Role::Read => {
            let cap = arg(4).parse().unwrap_or(0);
            files::read_head_and_bytes(Path::new(arg(3)), cap, &mut *raw_stdout());
            ExitCode::SUCCESS
        }
        Role::List => {
            let listing = files::list(Path::new(arg(3)), arg(4) == LIST_RECURSIVE);
            println!("{}", serde_json::to_string(&listing).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Role::Kill => {
            let killed = procs::kill_run(arg(3));
            eprintln!("adde helper: killed {killed} processes");
            ExitCode::SUCCESS
        }
        Role::Sweep => {
            println!("{}", procs::sweep(arg(3)));
            ExitCode::SUCCESS
        }
        Role::Context => context_host::serve(arg(3), arg(4), arg(5)),
        Role::Spare => spare(),
        Role::Runs => runs::serve(),
    }
}

/// Changes into the folder the agent named for this helper (see [`AGENT_WORKDIR_ENV`]); the
/// variable goes, so that the programs the helper starts do not see it.
fn enter_agent_workdir() -> Result<(), String> {
    let Some(dir) = std::env::var_os(AGENT_WORKDIR_ENV) else {
        return Ok(());
    };
    // Still one thread: nothing reads the environment concurrently.
    std::env::remove_var(AGENT_WORKDIR_ENV);
    std::env::set_current_dir(&dir).map_err(|e| {
        format!(
            "cannot start adde's helper in {}: {e}",
            dir.to_string_lossy()
        )
    })
}

/// The signals the engine may use to stop a container (`docker stop` sends SIGTERM, the one
/// adde's environments are created with; `docker kill` sends SIGKILL by default, which PID 1
/// cannot ignore from outside).
const STOP_SIGNALS: [libc::c_int; 4] = [libc::SIGTERM, libc::SIGINT, libc::SIGQUIT, libc::SIGHUP];

/// The environment's main process. As PID 1 of the container's PID namespace it gets no
/// signal from inside that it has no handler for, not even SIGKILL, so code cannot stop the
/// environment with `kill -9 -1` or `kill 1`. It waits for the stop signals on a signalfd and
/// exits (which ends every process of the container) only for one sent from outside.
fn idle() -> ExitCode {
    if std::process::id() != 1 {
        // Under Docker's init (environments made by older versions of adde): that init
        // forwards the engine's stop signal, whose default action ends this process.
        loop {
            // SAFETY: pause() only waits for a signal.
            unsafe { libc::pause() };
        }
    }
    // SAFETY: a sigset_t is plain data; sigemptyset/sigaddset initialise it.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: set is a valid sigset_t; blocking the signals makes them wait in the signalfd.
    let fd = unsafe {
        libc::sigemptyset(&mut set);
        for sig in STOP_SIGNALS.iter().chain(&[libc::SIGCHLD]) {
            libc::sigaddset(&mut set, *sig);
        }
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        libc::signalfd(-1, &set, libc::SFD_CLOEXEC)
    };
    if fd < 0 {
        eprintln!(
            "adde helper: no signalfd ({}); idling without one",
            std::io::Error::last_os_error()
        );
        loop {
            // SAFETY: pause() only waits for a signal.
            unsafe { libc::pause() };
        }
    }
    // Between signals, PID 1 is the environment's resident agent (see agent.rs).
    agent::serve(fd, || {
        reap_orphans();
        // SAFETY: signalfd_siginfo is plain data, filled by read(2) on the signalfd.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: reads at most `size` bytes into `info`.
        let read =
            unsafe { libc::read(fd, (&mut info as *mut libc::signalfd_siginfo).cast(), size) };
        read == size as isize
            && STOP_SIGNALS.contains(&(info.ssi_signo as libc::c_int))
            && sent_from_outside(&info)
    });
    ExitCode::SUCCESS
}

/// Whether a signal came from a process outside the container (the engine), whose PID the
/// container's namespace cannot name: 0. A process inside cannot fake that: the kernel lets
/// it choose the sender's PID only with a negative si_code other than SI_TKILL (sigqueue).
fn sent_from_outside(info: &libc::signalfd_siginfo) -> bool {
    info.ssi_pid == 0 && matches!(info.ssi_code, libc::SI_USER | libc::SI_TKILL)
}

/// Reaps every child that has ended: as PID 1, the orphans of the whole container.
fn reap_orphans() {
    // SAFETY: waitpid with WNOHANG never blocks; a null status pointer is allowed.
    while unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
}

fn run(spec: &str) -> ExitCode {
    let spec = serde_json::from_str::<RunSpec>(spec).map_err(|e| format!("bad run spec: {e}"));
    supervise_and_report(spec, None, || false);
    ExitCode::SUCCESS
}

/// The `spare` role: Python first, then the run it is handed.
fn spare() -> ExitCode {
    let python = warm::WarmPython::start();
    if let Some(spec) = warm::read_spec() {
        supervise_and_report(spec, python, || false);
    }
    // Otherwise it was not wanted after all: the interpreter ends with the closed socket.
    ExitCode::SUCCESS
}

/// Supervises a run and writes its status, which says whether the supervisor `stays` for
/// another (asked once the run is over).
fn supervise_and_report(
    spec: Result<RunSpec, String>,
    python: Option<warm::WarmPython>,
    stays: impl FnOnce() -> bool,
) {
    let mut out = raw_stdout();
    let mut status = match spec {
        Ok(spec) => supervise(&spec, &mut *out, python),
        Err(message) => setup_failure(message),
    };
    status.stays = stays();
    let status = serde_json::to_vec(&status).unwrap_or_default();
    let _ = (*out).write_all(&encode_frame(TAG_STATUS, &status));
}

/// A poll(2) entry that waits for `fd` to be readable.
pub(super) fn pollfd(fd: i32) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

/// Unbuffered stdout: each frame goes out in one write.
fn raw_stdout() -> std::mem::ManuallyDrop<fs::File> {
    // SAFETY: fd 1 is open for the life of the process; ManuallyDrop never closes it.
    std::mem::ManuallyDrop::new(unsafe { fs::File::from_raw_fd(1) })
}

fn setup_failure(message: String) -> RunStatus {
    RunStatus {
        exit_code: -1,
        error: Some(HelperFailure::Setup { message }),
        ..RunStatus::default()
    }
}

/// Runs a spec's program and relays it; `python`, an interpreter started ahead of the run,
/// runs it instead when the spec allows a warm run and it is the program the run would start.
fn supervise(spec: &RunSpec, out: &mut impl Write, python: Option<warm::WarmPython>) -> RunStatus {
    if let Some(file) = &spec.file {
        if let Err(e) = write_code_file(file) {
            return setup_failure(format!("cannot write {}: {e}", file.path));
        }
    }
    let Some(argv) = spec
        .candidates
        .iter()
        .find(|argv| argv.first().is_some_and(|p| find_program(p).is_some()))
    else {
        let tried = spec.candidates.iter().filter_map(|c| c.first().cloned());
        return RunStatus {
            exit_code: -1,
            error: Some(HelperFailure::InterpreterNotFound {
                tried: tried.collect(),
            }),
            ..RunStatus::default()
        };
    };

    let scope = Arc::new(RunScope::claim());
    let oom_before = oom_kill_count();
    let started = Instant::now();
    let warm_allowed = spec.warm && spec.stdin_len == 0 && !spec.background;
    let warm_child = python.and_then(|python| match warm_allowed {
        true => python.run(argv),
        false => python.run(&[]),
    });
    let warm = warm_child.is_some();
    let spawned = match warm_child {
        Some(child) => Ok(child),
        None => {
            let args: Vec<&str> = argv[1..].iter().map(String::as_str).collect();
            Program::spawn(&argv[0], &args, spec.stdin_len > 0, None)
        }
    };
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => return setup_failure(format!("cannot start {}: {e}", argv[0])),
    };

    if spec.background {
        let _ = out.write_all(&encode_frame(
            TAG_STARTED,
            child.id().to_string().as_bytes(),
        ));
    }
    if let Some(mut input) = child.stdin.take() {
        // Fed from a thread: a program that reads slowly (or never) cannot stall the relay.
        let len = spec.stdin_len;
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin().lock().take(len), &mut input);
        });
    }
    let deadline = (!spec.background || spec.timeout_ms > 0)
        .then(|| started.checked_add(Duration::from_millis(spec.timeout_ms)))
        .flatten();
    let (exit, duration, timed_out) = relay_until_done(&mut child, &scope, started, deadline, out);
    // The kernel may kill any process of the run (a child, not the program itself), so the
    // cgroup's OOM-kill count is the evidence, not how the program ended.
    let oom_killed = matches!((oom_before, oom_kill_count()), (Some(a), Some(b)) if b > a);
    let (exit_code, signal) = if timed_out {
        (TIMEOUT_EXIT_CODE, Some(signal_name(libc::SIGKILL)))
    } else if let Some(code) = exit.code() {
        (i64::from(code), None)
    } else {
        let sig = exit.signal().unwrap_or(0);
        (128 + i64::from(sig), Some(signal_name(sig)))
    };
    RunStatus {
        exit_code,
        signal,
        timed_out,
        oom_killed,
        duration_ms: duration.as_millis() as u64,
        command: argv.clone(),
        error: None,
        warm,
        stays: false,
    }
}

fn write_code_file(spec: &FileSpec) -> std::io::Result<()> {
    let mut content = Vec::with_capacity(spec.len as usize);
    std::io::stdin()
        .lock()
        .take(spec.len)
        .read_to_end(&mut content)?;
    if content.len() as u64 != spec.len {
        return Err(std::io::Error::other(
            "stdin ended before the whole file arrived",
        ));
    }
    let mode = spec.executable.then_some(0o755);
    files::write_plain(Path::new(&spec.path), &mut content.as_slice(), mode)
}

/// Relays the program's output until it has exited and its pipes are drained. Processes it
/// leaves behind when it exits are killed: an execution owns everything it started. Returns
/// how it ended, when, and whether the deadline (if it has one) killed it.
fn relay_until_done(
    child: &mut Program,
    scope: &Arc<RunScope>,
    started: Instant,
    deadline: Option<Instant>,
    out: &mut impl Write,
) -> (ExitStatus, Duration, bool) {
    let watchdog = deadline.map(|deadline| Watchdog::start(scope.clone(), deadline, child.id()));
    let timed_out = || watchdog.as_ref().is_some_and(Watchdog::fired);
    let mut pipes: Vec<(u8, fs::File)> = Vec::with_capacity(2);
    if let Some(stdout) = child.stdout.take() {
        pipes.push((TAG_STDOUT, stdout));
    }
    if let Some(stderr) = child.stderr.take() {
        pipes.push((TAG_STDERR, stderr));
    }
    // SAFETY: pidfd_open returns a new fd or -1; it becomes readable when the child exits.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, child.id(), 0) } as i32;
    let mut ended: Option<(ExitStatus, Duration, bool)> = None;
    let mut drain_deadline = Instant::now();
    let mut buf = vec![0u8; 64 * 1024];

    loop {
        let now = Instant::now();
        if ended.is_none() {
            if let Ok(Some(status)) = child.try_wait() {
                ended = Some((status, started.elapsed(), timed_out()));
                scope.kill(None);
                drain_deadline = now + DRAIN_GRACE;
            }
        }
        if let Some(ending) = ended {
            if pipes.is_empty() || now >= drain_deadline {
                return ending;
            }
        }
        let mut fds: Vec<libc::pollfd> = pipes.iter().map(|(_, f)| pollfd(f.as_raw_fd())).collect();
        if ended.is_none() && pidfd >= 0 {
            fds.push(pollfd(pidfd));
        }
        // Without a pidfd (old kernels) fall back to checking the child every 20 ms.
        let timeout_ms = match ended {
            Some(_) => drain_deadline.saturating_duration_since(now).as_millis() as i32,
            None if pidfd < 0 => 20,
            None => -1,
        };
        // SAFETY: fds is a valid array of pollfd for its length.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
        if ready <= 0 {
            continue;
        }
        let mut closed = Vec::new();
        for (i, (tag, pipe)) in pipes.iter_mut().enumerate() {
            if fds[i].revents == 0 {
                continue;
            }
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => closed.push(i),
                Ok(n) => {
                    if out.write_all(&encode_frame(*tag, &buf[..n])).is_err() {
                        // The host is gone: nobody will read the result, stop everything.
                        scope.kill(None);
                        std::process::exit(1);
                    }
                }
            }
        }
        for i in closed.into_iter().rev() {
            pipes.remove(i);
        }
    }
}

/// Kills the run's processes at the deadline from a thread of its own, so that the deadline
/// holds even while relaying blocks (a host that stopped reading). `keep` is the main child,
/// whose status the relay collects. Dropped, it stands down and is joined: a supervisor that
/// takes another run must not have the last run's deadline fire into it.
struct Watchdog {
    fired: Arc<AtomicBool>,
    stand_down: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    fn start(scope: Arc<RunScope>, deadline: Instant, keep: u32) -> Watchdog {
        let fired = Arc::new(AtomicBool::new(false));
        let flag = fired.clone();
        let (stand_down, told) = channel::<()>();
        let thread = std::thread::spawn(move || {
            let wait = deadline.saturating_duration_since(Instant::now());
            if let Err(RecvTimeoutError::Timeout) = told.recv_timeout(wait) {
                flag.store(true, Ordering::SeqCst);
                scope.kill(Some(keep));
            }
        });
        Watchdog {
            fired,
            stand_down: Some(stand_down),
            thread: Some(thread),
        }
    }

    fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        drop(self.stand_down.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The memory cgroup's count of OOM kills (cgroup v2, then v1), when it can be read.
fn oom_kill_count() -> Option<u64> {
    [
        "/sys/fs/cgroup/memory.events",
        "/sys/fs/cgroup/memory/memory.oom_control",
    ]
    .iter()
    .find_map(|path| {
        let text = fs::read_to_string(path).ok()?;
        text.lines()
            .find_map(|line| line.strip_prefix("oom_kill "))
            .and_then(|n| n.trim().parse().ok())
    })
}

fn signal_name(sig: i32) -> String {
    let name = match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        _ => return format!("SIG{sig}"),
    };
    name.to_string()
}

/// The program a command name resolves to, looked up in PATH like execvp does.
pub(super) fn find_program(name: &str) -> Option<PathBuf> {
    let executable = |p: &Path| {
        fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if name.contains('/') {
        let path = PathBuf::from(name);
        return executable(&path).then_some(path);
    }
    let path = std::env::var("PATH")
        .unwrap_or_else(|_| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    path.split(':')
        .map(|dir| Path::new(dir).join(name))
        .find(|p| executable(p))
}

fn install(spec: &str) -> ExitCode {
    let spec: InstallSpec = match serde_json::from_str(spec) {
        Ok(spec) => spec,
        Err(e) => {
            eprintln!("adde helper: bad install spec: {e}");
            return ExitCode::from(2);
        }
    };
    let Some((manager, mut argv)) = installer_command(spec.manager.as_deref()) else {
        eprintln!("{INSTALL_MARKER}none");
        return ExitCode::from(NO_PACKAGE_MANAGER_EXIT);
    };
    eprintln!("{INSTALL_MARKER}{manager}");
    argv.push("--".into());
    argv.extend(spec.packages);
    let err = Command::new(&argv[0]).args(&argv[1..]).exec();
    eprintln!("adde helper: cannot start {}: {err}", argv[0]);
    ExitCode::from(NO_PACKAGE_MANAGER_EXIT)
}

/// The install command for the first package manager the image has: pip (through the
/// image's Python), then npm. `wanted` restricts the choice.
fn installer_command(wanted: Option<&str>) -> Option<(&'static str, Vec<String>)> {
    let pip = || {
        ["python3", "python"].iter().find_map(|py| {
            let python = find_program(py)?;
            let has_pip = Command::new(&python)
                .args(["-m", "pip", "--version"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            has_pip.then(|| {
                let target = format!("{DEPS_DIR}/python");
                let args = [
                    "-m",
                    "pip",
                    "install",
                    "--no-cache-dir",
                    "--disable-pip-version-check",
                    "--no-input",
                    "--target",
                    &target,
                ];
                let mut argv = vec![python.display().to_string()];
                argv.extend(args.iter().map(|s| s.to_string()));
                ("pip", argv)
            })
        })
    };
    let npm = || {
        let npm = find_program("npm")?;
        let prefix = format!("{DEPS_DIR}/node");
        let args = ["install", "--no-audit", "--no-fund", "--prefix", &prefix];
        let mut argv = vec![npm.display().to_string()];
        argv.extend(args.iter().map(|s| s.to_string()));
        Some(("npm", argv))
    };
    match wanted {
        Some("pip") => pip(),
        Some("npm") => npm(),
        _ => pip().or_else(npm),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names_are_conventional() {
        assert_eq!(signal_name(libc::SIGKILL), "SIGKILL");
        assert_eq!(signal_name(libc::SIGSEGV), "SIGSEGV");
        assert_eq!(signal_name(64), "SIG64");
    }
}
