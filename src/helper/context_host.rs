//! The `context` role: one code-interpreter context, started and kept by the agent (see
//! contexts.rs). It keeps an interpreter running between calls (a Python driver, or a shell)
//! and runs the cells the agent forwards, one at a time, in the order they came.
//!
//! It is a child subreaper and non-dumpable, like every helper. The interpreter gets three
//! socketpairs (stdout, stderr, and fd 3 for cells and their reports): no path in the
//! filesystem, and a socket cannot be opened through /proc/PID/fd, so no other process of the
//! environment can reach them. The Python driver makes itself non-dumpable before it reads a
//! cell. When a cell ends, what it started is killed (the interpreter stays); at its timeout
//! the cell is interrupted (SIGINT), and if it has not ended `INTERRUPT_GRACE` later, every
//! process of the context is killed and the interpreter started afresh.
//!
//! On its stdin and stdout it speaks agent frames: `ContextRequest`/`ContextRequestEnd` and
//! `ContextCancel` in; `Stdout`, `Stderr`, `ContextReply` and `End` out, named by request.

use std::collections::{HashMap, VecDeque};
use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::procs::{kill_tree, kill_tree_except, signal_tree};
use super::{find_program, pollfd, signal_name};
use crate::protocol::{
    encode_agent_frames, AgentDecoder, AgentKind, Cell, CellOutcome, ContextInfo, ContextRefusal,
    ContextReply, ContextRequest, Language,
};

const DRIVER: &str = include_str!("context_driver.py");
const SHELL_DRIVER: &str = include_str!("context_shell.sh");
/// What `python3 -c` runs: reads the driver from fd 3, up to its end marker, and runs it.
const BOOT: &str = "import os\nb=b''\nwhile not b.endswith(b'\\n#adde-driver-end\\n'):\n    c=os.read(3,65536)\n    if not c: raise SystemExit(0)\n    b+=c\nexec(compile(b,'<adde-driver>','exec'))\n";
const DRIVER_END: &str = "\n#adde-driver-end\n";
/// How long an interpreter may take to say it is ready (a loaded 0.5-CPU environment).
const START_LIMIT: Duration = Duration::from_secs(30);
/// How long an interrupted cell may take to end before the context is killed and restarted.
pub const INTERRUPT_GRACE: Duration = Duration::from_secs(2);
/// The most a report line may carry beyond the cell's own result budget.
const REPORT_SLACK: usize = 1024 * 1024;

pub fn serve(language: &str, workdir: &str, name: &str) -> ExitCode {
    let Some(language) = Language::parse(language) else {
        eprintln!("adde helper: no context language {language:?}");
        return ExitCode::from(2);
    };
    // SAFETY: plain prctl; what a cell double-forks stays in this process's tree.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let mut host = Host {
        language,
        workdir: workdir.to_string(),
        name: name.to_string(),
        interp: None,
        queue: VecDeque::new(),
        current: None,
        count: 0,
        restarted: None,
        requests: HashMap::new(),
        input: AgentDecoder::default(),
        // SAFETY: fd 1 is this process's stdout (a pipe to the agent) for its whole life.
        out: std::mem::ManuallyDrop::new(unsafe { fs::File::from_raw_fd(1) }),
        // SAFETY: fd 0 is this process's stdin (a pipe from the agent) for its whole life.
        stdin: std::mem::ManuallyDrop::new(unsafe { fs::File::from_raw_fd(0) }),
        started_once: false,
        closing: false,
    };
    host.serve();
    kill_tree(std::process::id(), None);
    ExitCode::SUCCESS
}

/// The running interpreter and its ends of the socketpairs.
struct Interpreter {
    child: Child,
    pidfd: Option<OwnedFd>,
    control: UnixStream,
    stdout: Option<UnixStream>,
    stderr: Option<UnixStream>,
    /// Bytes of fd 3 not yet a whole line.
    pending: Vec<u8>,
    name: String,
}

/// The cell being run.
struct Current {
    request: u64,
    cell: Cell,
    count: u64,
    started: Instant,
    deadline: Instant,
    interrupted: Option<Instant>,
    timed_out: bool,
    /// Why the context restarted before this cell ran (its interpreter had died).
    restarted_before: Option<String>,
}

