//! The resident agent: PID 1 of an environment takes requests on its stdin (the host attaches
//! to the container to send them) and starts adde's helper roles for them, relaying their
//! output back as frames named by request. It does for a call what an Engine-API exec does,
//! without dockerd, containerd and runc in the way: a round trip costs well under a
//! millisecond instead of tens.
//!
//! Only the host can reach this channel: PID 1 is non-dumpable, so no process of a run can
//! open its stdin or stdout through /proc, and the processes it starts get pipes of their own.
//! Code-interpreter contexts, which outlive the requests they serve, are contexts.rs's.
//!
//! The agent also keeps background processes, which outlive the call that started them
//! (`ProcRequest` frames; see background.rs).

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::{Child, Command};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::background::Background;
use super::contexts::Contexts;
use super::pollfd;
use super::runs::Inherited;
use super::warm::{spawn_piped, Spares};
use crate::protocol::{
    encode_agent_frames, AgentDecoder, AgentFrame, AgentKind, AgentStart, FrameDecoder, Role,
    RunSpec, RunStatus, AGENT_CHILDREN_ENV, AGENT_WORKDIR_ENV, ENVIRONMENT_ALTERED, HELPER_PATH,
    RUNS_PLACEHOLDER, TAG_STATUS,
};

/// Largest request the agent takes (a start, or a background-process request: a command
/// line and its environment).
const MAX_PROC_REQUEST: usize = 1024 * 1024;

/// The agent's stdout, shared by the threads that relay output: one frame per write.
#[derive(Clone)]
pub(super) struct Replies(Arc<Mutex<fs::File>>);

impl Replies {
    pub(super) fn send(&self, kind: AgentKind, request: u64, payload: &[u8]) {
        let Ok(mut out) = self.0.lock() else { return };
        for frame in encode_agent_frames(kind, request, payload) {
            // Nobody attached, or the shim is gone: output is dropped, as the engine would.
            let _ = out.write_all(&frame);
        }
    }
}

/// The helpers the agent started and that still run, with the run a spare supervisor was
/// handed. Each helper it starts is told (in `AGENT_CHILDREN_ENV`) which they are, so that a
/// sweep spares them (a run's orphans are PID 1's children too, and only the agent knows
/// which of its children are adde's) and a kill finds a spare's run (its command line, made
/// before the run, does not name it).
#[derive(Clone, Default)]
pub(super) struct Children(Arc<Mutex<HashMap<u32, Option<String>>>>);

