//! Everything adde on the host and its helper inside the container say to each other: the
//! helper's roles and their arguments, and the messages they exchange.
//!
//! One execution is a spec on the helper's command line, the file on its stdin, and on its
//! stdout a stream of frames (the program's stdout and stderr, then one status frame). A frame
//! is one tag byte, a big-endian u32 length and that many bytes. The host never has to ask the
//! engine for the exit code (one round trip saved): the status frame carries it.

use serde::{Deserialize, Serialize};

/// Where the helper binary lives inside every environment adde creates: a read-only volume.
pub const HELPER_DIR: &str = "/.adde";
pub const HELPER_PATH: &str = "/.adde/adde";
/// The first argument that switches the binary into its in-container role.
pub const HELPER_FLAG: &str = "__helper";
pub const WORKSPACE: &str = "/workspace";
pub const DEPS_DIR: &str = "/opt/adde/deps";

/// Why the agent refuses every request once it found PID 1 altered (helper/agent.rs): the host
/// reports it as `environment_altered`.
pub const ENVIRONMENT_ALTERED: &str =
    "code that ran in this environment changed what its main process passes on to \
every program (resource limits, priority, scheduling, I/O class or OOM score), \
so runs there would no longer get the limits the environment was made with: recreate it";

/// Exit code reported for a run stopped at its deadline, as GNU timeout does.
pub const TIMEOUT_EXIT_CODE: i64 = 124;

/// What the helper does, named by the argument after [`HELPER_FLAG`]. Each role's arguments
/// are listed with it; the helper's module documentation says what each one does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `idle`: the environment's main process.
    Idle,
    /// `run RUN_SPEC` ([`RunSpec`] as JSON): supervises one execution.
    Run,
    /// `install INSTALL_SPEC` ([`InstallSpec`] as JSON): installs dependencies.
    Install,
    /// `chown USER`: gives /workspace to USER.
    Chown,
    /// `write PATH MODE`: writes stdin to PATH; prints [`WRITE_OK`].
    Write,
    /// `read PATH CAP`: prints a [`FileHead`] line, then up to CAP bytes.
    Read,
    /// `list PATH [recursive]`: prints a [`Listing`]; [`LIST_RECURSIVE`] lists sub-folders.
    List,
    /// `kill RUN_ID`: kills what the supervisor of RUN_ID started.
    Kill,
    /// `sweep [RUN_ID]`: kills every process that neither adde nor a live execution owns
    /// (and run RUN_ID, supervisor included); prints how many it killed.
    Sweep,
    /// `context LANGUAGE`: hosts one code-interpreter context (started by the agent only);
    /// speaks agent frames on its stdin and stdout.
    Context,
    /// `spare`: a supervisor started by the agent ahead of a warm run: it starts Python with
    /// adde's warm driver, then reads a [`RunSpec`] (a big-endian u32 length, then JSON) on
    /// its stdin and supervises it as `run` would (see helper/warm.rs).
    Spare,
    /// `runs PLACEHOLDER`: a supervisor the agent keeps between runs: it reads [`RunSpec`]s
    /// as `spare` does, one after another, and supervises each as `run` would. While it
    /// runs one, its command line names the run in place of [`RUNS_PLACEHOLDER`] (so that
    /// a kill finds it); [`RunStatus::stays`] says whether it takes another (helper/mod.rs).
    Runs,
}

/// The argument a `runs` supervisor is started with: room in its command line for the
/// run it supervises.
pub const RUNS_PLACEHOLDER: &str = "................................................................................................";