struct Host {
    language: Language,
    workdir: String,
    name: String,
    interp: Option<Interpreter>,
    queue: VecDeque<(u64, Cell)>,
    current: Option<Current>,
    /// Cells run since the interpreter (re)started.
    count: u64,
    /// The interpreter died between cells: why (said with the next cell).
    restarted: Option<String>,
    /// Requests still arriving, by id.
    requests: HashMap<u64, Vec<u8>>,
    input: AgentDecoder,
    out: std::mem::ManuallyDrop<fs::File>,
    stdin: std::mem::ManuallyDrop<fs::File>,
    /// An interpreter ran once: a killed one is started again.
    started_once: bool,
    closing: bool,
}

/// What poll() found ready.
#[derive(Default)]
struct Ready {
    input: bool,
    stdout: bool,
    stderr: bool,
    control: bool,
    exited: bool,
}

impl Host {
    fn serve(&mut self) {
        let mut buf = vec![0u8; 64 * 1024];
        while !self.closing {
            self.check_timers();
            // A killed context comes back at once, so that its next cell does not wait.
            if self.interp.is_none()
                && self.current.is_none()
                && self.count == 0
                && self.started_once
            {
                self.ensure_started(0);
            }
            if self.current.is_none() {
                self.start_next();
                if self.closing {
                    return;
                }
            }
            let ready = self.wait();
            if ready.input {
                match self.stdin.read(&mut buf) {
                    // The agent is gone (the environment is stopping): nothing to serve.
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        self.input.push(&buf[..n]);
                        while let Some(frame) = self.input.next_frame() {
                            if let Ok(frame) = frame {
                                self.on_frame(frame.kind, frame.request, frame.payload);
                            }
                        }
                    }
                }
            }
            if ready.stdout {
                self.relay(AgentKind::Stdout, &mut buf);
            }
            if ready.stderr {
                self.relay(AgentKind::Stderr, &mut buf);
            }
            if ready.control {
                self.read_control(&mut buf);
            }
            if ready.exited {
                self.on_exit();
            }
        }
    }

    /// Waits for input, output, a report, the interpreter's end or the next timer.
    fn wait(&self) -> Ready {
        let mut fds = vec![pollfd(0)];
        let mut slots = Vec::new();
        if let Some(interp) = &self.interp {
            for (slot, fd) in [
                (1, interp.stdout.as_ref().map(|s| s.as_raw_fd())),
                (2, interp.stderr.as_ref().map(|s| s.as_raw_fd())),
                (3, Some(interp.control.as_raw_fd())),
                (4, interp.pidfd.as_ref().map(|f| f.as_raw_fd())),
            ] {
                if let Some(fd) = fd {
                    fds.push(pollfd(fd));
                    slots.push(slot);
                }
            }
        }
        let timeout = match &self.current {
            Some(cur) => {
                let next = cur
                    .interrupted
                    .map_or(cur.deadline, |at| at + INTERRUPT_GRACE);
                next.saturating_duration_since(Instant::now()).as_millis() as i32 + 1
            }
            // Without a pidfd (old kernels), the interpreter is checked every 200 ms.
            None if self.interp.as_ref().is_some_and(|i| i.pidfd.is_none()) => 200,
            None => -1,
        };
        // SAFETY: fds is a valid array of pollfd for its length.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        let mut ready = Ready::default();
        if n <= 0 {
            ready.exited = self.interp.as_ref().is_some_and(|i| i.pidfd.is_none());
            return ready;
        }
        ready.input = fds[0].revents != 0;
        for (i, slot) in slots.iter().enumerate() {
            if fds[i + 1].revents == 0 {
                continue;
            }
            match slot {
                1 => ready.stdout = true,
                2 => ready.stderr = true,
                3 => ready.control = true,
                _ => ready.exited = true,
            }
        }
        ready
    }

    fn on_frame(&mut self, kind: AgentKind, request: u64, payload: Vec<u8>) {
        match kind {
            AgentKind::ContextRequest => {
                self.requests.entry(request).or_default().extend(payload);
            }
            AgentKind::ContextRequestEnd => {
                let mut body = self.requests.remove(&request).unwrap_or_default();
                body.extend(payload);
                match serde_json::from_slice::<ContextRequest>(&body) {
                    Ok(req) => self.on_request(request, req),
                    Err(e) => self.refuse(request, format!("bad context request: {e}")),
                }
            }
            AgentKind::ContextCancel => self.cancel(request),
            _ => {}
        }
    }

    fn on_request(&mut self, request: u64, req: ContextRequest) {
        match req {
            ContextRequest::Create { .. } => {
                if self.ensure_started(request) {
                    let info = self.info();
                    self.reply(request, &ContextReply::Context(info));
                }
            }
            ContextRequest::Run { cell, .. } => self.queue.push_back((request, cell)),
            ContextRequest::Reset { .. } => {
                self.kill_everything("the context was reset (context_reset)");
                self.count = 0;
                self.restarted = None;
                if self.ensure_started(request) {
                    let info = self.info();
                    self.reply(request, &ContextReply::Context(info));
                }
            }
            ContextRequest::Close { .. } => {
                self.kill_everything("the context was closed (context_close)");
                for (queued, _) in std::mem::take(&mut self.queue) {
                    self.refuse(queued, "the context was closed (context_close)".into());
                }
                self.reply(request, &ContextReply::Closed);
                self.closing = true;
            }
            // The agent answers lists itself.
            ContextRequest::List => self.refuse(request, "not a context's request".into()),
        }
    }

    fn info(&self) -> ContextInfo {
        ContextInfo {
            name: self.name.clone(),
            language: self.language,
            interpreter: self
                .interp
                .as_ref()
                .map_or_else(String::new, |i| i.name.clone()),
            execution_count: self.count,
            busy: self.current.is_some() || !self.queue.is_empty(),
        }
    }

    /// Starts the interpreter when there is none; refuses `request` (and everything queued,
    /// and ends this context) when it cannot start.
    fn ensure_started(&mut self, request: u64) -> bool {
        if self.interp.is_some() {
            return true;
        }
        match start(self.language, &self.workdir) {
            Ok(interp) => {
                self.interp = Some(interp);
                self.started_once = true;
                true
            }
            Err(refusal) => {
                self.reply(request, &ContextReply::Refused(refusal.clone()));
                for (queued, _) in std::mem::take(&mut self.queue) {
                    self.reply(queued, &ContextReply::Refused(refusal.clone()));
                }
                self.closing = true;
                false
            }
        }
    }

    fn start_next(&mut self) {
        let Some((request, cell)) = self.queue.pop_front() else {
            return;
        };
        if !self.ensure_started(request) {
            return;
        }
        self.count += 1;
        let now = Instant::now();
        let written = {
            let interp = self.interp.as_mut().expect("started");
            interp.pending.clear();
            write_cell(self.language, interp, &cell, self.count)
        };
        self.current = Some(Current {
            request,
            deadline: now + Duration::from_millis(cell.timeout_ms),
            cell,
            count: self.count,
            started: now,
            interrupted: None,
            timed_out: false,
            restarted_before: self.restarted.take(),
        });
        if let Err(e) = written {
            self.restart_during_cell(format!("the interpreter stopped reading cells: {e}"));
        }
    }

    fn check_timers(&mut self) {
        let Some(cur) = &self.current else { return };
        let now = Instant::now();
        let overdue = match cur.interrupted {
            None => {
                if now >= cur.deadline {
                    self.interrupt(true);
                }
                return;
            }
            Some(at) => now >= at + INTERRUPT_GRACE,
        };
        if !overdue {
            return;
        }
        let why = if cur.timed_out {
            format!(
                "the cell ran past its {:.1} s timeout and did not stop within {} s of SIGINT",
                cur.cell.timeout_ms as f64 / 1000.0,
                INTERRUPT_GRACE.as_secs()
            )
        } else {
            format!(
                "the cell was cancelled and did not stop within {} s of SIGINT",
                INTERRUPT_GRACE.as_secs()
            )
        };
        self.restart_during_cell(why);
    }

    /// SIGINT to the interpreter and everything the cell started: Python raises
    /// KeyboardInterrupt, a shell ends the cell with status 130.
    fn interrupt(&mut self, timed_out: bool) {
        let Some(cur) = &mut self.current else { return };
        if cur.interrupted.is_some() {
            return;
        }
        cur.interrupted = Some(Instant::now());
        cur.timed_out = timed_out;
        signal_tree(std::process::id(), libc::SIGINT);
    }

    fn cancel(&mut self, request: u64) {
        if self.current.as_ref().is_some_and(|c| c.request == request) {
            self.interrupt(false);
        } else if let Some(at) = self.queue.iter().position(|(r, _)| *r == request) {
            self.queue.remove(at);
            self.refuse(request, "cancelled before it ran".into());
        }
    }

    /// Forwards what the interpreter printed to the cell that runs (or drops it).
    fn relay(&mut self, kind: AgentKind, buf: &mut [u8]) {
        let Some(interp) = &mut self.interp else {
            return;
        };
        let stream = if kind == AgentKind::Stdout {
            &mut interp.stdout
        } else {
            &mut interp.stderr
        };
        let Some(socket) = stream else { return };
        match socket.read(buf) {
            Ok(0) | Err(_) => *stream = None,
            Ok(n) => {
                if let Some(cur) = &self.current {
                    let frames = encode_agent_frames(kind, cur.request, &buf[..n]);
                    write_frames(&mut self.out, frames);
                }
            }
        }
    }

    /// Forwards what is already in the output sockets, without waiting.
    fn drain(&mut self, buf: &mut [u8]) {
        for kind in [AgentKind::Stdout, AgentKind::Stderr] {
            loop {
                let fd = self.interp.as_ref().and_then(|i| {
                    let s = if kind == AgentKind::Stdout {
                        &i.stdout
                    } else {
                        &i.stderr
                    };
                    s.as_ref().map(|s| s.as_raw_fd())
                });
                let Some(fd) = fd else { break };
                let mut probe = [pollfd(fd)];
                // SAFETY: one valid pollfd; a zero timeout never blocks.
                if unsafe { libc::poll(probe.as_mut_ptr(), 1, 0) } <= 0 {
                    break;
                }
                self.relay(kind, buf);
            }
        }
    }

    fn read_control(&mut self, buf: &mut [u8]) {
        let n = match &mut self.interp {
            Some(interp) => interp.control.read(buf).unwrap_or(0),
            None => return,
        };
        if n == 0 {
            // The interpreter closed its end: it is ending, or a cell closed fd 3.
            self.on_exit();
            return;
        }
        if let Some(interp) = &mut self.interp {
            interp.pending.extend_from_slice(&buf[..n]);
        }
        loop {
            let line: Vec<u8> = {
                let Some(interp) = &mut self.interp else {
                    return;
                };
                let Some(at) = interp.pending.iter().position(|&b| b == b'\n') else {
                    break;
                };
                interp.pending.drain(..=at).collect()
            };
            if let Some(outcome) = self.parse_report(&line) {
                self.finish(outcome, buf);
                return;
            }
        }
        let limit = self.current.as_ref().map_or(REPORT_SLACK, |c| {
            c.cell.max_results_bytes as usize + REPORT_SLACK
        });
        if self
            .interp
            .as_ref()
            .is_some_and(|i| i.pending.len() > limit)
        {
            self.restart_during_cell(format!("the interpreter's report was over {limit} bytes"));
        }
    }

    /// A report line of the running cell, as an outcome; anything else is ignored (a cell may
    /// write on fd 3 about itself, never about another context).
    fn parse_report(&self, line: &[u8]) -> Option<CellOutcome> {
        let cur = self.current.as_ref()?;
        let text = String::from_utf8_lossy(line);
        match self.language {
            Language::Bash => {
                let status: i64 = text.trim().strip_prefix("done ")?.parse().ok()?;
                let error = (status != 0).then(
                    || json!({"name": "ExitStatus", "value": format!("exit status {status}")}),
                );
                Some(CellOutcome {
                    exit_code: Some(status),
                    error,
                    ..CellOutcome::default()
                })
            }
            Language::Python => {
                let report: Value = serde_json::from_str(text.trim()).ok()?;
                if report["id"].as_u64() != Some(cur.count) {
                    return None;
                }
                let results = report["results"]
                    .as_array()
                    .map(|r| r.iter().filter(|v| v.is_object()).cloned().collect())
                    .unwrap_or_default();
                let error = report["error"].as_object().map(|e| {
                    let field = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                    json!({"name": field("name"), "value": field("value"), "traceback": field("traceback")})
                });
                Some(CellOutcome {
                    results,
                    error,
                    results_truncated: report["results_truncated"] == true,
                    ..CellOutcome::default()
                })
            }
        }
    }

    /// The running cell has its outcome: what it started is killed, its last output relayed,
    /// and its reply sent.
    fn finish(&mut self, mut outcome: CellOutcome, buf: &mut [u8]) {
        match &self.interp {
            Some(interp) => {
                kill_tree_except(std::process::id(), interp.child.id());
            }
            None => {
                kill_tree(std::process::id(), None);
            }
        }
        self.drain(buf);
        let Some(cur) = self.current.take() else {
            return;
        };
        outcome.execution_count = cur.count;
        outcome.duration_ms = cur.started.elapsed().as_millis() as u64;
        outcome.timed_out = cur.timed_out;
        outcome.interrupted = cur.interrupted.is_some();
        outcome.interpreter = self
            .interp
            .as_ref()
            .map_or_else(String::new, |i| i.name.clone());
        if !outcome.context_restarted {
            if let Some(reason) = cur.restarted_before {
                outcome.context_restarted = true;
                outcome.restart_reason = Some(format!("before this cell ran: {reason}"));
            }
        }
        self.reply(cur.request, &ContextReply::Ran(outcome));
    }

    /// The interpreter ended (or closed its reports).
    fn on_exit(&mut self) {
        let Some(interp) = &mut self.interp else {
            return;
        };
        match interp.child.try_wait() {
            Ok(None) if interp.pidfd.is_none() => return,
            _ => {}
        }
        let status = interp.child.try_wait().ok().flatten();
        let how = match status {
            Some(s) if s.code().is_some() => format!("exit status {}", s.code().unwrap_or(0)),
            Some(s) => format!("killed by {}", signal_name(s.signal().unwrap_or(0))),
            None => "it closed its reports".to_string(),
        };
        let reason =
            format!("the interpreter ended ({how}); a fresh one starts with the next cell");
        if self.current.is_some() {
            self.restart_during_cell(reason);
        } else {
            self.kill_everything(&reason);
            self.restarted = Some(reason);
            self.count = 0;
        }
    }

    /// Kills every process of the context, ends the running cell with `reason`, and leaves
    /// the interpreter to be started afresh.
    fn restart_during_cell(&mut self, reason: String) {
        self.kill_everything(&reason);
        self.count = 0;
    }

    /// Kills the interpreter and everything else of the context; a cell that runs ends
    /// with `context_restarted` and `reason`.
    fn kill_everything(&mut self, reason: &str) {
        kill_tree(std::process::id(), None);
        let mut buf = vec![0u8; 64 * 1024];
        self.drain(&mut buf);
        if let Some(mut interp) = self.interp.take() {
            let _ = interp.child.wait();
        }
        if self.current.is_some() {
            let outcome = CellOutcome {
                error: Some(json!({"name": "ContextRestarted", "value": reason, "traceback": ""})),
                context_restarted: true,
                restart_reason: Some(reason.to_string()),
                ..CellOutcome::default()
            };
            self.finish(outcome, &mut buf);
        }
    }

    fn refuse(&mut self, request: u64, message: String) {
        self.reply(
            request,
            &ContextReply::Refused(ContextRefusal::Failed { message }),
        );
    }

    fn reply(&mut self, request: u64, reply: &ContextReply) {
        let body = serde_json::to_vec(reply).unwrap_or_default();
        let frames = encode_agent_frames(AgentKind::ContextReply, request, &body)
            .into_iter()
            .chain(encode_agent_frames(AgentKind::End, request, &[]));
        write_frames(&mut self.out, frames.collect());
    }
}