impl Children {
    /// `PID` or `PID:RUN_ID`, comma-separated.
    pub(super) fn list(&self) -> String {
        let Ok(children) = self.0.lock() else {
            return String::new();
        };
        children
            .iter()
            .map(|(pid, run)| match run {
                Some(run) => format!("{pid}:{run}"),
                None => pid.to_string(),
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    pub(super) fn update(&self, pid: u32, running: bool) {
        if let Ok(mut children) = self.0.lock() {
            if running {
                children.insert(pid, None);
            } else {
                children.remove(&pid);
            }
        }
    }

    /// Notes that helper `pid` (a spare) now supervises run `run_id`.
    pub(super) fn serving(&self, pid: u32, run_id: String) {
        if let Ok(mut children) = self.0.lock() {
            children.insert(pid, Some(run_id));
        }
    }
}

/// Requests in progress: where their stdin goes. Unbounded: the agent never blocks on a
/// process that does not read its input (the host bounds what it sends).
type Inputs = HashMap<u64, Sender<Vec<u8>>>;

/// What the agent keeps between frames.
struct Agent {
    replies: Replies,
    inputs: Inputs,
    children: Children,
    background: Background,
    contexts: Contexts,
    /// The spare supervisor for warm Python runs (warm.rs).
    spares: Spares,
    /// Supervisors kept between runs.
    kept: Kept,
    /// What PID 1 passes on to the helpers it starts, as it was when it started.
    origin: Inherited,
    /// It has changed since: the agent starts nothing more.
    altered: bool,
    /// Background-process requests still arriving, by request id.
    proc_requests: HashMap<u64, Vec<u8>>,
    /// Starts still arriving: a start bigger than one frame (a long command line) spans
    /// several, and is whole when the request's first stdin frame comes (the host always
    /// sends one: `StdinEnd`).
    starts: HashMap<u64, Vec<u8>>,
}

/// Serves requests from stdin until a stop signal arrives from outside (`stopped` reads the
/// signalfd and says whether to exit).
pub fn serve(signals: RawFd, mut stopped: impl FnMut() -> bool) {
    // SAFETY: fds 0 and 1 are PID 1's stdin and stdout for its whole life; the Files wrap them
    // and are never closed (the process exits with them).
    let mut input = std::mem::ManuallyDrop::new(unsafe { fs::File::from_raw_fd(0) });
    let mut agent = Agent {
        replies: Replies(Arc::new(Mutex::new(unsafe { fs::File::from_raw_fd(1) }))),
        inputs: Inputs::new(),
        children: Children::default(),
        background: Background::default(),
        contexts: Contexts::default(),
        spares: Spares::default(),
        kept: Kept::new(),
        origin: Inherited::now_but_affinity(),
        altered: false,
        proc_requests: HashMap::new(),
        starts: HashMap::new(),
    };
    let mut decoder = AgentDecoder::default();
    let mut stdin_open = true;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let mut fds = [pollfd(signals), pollfd(0)];
        let count = if stdin_open { 2 } else { 1 };
        // SAFETY: fds is a valid array of `count` pollfds.
        if unsafe { libc::poll(fds.as_mut_ptr(), count, -1) } <= 0 {
            continue;
        }
        if fds[0].revents != 0 && stopped() {
            return;
        }
        if stdin_open && fds[1].revents != 0 {
            match input.read(&mut buf) {
                // No stdin (an environment made without one): signals only.
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => {
                    decoder.push(&buf[..n]);
                    while let Some(frame) = decoder.next_frame() {
                        if let Ok(frame) = frame {
                            agent.handle(frame);
                        }
                    }
                }
            }
        }
    }
}

impl Agent {
    fn handle(&mut self, frame: AgentFrame) {
        let starts = frame.kind.is_context() || frame.kind == AgentKind::ProcRequestEnd;
        if starts && self.refuses(frame.request) {
            return;
        }
        if frame.kind.is_context() {
            return self.contexts.handle(frame, &self.replies, &self.children);
        }
        let request = frame.request;
        let replies = &self.replies;
        match frame.kind {
            AgentKind::Hello => replies.send(AgentKind::Ready, request, &[]),
            AgentKind::Start => {
                let pending = self.starts.entry(request).or_default();
                if pending.len() + frame.payload.len() <= MAX_PROC_REQUEST {
                    pending.extend_from_slice(&frame.payload);
                }
            }
            AgentKind::Stdin => {
                self.start_whole(request);
                if let Some(stdin) = self.inputs.get(&request) {
                    let _ = stdin.send(frame.payload);
                }
            }
            AgentKind::StdinEnd => {
                self.start_whole(request);
                self.inputs.remove(&request);
            }
            AgentKind::ProcRequest => {
                let pending = self.proc_requests.entry(request).or_default();
                if pending.len() + frame.payload.len() <= MAX_PROC_REQUEST {
                    pending.extend_from_slice(&frame.payload);
                }
            }
            AgentKind::ProcRequestEnd => {
                let payload = self.proc_requests.remove(&request).unwrap_or_default();
                self.background
                    .handle(request, &payload, replies, &self.children);
            }
            // Frames the agent itself sends, echoed by nobody: ignored.
            _ => {}
        }
    }

    /// Refuses `request` once what PID 1 passes on to every helper it starts has changed since
    /// it started: a run's code is the same user, and the kernel lets it lower PID 1's
    /// resource limits or priority from outside (runs.rs), which every later run would
    /// inherit. It cannot be undone from inside (a lowered hard limit stays lowered).
    fn refuses(&mut self, request: u64) -> bool {
        self.altered = self.altered || Inherited::now_but_affinity() != self.origin;
        if self.altered {
            self.replies
                .send(AgentKind::Failed, request, ENVIRONMENT_ALTERED.as_bytes());
        }
        self.altered
    }

    /// Starts the helper a request's start frames name, once they have all arrived.
    fn start_whole(&mut self, request: u64) {
        let Some(payload) = self.starts.remove(&request) else {
            return;
        };
        if self.refuses(request) {
            return;
        }
        let replies = &self.replies;
        match serde_json::from_slice::<AgentStart>(&payload) {
            Ok(start) => match self.start(request, start) {
                Ok(stdin) => {
                    self.inputs.insert(request, stdin);
                }
                Err(e) => replies.send(AgentKind::Failed, request, e.as_bytes()),
            },
            Err(e) => replies.send(
                AgentKind::Failed,
                request,
                format!("bad start: {e}").as_bytes(),
            ),
        }
    }

    /// Starts a request's helper. A run goes to a supervisor that is already started where
    /// one fits: a warm run to the spare (after it the next spare is started; not during it:
    /// it would take CPU from the run), a run without standard input to one the agent kept
    /// from an earlier run. The agent writes the spec to such a supervisor from this thread,
    /// which must never wait on one (a run's code may have stopped it): only a spec that an
    /// empty pipe takes at once (PIPE_BUF, the least a pipe holds) is handed that way.
    fn start(&self, request: u64, start: AgentStart) -> Result<Sender<Vec<u8>>, String> {
        let spec = (start.role == Role::Run.as_str())
            .then(|| serde_json::from_str::<RunSpec>(start.args.first()?).ok())
            .flatten();
        let handable = start.args.first().map_or(0, String::len) + 4 <= libc::PIPE_BUF;
        match spec {
            Some(spec) if handable && spec.warm => self.start_warm(request, start, spec.run_id),
            Some(spec) if handable && spec.stdin_len == 0 && !spec.background => {
                self.start_kept(request, start, spec)
            }
            _ => spawn(request, start, &self.replies, &self.children, None),
        }
    }

    fn start_warm(
        &self,
        request: u64,
        start: AgentStart,
        run_id: String,
    ) -> Result<Sender<Vec<u8>>, String> {
        let (spares, children, like) = (self.spares.clone(), self.children.clone(), start.clone());
        let then: AfterEnd = Box::new(move || spares.prime(&like, &children));
        match self.spares.take(&start, run_id, &self.children) {
            Some(spare) => Ok(relay(
                request,
                spare,
                &self.replies,
                &self.children,
                Some(then),
            )),
            None => spawn(request, start, &self.replies, &self.children, Some(then)),
        }
    }

    /// Hands a run to a kept supervisor for its environment and folder, or to a new one
    /// (role `runs`); see [`Supervisor`].
    fn start_kept(
        &self,
        request: u64,
        start: AgentStart,
        spec: RunSpec,
    ) -> Result<Sender<Vec<u8>>, String> {
        let message = spec_message(start.args.first().map_or("", String::as_str));
        let supervisor = match self.kept.take(&start, &message, &self.children) {
            Some(supervisor) => supervisor,
            None => {
                let supervisor =
                    Supervisor::spawn(&start, &self.replies, &self.kept, &self.children)?;
                (&*supervisor.stdin)
                    .write_all(&message)
                    .map_err(|e| format!("cannot hand adde's helper its run: {e}"))?;
                supervisor
            }
        };
        self.children.serving(supervisor.pid, spec.run_id);
        let declared = spec.file.map_or(0, |file| file.len);
        Ok(supervisor.serve(request, declared))
    }
}

/// What to do when a request's helper has ended.
type AfterEnd = Box<dyn FnOnce() + Send>;

/// The command that starts one of adde's helper roles as the agent's child, with the
/// environment and working directory a request names. It is told which of PID 1's children
/// are adde's helpers, so that a sweep it runs spares them.
pub(super) fn helper_command(
    role: Role,
    args: &[&str],
    env: &[String],
    workdir: &str,
    children: &Children,
) -> Command {
    let mut command = Command::new(HELPER_PATH);
    command.args(role.args(args));
    for pair in env {
        if let Some((key, value)) = pair.split_once('=') {
            command.env(key, value);
        }
    }
    command
        .env(AGENT_CHILDREN_ENV, children.list())
        .env(AGENT_WORKDIR_ENV, workdir);
    // Nothing here may need a fork (a pre_exec hook, a working directory): std then starts
    // the helper with posix_spawn, a vfork. PID 1's blocked stop signals are inherited and
    // the helper unblocks them first thing (helper::main).
    command
}

/// Starts the helper role a request names, relayed by [`relay`].
fn spawn(
    request: u64,
    start: AgentStart,
    replies: &Replies,
    children: &Children,
    after: Option<AfterEnd>,
) -> Result<Sender<Vec<u8>>, String> {
    let role = Role::parse(&start.role)
        .filter(|role| !matches!(role, Role::Idle | Role::Spare))
        .ok_or_else(|| format!("the agent starts no role {:?}", start.role))?;
    let args: Vec<&str> = start.args.iter().map(String::as_str).collect();
    let child = spawn_piped(helper_command(
        role,
        &args,
        &start.env,
        &start.workdir,
        children,
    ))
    .map_err(|e| format!("cannot start adde's helper in {}: {e}", start.workdir))?;
    children.update(child.id(), true);
    Ok(relay(request, child, replies, children, after))
}

/// Feeds a started helper's stdin from the request's `Stdin` frames and relays its stdout and
/// stderr until both close; then `after` runs.
fn relay(
    request: u64,
    mut child: Child,
    replies: &Replies,
    children: &Children,
    after: Option<AfterEnd>,
) -> Sender<Vec<u8>> {
    let pid = child.id();
    let (sender, receiver) = channel::<Vec<u8>>();
    if let Some(stdin) = child.stdin.take() {
        // Whatever arrives goes through; the helper's stdin closes at the request's end.
        let stdin = fs::File::from(OwnedFd::from(stdin));
        std::thread::spawn(move || feed(&stdin, receiver, u64::MAX));
    }
    let mut pipes = output_pipes(&mut child);
    let (replies, children) = (replies.clone(), children.clone());
    std::thread::spawn(move || {
        pump(request, &mut pipes, &replies, |_| false);
        children.update(pid, false);
        // PID 1 reaps every child (orphans included), so the status is not waited for here:
        // the helper roles report in their own output.
        drop(child);
        replies.send(AgentKind::End, request, &[]);
        if let Some(after) = after {
            after();
        }
    });
    sender
}

/// How long a kept supervisor waits for the end of its request's input after the run.
const STDIN_END_WAIT: Duration = Duration::from_secs(5);

/// Writes the request's input to a helper's stdin, at most `limit` bytes, until the request's
/// input ends. Says whether exactly `limit` bytes went through.
fn feed(mut stdin: &fs::File, input: Receiver<Vec<u8>>, limit: u64) -> bool {
    let mut left = limit;
    for chunk in input {
        let take = chunk.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        // A process that stops reading its input is not an error.
        if take < chunk.len() || stdin.write_all(&chunk[..take]).is_err() {
            return false;
        }
        left -= take as u64;
    }
    left == 0
}

/// A helper's stdout and stderr, as the agent relays them.
fn output_pipes(child: &mut Child) -> Vec<(AgentKind, fs::File)> {
    let mut pipes = Vec::with_capacity(2);
    if let Some(stdout) = child.stdout.take() {
        pipes.push((AgentKind::Stdout, OwnedFd::from(stdout).into()));
    }
    if let Some(stderr) = child.stderr.take() {
        pipes.push((AgentKind::Stderr, OwnedFd::from(stderr).into()));
    }
    pipes
}

/// Relays what arrives on `pipes` as frames of `request` until both close (None) or `done`,
/// shown each chunk of stdout first, says it ends the run: that chunk is returned, not yet
/// relayed. One thread relays both pipes (a thread per pipe and one to join them cost a run
/// two more thread starts).
fn pump(
    request: u64,
    pipes: &mut Vec<(AgentKind, fs::File)>,
    replies: &Replies,
    mut done: impl FnMut(&[u8]) -> bool,
) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 64 * 1024];
    while !pipes.is_empty() {
        let mut fds: Vec<libc::pollfd> = pipes
            .iter()
            .map(|(_, pipe)| pollfd(pipe.as_raw_fd()))
            .collect();
        // SAFETY: fds is a valid array of pollfd for its length.
        if unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) } <= 0 {
            continue;
        }
        let mut closed = Vec::new();
        for (i, ((kind, pipe), fd)) in pipes.iter_mut().zip(&fds).enumerate() {
            if fd.revents == 0 {
                continue;
            }
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => closed.push(i),
                Ok(n) => {
                    if *kind == AgentKind::Stdout && done(&buf[..n]) {
                        return Some(buf[..n].to_vec());
                    }
                    replies.send(*kind, request, &buf[..n]);
                }
            }
        }
        for i in closed.into_iter().rev() {
            pipes.remove(i);
        }
    }
    None
}