impl Role {
    const ALL: [Role; 12] = [
        Role::Idle,
        Role::Run,
        Role::Install,
        Role::Chown,
        Role::Write,
        Role::Read,
        Role::List,
        Role::Kill,
        Role::Sweep,
        Role::Context,
        Role::Spare,
        Role::Runs,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Idle => "idle",
            Role::Run => "run",
            Role::Install => "install",
            Role::Chown => "chown",
            Role::Write => "write",
            Role::Read => "read",
            Role::List => "list",
            Role::Kill => "kill",
            Role::Sweep => "sweep",
            Role::Context => "context",
            Role::Spare => "spare",
            Role::Runs => "runs",
        }
    }

    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == name)
    }

    /// The arguments that start this role from the helper's entrypoint (a container's command).
    pub fn args(self, args: &[&str]) -> Vec<String> {
        [HELPER_FLAG, self.as_str()]
            .iter()
            .chain(args)
            .map(|s| s.to_string())
            .collect()
    }

    /// The whole command line of an Engine-API exec of this role.
    pub fn exec_argv(self, args: &[&str]) -> Vec<String> {
        std::iter::once(HELPER_PATH.to_string())
            .chain(self.args(args))
            .collect()
    }
}

pub const LIST_RECURSIVE: &str = "recursive";
/// What the `write` role prints once the file is written.
pub const WRITE_OK: &str = "ok";
/// The first line the `install` role prints on stderr names the package manager it chose.
pub const INSTALL_MARKER: &str = "adde: package manager: ";
/// Exit code of the `install` role when the image has no package manager it knows.
pub const NO_PACKAGE_MANAGER_EXIT: u8 = 127;

/// What the `install` role receives.
#[derive(Debug, Serialize, Deserialize)]
pub struct InstallSpec {
    pub packages: Vec<String>,
    /// "pip" or "npm"; detected from the image when absent.
    pub manager: Option<String>,
}

pub const TAG_STDOUT: u8 = 1;
pub const TAG_STDERR: u8 = 2;
pub const TAG_STATUS: u8 = 3;
/// A background run's supervisor has started the program: its PID, in decimal.
pub const TAG_STARTED: u8 = 4;

/// One execution, as the helper receives it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunSpec {
    pub run_id: String,
    /// The file to write before running, relative to the working directory; its bytes come
    /// first on stdin.
    pub file: Option<FileSpec>,
    /// Bytes after the file on stdin that are the program's own standard input.
    pub stdin_len: u64,
    /// Command lines to try in order; the first whose program exists is run.
    pub candidates: Vec<Vec<String>>,
    pub timeout_ms: u64,
    /// A background process (started by the agent, outliving the call that asked for it):
    /// the supervisor announces the program's PID in a [`TAG_STARTED`] frame, and a
    /// `timeout_ms` of 0 means no deadline.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub background: bool,
    /// The agent may hand this run to a spare supervisor whose Python is already started
    /// (unless `ADDE_WARM_PYTHON=off`; a `.py` file run by Python with no stdin, in an
    /// environment with 256 MiB or more).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub warm: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FileSpec {
    pub path: String,
    pub len: u64,
    pub executable: bool,
}

/// How an execution ended, as the helper reports it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RunStatus {
    pub exit_code: i64,
    pub signal: Option<String>,
    pub timed_out: bool,
    pub oom_killed: bool,
    pub duration_ms: u64,
    pub command: Vec<String>,
    /// Set when the program could not be started at all.
    pub error: Option<HelperFailure>,
    /// The program ran in an interpreter started ahead of the run (a warm run).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub warm: bool,
    /// A `runs` supervisor takes another run after this one (for the agent; the host ignores
    /// it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stays: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HelperFailure {
    InterpreterNotFound { tried: Vec<String> },
    Setup { message: String },
}

/// One entry of the helper's `list` role.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct ListEntry {
    /// Path relative to the folder listed.
    pub name: String,
    /// Absolute path in the environment.
    pub path: String,
    /// "file", "dir", "symlink" or "other".
    pub kind: String,
    pub size: u64,
    /// Permission bits in octal, e.g. "0644".
    pub mode: String,
    /// Last modification, UTC (RFC 3339).
    pub modified: String,
}

/// The first line the helper's `read` role prints; the file's bytes follow.
#[derive(Debug, Serialize, Deserialize)]
pub enum FileHead {
    File {
        size: u64,
    },
    Dir,
    Missing,
    /// A FIFO, a socket or a device: never read.
    NotRegular {
        kind: String,
    },
    Unreadable {
        message: String,
    },
}

/// What the helper's `list` role prints.
#[derive(Debug, Serialize, Deserialize)]
pub enum Listing {
    Entries(Vec<ListEntry>),
    NotFound,
}