fn write_frames(out: &mut fs::File, frames: Vec<Vec<u8>>) {
    for frame in frames {
        // The agent is gone: nobody will read; the stdin EOF ends this host.
        if out.write_all(&frame).is_err() {
            return;
        }
    }
}

/// Sends a cell to the interpreter: Python gets one line of JSON, a shell the cell's lines
/// between two copies of a random marker that no line of the cell is.
fn write_cell(
    language: Language,
    interp: &mut Interpreter,
    cell: &Cell,
    count: u64,
) -> std::io::Result<()> {
    let message = match language {
        Language::Python => {
            let request = json!({
                "id": count,
                "execution_count": count,
                "code": cell.code,
                "svg": cell.svg,
                "output_dir": cell.output_dir,
                "max_output_bytes": cell.max_output_bytes,
                "max_results_bytes": cell.max_results_bytes,
            });
            format!("{request}\n")
        }
        Language::Bash => {
            let marker = loop {
                let marker = format!("__adde_end_{}", crate::ids::random_hex(16));
                if !cell.code.lines().any(|l| l == marker) {
                    break marker;
                }
            };
            let mut code = cell.code.clone();
            if !code.is_empty() && !code.ends_with('\n') {
                code.push('\n');
            }
            format!("{marker}\n{code}{marker}\n")
        }
    };
    interp.control.write_all(message.as_bytes())
}