/// The length-prefixed run spec a `spare` or `runs` supervisor reads on its stdin.
pub(super) fn spec_message(spec: &str) -> Vec<u8> {
    let mut message = (spec.len() as u32).to_be_bytes().to_vec();
    message.extend_from_slice(spec.as_bytes());
    message
}

/// A supervisor of role `runs`, which the agent keeps between runs, and the two threads of
/// the agent that serve its runs: one writes each run's input to its stdin (at most the
/// `declared` bytes of the run's file), one relays its output until the run's status frame
/// ends the request. After a run it is kept for the next when it says it stays and its stdin
/// got exactly the bytes declared (what it reads next must be the next run's spec);
/// otherwise it is let go: its threads end, its stdin closes, and it exits.
struct Supervisor {
    env: Vec<String>,
    workdir: String,
    pid: u32,
    /// Its stdin, where the agent writes each run's spec (then the feeding thread its input).
    stdin: Arc<fs::File>,
    feeds: Sender<Feed>,
    relays: Sender<(u64, Supervisor, Receiver<bool>)>,
}

/// A run's input, for the feeding thread: it says on `fed` whether exactly `declared` bytes
/// went through.
struct Feed {
    input: Receiver<Vec<u8>>,
    declared: u64,
    fed: Sender<bool>,
}