/// The largest frame the supervisor writes: a read of its output pipes (64 KiB) or a status
/// report; the host refuses anything bigger.
pub const MAX_FRAME_PAYLOAD: usize = 1024 * 1024;

pub fn encode_frame(tag: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(5 + payload.len());
    frame.push(tag);
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// Reassembles frames from chunks cut anywhere.
#[derive(Default)]
pub struct FrameDecoder {
    pending: Vec<u8>,
}

impl FrameDecoder {
    pub fn push(&mut self, chunk: &[u8]) {
        self.pending.extend_from_slice(chunk);
    }

    /// Bytes that never made a whole frame.
    pub fn into_pending(self) -> Vec<u8> {
        self.pending
    }

    /// Whether the frame being read claims more than [`MAX_FRAME_PAYLOAD`] bytes: what
    /// comes out of a container is untrusted, and the supervisor never writes such a frame.
    pub fn oversized(&self) -> bool {
        self.pending.len() >= 5
            && u32::from_be_bytes([
                self.pending[1],
                self.pending[2],
                self.pending[3],
                self.pending[4],
            ]) as usize
                > MAX_FRAME_PAYLOAD
    }

    pub fn next_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        if self.pending.len() < 5 {
            return None;
        }
        let len = u32::from_be_bytes(self.pending[1..5].try_into().ok()?) as usize;
        if self.pending.len() < 5 + len {
            return None;
        }
        let tag = self.pending[0];
        let payload = self.pending[5..5 + len].to_vec();
        self.pending.drain(..5 + len);
        Some((tag, payload))
    }
}

// ---------------------------------------------------------------------------------------
// The agent channel: the environment's PID 1 takes requests on its stdin and answers on its
// stdout, reached by attaching to the container. Several adde processes may be attached at
// once: the engine merges their writes into PID 1's stdin and copies PID 1's stdout to every
// one of them, so every frame names its request, and each caller keeps only its own.
//
// A frame is the two magic bytes, a kind byte, a big-endian u64 request id, a big-endian u32
// length and that many bytes of payload (at most `AGENT_MAX_PAYLOAD`). Writers send each frame
// in one write of at most `AGENT_MAX_FRAME` bytes, so that the engine (which copies each
// caller's stream in reads of up to 32 KiB) never interleaves two callers inside a frame.

pub const AGENT_MAGIC: [u8; 2] = [0xad, 0xde];
pub const AGENT_HEADER: usize = 2 + 1 + 8 + 4;
/// Largest payload of one frame; bigger inputs and outputs are cut into several frames.
pub const AGENT_MAX_PAYLOAD: usize = 4096 - AGENT_HEADER;
pub const AGENT_MAX_FRAME: usize = AGENT_HEADER + AGENT_MAX_PAYLOAD;
/// The version of the channel an environment's label names (`io.adde.agent`).
pub const AGENT_VERSION: &str = "1";
/// The variable in which the agent tells the helpers it starts which of PID 1's children are
/// its own helpers (PIDs, comma-separated).
pub const AGENT_CHILDREN_ENV: &str = "ADDE_AGENT_CHILDREN";
/// The variable in which the agent names the folder a helper it starts works in: the helper
/// changes into it itself, so that the agent can start it with posix_spawn (std forks when
/// the child needs a working directory set).
pub const AGENT_WORKDIR_ENV: &str = "ADDE_AGENT_WORKDIR";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgentKind {
    /// host → agent: are you there? Answered with `Ready`; the caller's attachment is then
    /// known to receive the agent's output.
    Hello,
    /// host → agent: start a helper role ([`AgentStart`] as JSON).
    Start,
    /// host → agent: bytes for the started process's stdin.
    Stdin,
    /// host → agent: the end of its stdin.
    StdinEnd,
    /// agent → host: answer to `Hello`.
    Ready,
    /// agent → host: bytes the process wrote on its stdout.
    Stdout,
    /// agent → host: bytes the process wrote on its stderr.
    Stderr,
    /// agent → host: the process closed its output; nothing more comes for this request.
    End,
    /// agent → host: the process could not be started (the payload says why).
    Failed,
    /// host → agent: part of a [`ContextRequest`] (JSON), continued by more of these.
    ContextRequest,
    /// host → agent: the last part of a [`ContextRequest`]; the request is complete.
    ContextRequestEnd,
    /// host → agent: interrupt the cell that request (the frame's id) runs, as its timeout
    /// would (the caller was cancelled).
    ContextCancel,
    /// agent → host: part of the [`ContextReply`] (JSON); `End` follows the last part.
    ContextReply,
    /// host → agent: part of a [`ProcRequest`] (JSON), about the background processes the
    /// agent keeps; the request may span several frames.
    ProcRequest,
    /// host → agent: the request is whole; the agent answers it.
    ProcRequestEnd,
    /// agent → host: part of the [`ProcReply`] (JSON) to a request; `End` follows the last.
    ProcReply,
}