/// Starts the interpreter of a context and waits until it says it is ready.
fn start(language: Language, workdir: &str) -> Result<Interpreter, ContextRefusal> {
    // Without its comments: the script is the shell's command line, which `ps` shows.
    let shell_driver: String = SHELL_DRIVER
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .map(|line| format!("{line}\n"))
        .collect();
    let (candidates, args): (&[&str], Vec<&str>) = match language {
        Language::Python => (&["python3", "python"], vec!["-u", "-c", BOOT]),
        Language::Bash => (&["bash", "sh"], vec!["-c", &shell_driver]),
    };
    let Some((program, path)) = candidates
        .iter()
        .find_map(|p| find_program(p).map(|path| (*p, path)))
    else {
        return Err(ContextRefusal::NoInterpreter {
            tried: candidates.iter().map(|c| c.to_string()).collect(),
        });
    };
    let failed = |what: &str, e: std::io::Error| ContextRefusal::Failed {
        message: format!("cannot start {program}: {what}: {e}"),
    };
    let (control, their_control) = UnixStream::pair().map_err(|e| failed("socketpair", e))?;
    let (stdout, their_stdout) = UnixStream::pair().map_err(|e| failed("socketpair", e))?;
    let (stderr, their_stderr) = UnixStream::pair().map_err(|e| failed("socketpair", e))?;
    let control_fd = their_control.as_raw_fd();
    let mut command = Command::new(&path);
    command
        .args(&args)
        .current_dir(workdir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(OwnedFd::from(their_stdout)))
        .stderr(Stdio::from(OwnedFd::from(their_stderr)))
        .env("PYTHONUNBUFFERED", "1");
    // SAFETY: async-signal-safe calls only. The interpreter leads its own session (signals
    // meant for it reach nothing else), dies with this host, and has its reports on fd 3.
    unsafe {
        command.pre_exec(move || {
            libc::setsid();
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if control_fd == 3 {
                libc::fcntl(3, libc::F_SETFD, 0);
            } else if libc::dup2(control_fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    };
    let child = command.spawn().map_err(|e| failed("spawn", e))?;
    drop(their_control);
    // SAFETY: pidfd_open returns a new fd or -1; it becomes readable when the child exits.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, child.id(), 0) } as i32;
    let mut interp = Interpreter {
        child,
        // SAFETY: a fresh fd this process owns, when non-negative.
        pidfd: (pidfd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(pidfd) }),
        control,
        stdout: Some(stdout),
        stderr: Some(stderr),
        pending: Vec::new(),
        name: program.to_string(),
    };
    if language == Language::Python {
        let source = format!("{DRIVER}{DRIVER_END}");
        if let Err(e) = interp.control.write_all(source.as_bytes()) {
            return Err(not_started(
                interp,
                format!("it did not take its driver ({e})"),
            ));
        }
    }
    match ready_line(&mut interp) {
        Ok(line) => {
            if language == Language::Python {
                let ready: Value = serde_json::from_str(&line).unwrap_or_default();
                if let Some(version) = ready["interpreter"].as_str() {
                    interp.name = version.chars().take(100).collect();
                }
            }
            Ok(interp)
        }
        Err(why) => Err(not_started(interp, why)),
    }
}

/// The interpreter's first report line, within `START_LIMIT`.
fn ready_line(interp: &mut Interpreter) -> Result<String, String> {
    let deadline = Instant::now() + START_LIMIT;
    let mut buf = [0u8; 4096];
    loop {
        if let Some(at) = interp.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = interp.pending.drain(..=at).collect();
            return Ok(String::from_utf8_lossy(&line).trim().to_string());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "it was not ready within {} s",
                START_LIMIT.as_secs()
            ));
        }
        let mut fds = [pollfd(interp.control.as_raw_fd())];
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(fds.as_mut_ptr(), 1, left.as_millis() as i32 + 1) } <= 0 {
            continue;
        }
        match interp.control.read(&mut buf) {
            Ok(0) | Err(_) => return Err("it ended before it was ready".into()),
            Ok(n) => interp.pending.extend_from_slice(&buf[..n]),
        }
    }
}

/// An interpreter that did not start: killed, with what it said on stderr.
fn not_started(mut interp: Interpreter, why: String) -> ContextRefusal {
    let _ = interp.child.kill();
    let _ = interp.child.wait();
    let mut said = Vec::new();
    if let Some(stderr) = &mut interp.stderr {
        let _ = stderr.set_nonblocking(true);
        let _ = stderr.take(64 * 1024).read_to_end(&mut said);
    }
    let said = String::from_utf8_lossy(&said).trim().to_string();
    ContextRefusal::Failed {
        message: if said.is_empty() {
            format!("the {} interpreter did not start: {why}", interp.name)
        } else {
            format!(
                "the {} interpreter did not start: {why}: {said}",
                interp.name
            )
        },
    }
}