impl Supervisor {
    /// Starts a supervisor for runs like `start`, and its threads.
    fn spawn(
        start: &AgentStart,
        replies: &Replies,
        kept: &Kept,
        children: &Children,
    ) -> Result<Supervisor, String> {
        let command = helper_command(
            Role::Runs,
            &[RUNS_PLACEHOLDER],
            &start.env,
            &start.workdir,
            children,
        );
        let mut child = spawn_piped(command)
            .map_err(|e| format!("cannot start adde's helper in {}: {e}", start.workdir))?;
        let pid = child.id();
        children.update(pid, true);
        let stdin: Arc<fs::File> = match child.stdin.take() {
            Some(stdin) => Arc::new(OwnedFd::from(stdin).into()),
            None => return Err("adde's helper has no stdin".into()),
        };
        let (feeds, feed_queue) = channel::<Feed>();
        let feeding = stdin.clone();
        std::thread::spawn(move || {
            for Feed {
                input,
                declared,
                fed,
            } in feed_queue
            {
                let exact = feed(&feeding, input, declared);
                let _ = fed.send(exact);
                if !exact {
                    break;
                }
            }
        });
        let (relays, relay_queue) = channel::<(u64, Supervisor, Receiver<bool>)>();
        let mut pipes = output_pipes(&mut child);
        let (replies, kept, children) = (replies.clone(), kept.clone(), children.clone());
        std::thread::spawn(move || {
            for (request, supervisor, fed) in relay_queue {
                let mut frames = FrameDecoder::default();
                let mut stays = false;
                let ended = pump(request, &mut pipes, &replies, |stdout| {
                    frames.push(stdout);
                    while let Some((tag, payload)) = frames.next_frame() {
                        if tag == TAG_STATUS {
                            stays = serde_json::from_slice::<RunStatus>(&payload)
                                .is_ok_and(|status| status.stays);
                            return true;
                        }
                    }
                    false
                });
                // The file's bytes went before the run started, and the end of the
                // request's input follows them at once: it is only waited for briefly.
                let keep = ended.is_some() && stays && fed.recv_timeout(STDIN_END_WAIT) == Ok(true);
                // Kept before the status goes out, so that the caller's next run finds it.
                match keep {
                    true => kept.keep(supervisor, &children),
                    false => children.update(pid, false),
                }
                if let Some(status) = ended {
                    replies.send(AgentKind::Stdout, request, &status);
                }
                replies.send(AgentKind::End, request, &[]);
                if !keep {
                    break;
                }
            }
        });
        Ok(Supervisor {
            env: start.env.clone(),
            workdir: start.workdir.clone(),
            pid,
            stdin,
            feeds,
            relays,
        })
    }