impl AgentKind {
    const ALL: [AgentKind; 16] = [
        AgentKind::Hello,
        AgentKind::Start,
        AgentKind::Stdin,
        AgentKind::StdinEnd,
        AgentKind::Ready,
        AgentKind::Stdout,
        AgentKind::Stderr,
        AgentKind::End,
        AgentKind::Failed,
        AgentKind::ContextRequest,
        AgentKind::ContextRequestEnd,
        AgentKind::ContextCancel,
        AgentKind::ContextReply,
        AgentKind::ProcRequest,
        AgentKind::ProcRequestEnd,
        AgentKind::ProcReply,
    ];

    fn byte(self) -> u8 {
        match self {
            AgentKind::Hello => 1,
            AgentKind::Start => 2,
            AgentKind::Stdin => 3,
            AgentKind::StdinEnd => 4,
            AgentKind::ProcRequest => 5,
            AgentKind::ProcRequestEnd => 6,
            AgentKind::Ready => 16,
            AgentKind::Stdout => 17,
            AgentKind::Stderr => 18,
            AgentKind::End => 19,
            AgentKind::Failed => 20,
            AgentKind::ContextRequest => 8,
            AgentKind::ContextRequestEnd => 9,
            AgentKind::ContextCancel => 10,
            AgentKind::ContextReply => 24,
            AgentKind::ProcReply => 21,
        }
    }

    /// Host → agent frames about code-interpreter contexts.
    pub fn is_context(self) -> bool {
        matches!(
            self,
            AgentKind::ContextRequest | AgentKind::ContextRequestEnd | AgentKind::ContextCancel
        )
    }

    fn from_byte(byte: u8) -> Option<AgentKind> {
        AgentKind::ALL.into_iter().find(|k| k.byte() == byte)
    }
}

/// What the agent starts for a request: one of adde's helper roles, with the environment and
/// working directory an Engine-API exec would give it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AgentStart {
    /// The role, as [`Role::as_str`] names it (never `idle`).
    pub role: String,
    /// The role's arguments.
    pub args: Vec<String>,
    /// Extra environment variables, `KEY=value`.
    pub env: Vec<String>,
    pub workdir: String,
}

// ---------------------------------------------------------------------------------------
// Code-interpreter contexts: the agent keeps one `context` helper per context, which keeps
// the interpreter (a Python driver, or a shell) running between calls. The host sends a
// `ContextRequest` and reads the cell's output (`Stdout`, `Stderr`), then one `ContextReply`.

/// The most a whole context request may weigh (the code of a cell, mostly).
pub const CONTEXT_MAX_REQUEST: usize = 16 * 1024 * 1024;
/// The most contexts one environment keeps at once.
pub const MAX_CONTEXTS: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Python,
    Bash,
}

impl Language {
    pub fn as_str(self) -> &'static str {
        match self {
            Language::Python => "python",
            Language::Bash => "bash",
        }
    }

    pub fn parse(name: &str) -> Option<Language> {
        [Language::Python, Language::Bash]
            .into_iter()
            .find(|l| l.as_str() == name)
    }
}