    /// Serves request `request` (whose spec it has been handed): returns where the request's
    /// input goes.
    fn serve(self, request: u64, declared: u64) -> Sender<Vec<u8>> {
        let (input, queue) = channel();
        let (fed, told) = channel();
        let _ = self.feeds.send(Feed {
            input: queue,
            declared,
            fed,
        });
        let relays = self.relays.clone();
        let _ = relays.send((request, self, told));
        input
    }
}

/// The supervisors the agent keeps between runs: started for the environment and folder of
/// an earlier run, waiting for the next, at most `room`.
#[derive(Clone)]
struct Kept {
    idle: Arc<Mutex<Vec<Supervisor>>>,
    room: usize,
}

/// The most supervisors the agent keeps (concurrent runs in one environment need one each).
const MAX_KEPT: usize = 4;

impl Kept {
    /// Room for one supervisor per 64 tasks the environment may have, at most [`MAX_KEPT`]:
    /// each is a process, and two threads of the agent, which the pids limit counts.
    fn new() -> Kept {
        let limit = ["/sys/fs/cgroup/pids.max", "/sys/fs/cgroup/pids/pids.max"]
            .iter()
            .find_map(|path| fs::read_to_string(path).ok())
            .and_then(|text| text.trim().parse::<usize>().ok());
        Kept {
            idle: Arc::default(),
            room: limit.map_or(MAX_KEPT, |limit| (limit / 64).min(MAX_KEPT)),
        }
    }

    /// A kept supervisor for runs like `start`, handed `message` (a run's spec). One that
    /// cannot take it has ended meanwhile, and goes.
    fn take(&self, start: &AgentStart, message: &[u8], children: &Children) -> Option<Supervisor> {
        loop {
            let supervisor = {
                let mut kept = self.idle.lock().ok()?;
                let i = kept
                    .iter()
                    .position(|s| s.env == start.env && s.workdir == start.workdir)?;
                kept.swap_remove(i)
            };
            if (&*supervisor.stdin).write_all(message).is_ok() {
                return Some(supervisor);
            }
            children.update(supervisor.pid, false);
        }
    }

    /// Keeps a supervisor for the next run, unless enough are kept.
    fn keep(&self, supervisor: Supervisor, children: &Children) {
        let Ok(mut kept) = self.idle.lock() else {
            return;
        };
        if kept.len() < self.room {
            children.update(supervisor.pid, true);
            kept.push(supervisor);
        } else {
            children.update(supervisor.pid, false);
        }
    }
}