/// What the host asks of the environment's contexts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ContextRequest {
    /// Start a context (an error when one of that name exists).
    Create {
        context: String,
        language: Language,
        /// Where the interpreter starts.
        workdir: String,
    },
    /// Run a cell, starting the context first when there is none of that name.
    Run {
        context: String,
        cell: Cell,
    },
    List,
    /// Restart the context's interpreter: a fresh state, the same name.
    Reset {
        context: String,
    },
    Close {
        context: String,
    },
}

/// One cell to run in a context.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Cell {
    pub language: Language,
    pub code: String,
    /// Where the interpreter starts, when this cell starts its context.
    pub workdir: String,
    pub timeout_ms: u64,
    /// Most bytes of one rich output, and of all of a cell's rich outputs together.
    pub max_output_bytes: u64,
    pub max_results_bytes: u64,
    /// Matplotlib figures as SVG too.
    pub svg: bool,
    /// Write rich outputs as files in this folder and return their paths.
    pub output_dir: Option<String>,
}

/// The agent's answer to a [`ContextRequest`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum ContextReply {
    Context(ContextInfo),
    Contexts(Vec<ContextInfo>),
    Closed,
    Ran(CellOutcome),
    Refused(ContextRefusal),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct ContextInfo {
    pub name: String,
    pub language: Language,
    /// What runs the context's cells, e.g. "Python 3.11.2", "bash" or "sh".
    pub interpreter: String,
    /// Cells run since the context (re)started.
    pub execution_count: u64,
    /// A cell is running or waiting.
    pub busy: bool,
}

/// Why the agent did not do what was asked.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ContextRefusal {
    NotFound {
        context: String,
    },
    Exists {
        context: String,
    },
    WrongLanguage {
        context: String,
        language: Language,
    },
    NoInterpreter {
        tried: Vec<String>,
    },
    TooMany {
        limit: usize,
    },
    /// The interpreter did not start, or the context ended while the request waited.
    Failed {
        message: String,
    },
}

/// How a cell ended.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CellOutcome {
    pub execution_count: u64,
    /// Rich outputs, in the order they were displayed (JSON objects keyed by MIME type).
    pub results: Vec<serde_json::Value>,
    /// Python: the exception (`name`, `value`, `traceback`); bash: the exit status.
    pub error: Option<serde_json::Value>,
    /// bash: the status of the cell's last command.
    pub exit_code: Option<i64>,
    pub timed_out: bool,
    /// The cell was interrupted (its timeout, or the caller's cancellation).
    pub interrupted: bool,
    /// The context's processes were killed and its interpreter started afresh: its state
    /// is gone. `restart_reason` says why.
    pub context_restarted: bool,
    pub restart_reason: Option<String>,
    pub results_truncated: bool,
    pub duration_ms: u64,
    pub interpreter: String,
}

/// What the host asks the agent about background processes: programs the agent keeps
/// running (each under its own supervisor, the `run` role) after the call that started them
/// returned, with their output (the last `max_output_bytes` of each stream) and how they
/// ended. Only the host can ask: the channel is PID 1's stdin and stdout.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ProcRequest {
    /// Start `spec` (a background [`RunSpec`], its `run_id` the process id) unless
    /// `max_running` (the operator's cap) processes already run. Answered once the program
    /// has started, or has failed to.
    Start {
        spec: RunSpec,
        env: Vec<String>,
        workdir: String,
        max_output_bytes: u64,
        max_running: Option<u32>,
    },
    /// Output from these offsets (bytes since the process started), at most `max_bytes` of
    /// each stream.
    Read {
        id: String,
        stdout_offset: u64,
        stderr_offset: u64,
        max_bytes: u64,
    },
    /// Sends `signal` to the program's process group.
    Signal {
        id: String,
        signal: i32,
    },
    List,
    /// Answered when the process ends, or after `timeout_ms`.
    Wait {
        id: String,
        timeout_ms: u64,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum ProcReply {
    State(ProcState),
    Output(ProcOutput),
    List(Vec<ProcState>),
    Refused(ProcRefusal),
}

/// One background process as the agent knows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProcState {
    pub id: String,
    /// The command line as asked for (the status has the one that ran).
    pub command: Vec<String>,
    /// Unix milliseconds.
    pub started_at_ms: u64,
    /// How it ended; `None` while it runs.
    pub status: Option<RunStatus>,
    /// Bytes written so far on each stream, kept or not.
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProcOutput {
    pub state: ProcState,
    pub stdout: StreamRead,
    pub stderr: StreamRead,
}

/// A read of one stream of a background process.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StreamRead {
    pub text: String,
    /// Where the next read starts.
    pub offset: u64,
    /// Bytes between the offset asked for and the first byte still kept: dropped to keep
    /// the output bounded.
    pub skipped: u64,
    /// More output is there to read now.
    pub more: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum ProcRefusal {
    NotFound,
    /// `by_policy`: the operator's cap, else the agent's own.
    TooMany {
        running: u32,
        limit: u32,
        by_policy: bool,
    },
    /// The request cannot be done (the payload says why).
    Failed(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct AgentFrame {
    pub kind: AgentKind,
    pub request: u64,
    pub payload: Vec<u8>,
}

/// One or more frames carrying `payload` (an empty payload gives one empty frame).
pub fn encode_agent_frames(kind: AgentKind, request: u64, payload: &[u8]) -> Vec<Vec<u8>> {
    let mut chunks: Vec<&[u8]> = payload.chunks(AGENT_MAX_PAYLOAD).collect();
    if chunks.is_empty() {
        chunks.push(&[]);
    }
    chunks
        .into_iter()
        .map(|chunk| {
            let mut frame = Vec::with_capacity(AGENT_HEADER + chunk.len());
            frame.extend_from_slice(&AGENT_MAGIC);
            frame.push(kind.byte());
            frame.extend_from_slice(&request.to_be_bytes());
            frame.extend_from_slice(&(chunk.len() as u32).to_be_bytes());
            frame.extend_from_slice(chunk);
            frame
        })
        .collect()
}

/// Reassembles agent frames from bytes cut anywhere. What it reads is untrusted: a frame
/// that is too long, of an unknown kind or without the magic bytes is an error, and the
/// decoder then skips to the next magic so one bad frame cannot wedge the channel.
#[derive(Default)]
pub struct AgentDecoder {
    pending: Vec<u8>,
}

#[derive(Debug, PartialEq)]
pub struct BadFrame(pub String);

impl AgentDecoder {
    pub fn push(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
    }

    pub fn next_frame(&mut self) -> Option<Result<AgentFrame, BadFrame>> {
        if self.pending.len() < AGENT_HEADER {
            return None;
        }
        let bad = if self.pending[..2] != AGENT_MAGIC {
            Some("no frame start".to_string())
        } else {
            let len = u32::from_be_bytes(self.pending[11..15].try_into().ok()?) as usize;
            match AgentKind::from_byte(self.pending[2]) {
                None => Some(format!("unknown frame kind {}", self.pending[2])),
                Some(_) if len > AGENT_MAX_PAYLOAD => Some(format!("frame of {len} bytes")),
                Some(kind) => {
                    if self.pending.len() < AGENT_HEADER + len {
                        return None;
                    }
                    let request = u64::from_be_bytes(self.pending[3..11].try_into().ok()?);
                    let payload = self.pending[AGENT_HEADER..AGENT_HEADER + len].to_vec();
                    self.pending.drain(..AGENT_HEADER + len);
                    return Some(Ok(AgentFrame {
                        kind,
                        request,
                        payload,
                    }));
                }
            }
        };
        // Resynchronise at the next magic after the first byte.
        // With no magic in sight, a last byte that starts one is kept: the frame it begins
        // may arrive in the next chunk.
        let len = self.pending.len();
        let keep_last = usize::from(self.pending[len - 1] == AGENT_MAGIC[0]);
        let skip = self.pending[1..]
            .windows(2)
            .position(|w| w == AGENT_MAGIC)
            .map_or(len - keep_last, |p| p + 1);
        self.pending.drain(..skip);
        bad.map(|why| Err(BadFrame(why)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_role_parses_back_from_its_name() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("nope"), None);
        assert_eq!(
            Role::Read.exec_argv(&["/tmp/a", "10"]),
            [HELPER_PATH, HELPER_FLAG, "read", "/tmp/a", "10"]
        );
    }

    #[test]
    fn frames_survive_any_chunking() {
        let mut wire = encode_frame(TAG_STDOUT, b"hello");
        wire.extend(encode_frame(TAG_STDERR, b""));
        wire.extend(encode_frame(TAG_STATUS, b"{}"));
        for cut in 1..wire.len() {
            let mut decoder = FrameDecoder::default();
            let mut frames = Vec::new();
            for chunk in wire.chunks(cut) {
                decoder.push(chunk);
                while let Some(frame) = decoder.next_frame() {
                    frames.push(frame);
                }
            }
            assert_eq!(
                frames,
                vec![
                    (TAG_STDOUT, b"hello".to_vec()),
                    (TAG_STDERR, vec![]),
                    (TAG_STATUS, b"{}".to_vec())
                ]
            );
            assert!(decoder.next_frame().is_none());
        }
    }

    #[test]
    fn a_frame_header_claiming_too_much_is_seen_before_the_bytes_arrive() {
        let mut decoder = FrameDecoder::default();
        decoder.push(&[TAG_STDOUT, 0xff, 0xff, 0xff, 0xff]);
        assert!(decoder.oversized());
        let mut fine = FrameDecoder::default();
        fine.push(&encode_frame(TAG_STDOUT, &[0; 64 * 1024])[..5]);
        assert!(!fine.oversized());
    }

    #[test]
    fn agent_frames_survive_any_chunking_and_big_payloads_are_split() {
        let big = vec![7u8; AGENT_MAX_PAYLOAD * 2 + 5];
        let mut wire: Vec<u8> = encode_agent_frames(AgentKind::Stdin, 42, &big).concat();
        wire.extend(encode_agent_frames(AgentKind::StdinEnd, 42, &[]).concat());
        assert!(encode_agent_frames(AgentKind::Stdin, 42, &big)
            .iter()
            .all(|f| f.len() <= AGENT_MAX_FRAME));
        for cut in [1, 7, 100, 4096, wire.len()] {
            let mut decoder = AgentDecoder::default();
            let mut got = Vec::new();
            for chunk in wire.chunks(cut) {
                decoder.push(chunk);
                while let Some(frame) = decoder.next_frame() {
                    got.push(frame.unwrap());
                }
            }
            let data: Vec<u8> = got
                .iter()
                .filter(|f| f.kind == AgentKind::Stdin)
                .flat_map(|f| f.payload.clone())
                .collect();
            assert_eq!(data, big);
            assert_eq!(got.last().unwrap().kind, AgentKind::StdinEnd);
            assert!(got.iter().all(|f| f.request == 42));
        }
    }

    #[test]
    fn a_bad_agent_frame_is_an_error_and_the_next_good_one_still_decodes() {
        let mut decoder = AgentDecoder::default();
        let mut oversized = encode_agent_frames(AgentKind::Stdout, 1, b"x").concat();
        oversized[11..15].copy_from_slice(&(u32::MAX).to_be_bytes());
        decoder.push(b"garbage");
        decoder.push(&oversized);
        decoder.push(&encode_agent_frames(AgentKind::Stdout, 9, b"ok").concat());
        let mut good = Vec::new();
        let mut bad = 0;
        while let Some(frame) = decoder.next_frame() {
            match frame {
                Ok(frame) => good.push(frame),
                Err(_) => bad += 1,
            }
        }
        assert!(bad >= 1);
        assert_eq!(good.len(), 1);

        // Garbage whose last byte starts the next frame, which arrives in the next chunk.
        let mut decoder = AgentDecoder::default();
        let frame = encode_agent_frames(AgentKind::Stdout, 5, b"late").concat();
        let mut first = b"garbage-garbage-garbage".to_vec();
        first.push(frame[0]);
        decoder.push(&first);
        while let Some(Err(_)) = decoder.next_frame() {}
        decoder.push(&frame[1..]);
        let next = decoder.next_frame().unwrap().unwrap();
        assert_eq!((next.request, next.payload.as_slice()), (5, &b"late"[..]));
        assert_eq!(
            (good[0].request, good[0].payload.as_slice()),
            (9, &b"ok"[..])
        );
    }
}
