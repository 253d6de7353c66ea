"""The shapes of adde's results, as TypedDicts: what each tool prints on stdout, field for
field (read from the binary's output; `adde <tool>` shows the same JSON).

They are plain dicts at run time, so ADDE code that indexes `result["log"]["stdout"]` keeps
working, and a type checker knows every key and its type. Fields that a result carries only
sometimes (get_container_logs' `log`, `runs`, `container_output`) are not required keys.

Also here: the literal types of the fields that take one of a few strings."""

from __future__ import annotations

from typing import Any, Dict, List, Literal, Optional, TypedDict, Union

__all__ = [
    "AgentImage",
    "CellError",
    "CodeResult",
    "ContextClosed",
    "ContextInfo",
    "ContextList",
    "Language",
    "RichResult",
    "BuildNetwork",
    "BuildResult",
    "CleanupResult",
    "CommandLine",
    "ContainerOutput",
    "CreatedEnv",
    "DeleteImageResult",
    "Encoding",
    "EnvDescription",
    "EnvList",
    "ErrorCodeInfo",
    "ErrorCodeList",
    "ExecuteResult",
    "ExportResult",
    "Finding",
    "ImageList",
    "InstallNetwork",
    "InstallResult",
    "InstalledDeps",
    "Limits",
    "ListEntry",
    "ListFilesResult",
    "LogsResult",
    "Mount",
    "MountInfo",
    "OutputEvent",
    "PackageManager",
    "PingResult",
    "PrepareResult",
    "ProcessInfo",
    "ProcessList",
    "ProcessOutput",
    "PruneResult",
    "PullPolicy",
    "PullResult",
    "ReadFileResult",
    "ReapResult",
    "ResultEvent",
    "RunContainerResult",
    "RunError",
    "RunEvent",
    "RunLog",
    "Security",
    "Signal",
    "SignalResult",
    "ToolInfo",
    "ToolList",
    "WriteFileResult",
]

# --- Inputs -------------------------------------------------------------------------------

#: A command: a string (run with `sh -c`) or an argument list (run directly, no shell).
CommandLine = Union[str, List[str]]
Encoding = Literal["utf8", "base64"]
PullPolicy = Literal["missing", "never", "always"]
PackageManager = Literal["pip", "npm"]
InstallNetwork = Literal["bridge", "host"]
BuildNetwork = Literal["default", "none", "host"]
Language = Literal["python", "bash"]


class _MountRequired(TypedDict):
    source: str
    target: str


class Mount(_MountRequired, total=False):
    """A host folder for create_runtime_env's `mounts`; read-only unless read_only=False."""

    read_only: bool


# --- Runs ---------------------------------------------------------------------------------


class RunError(TypedDict):
    """Why a run has no result (its supervisor or the environment died)."""

    error_code: str
    error: str


class _RunLogRequired(TypedDict):
    exit_code: int  # 128+N when signal N killed it; 124 when it timed out
    stdout: str
    stderr: str
    execution_time: str  # ADDE's format: "0.09s"
    duration_ms: int
    run_id: str
    timed_out: bool
    oom_killed: bool
    signal: Optional[str]  # the signal that ended the program ("SIGKILL"...), if one did
    stdout_truncated: bool
    stderr_truncated: bool
    stdout_bytes: int
    stderr_bytes: int
    filename: str
    command: List[str]
    container_id: str
    started_at: str


class RunLog(_RunLogRequired, total=False):
    """One run of execute_code_block, execute_command or run_container. `transport` (how adde
    reached the environment) comes from binaries with the resident agent; `error` only when
    the run has no result; `warm` only for a run in a Python started ahead of it (the
    default for .py files; ADDE_WARM_PYTHON=off in adde's environment turns it off)."""

    transport: Literal["agent", "exec"]
    error: RunError
    in_progress: bool
    warm: bool


class ExecuteResult(TypedDict):
    """execute_code_block and execute_command."""

    log: RunLog


class ContainerOutput(TypedDict):
    stdout: str
    stderr: str


class _LogsRequired(TypedDict):
    container_id: str


class LogsResult(_LogsRequired, total=False):
    """get_container_logs: `log` (the last run, or `run_id`'s), or `runs` with all=True;
    `container_output` with container_output=True."""

    log: RunLog
    runs: List[RunLog]
    container_output: ContainerOutput


class RunContainerResult(TypedDict):
    log: RunLog
    image: str
    removed: bool


# --- Environments -------------------------------------------------------------------------


class DiskLimits(TypedDict):
    """The disk bound, and what enforces it (or why nothing does) for each place."""

    size: str
    bytes: int
    workspace: str
    rootfs: str


class _LimitsRequired(TypedDict):
    memory: str
    memory_bytes: int
    memory_swap_bytes: int
    cpus: float
    pids_limit: int
    nofile: int


class Limits(_LimitsRequired, total=False):
    disk: DiskLimits


class Security(TypedDict):
    cap_drop: List[str]
    no_new_privileges: bool
    init: bool
    network_mode: str
    read_only_rootfs: bool
    runtime: str


class MountInfo(TypedDict):
    source: str
    target: str
    read_only: bool


class InstalledDeps(TypedDict):
    package_manager: str
    packages: List[str]
    path: str


class EnvDescription(TypedDict):
    """An environment as the engine reports it: the settings actually applied."""

    container_id: str
    name: str
    session: Optional[str]
    workspace: str
    image: str
    image_id: str
    state: str
    created: str
    expires_at: Optional[str]
    use_image_cmd: bool
    network: str
    port_bindings: Dict[str, str]
    user: Optional[str]
    workdir: str
    mounts: List[MountInfo]
    limits: Limits
    security: Security
    dependencies: Optional[InstalledDeps]
    labels: Dict[str, str]
    owner: Optional[str]


class PoolUse(TypedDict):
    """Whether a warm pool served a create, and why not."""

    result: Literal["hit", "miss"]
    pool: Optional[str]
    reason: Optional[str]


class _CreatedRequired(EnvDescription):
    image_pulled: bool
    session_action: Optional[Literal["created", "reused", "restarted"]]
    warnings: List[str]


class CreatedEnv(_CreatedRequired, total=False):
    """create_runtime_env: the environment, and what this call did (`pool` when warm pools
    exist)."""

    pool: PoolUse


class PoolInfo(TypedDict):
    pool: str
    size: int
    ready: int
    spec: Dict[str, Any]


class PoolList(TypedDict):
    pools: List[PoolInfo]


class PoolRemoveResult(TypedDict):
    ok: bool
    removed: List[str]


class PolicyView(TypedDict, total=False):
    """show_policy: the operator's policy in force, and where adde looked for it."""

    policy: Optional[Dict[str, Any]]
    source: Optional[str]
    searched: List[str]


class EnvList(TypedDict):
    environments: List[EnvDescription]


class CleanupResult(TypedDict):
    ok: bool
    removed: List[str]
    volumes_removed: List[str]


class ReapResult(TypedDict):
    removed_environments: List[str]
    removed_containers: List[str]
    removed_volumes: List[str]
    removed_folders: List[str]
    removed_build_images: int


# --- Files --------------------------------------------------------------------------------


class WriteFileResult(TypedDict):
    ok: bool
    path: str
    bytes: int


class ReadFileResult(TypedDict):
    path: str
    content: str
    encoding: Encoding
    size: int
    offset: int
    line_count: int
    total_lines: int
    has_more: bool


class ListEntry(TypedDict):
    name: str  # relative to the folder listed
    path: str
    kind: Literal["file", "dir", "symlink", "other"]
    size: int
    mode: str
    modified: str


class ListFilesResult(TypedDict):
    path: str
    entries: List[ListEntry]


class ExportResult(TypedDict):
    ok: bool
    dest: str
    files: List[str]
    bytes: int
    skipped: List[str]


# --- Images and builds --------------------------------------------------------------------


class PullResult(TypedDict):
    ok: bool
    image: str
    id: str


class PrepareResult(TypedDict):
    context_id: str
    files: List[str]
    injected_dockerfile: Optional[Literal["python", "node"]]
    default_dockerignore: bool


class Finding(TypedDict):
    rule: str
    severity: Literal["block", "warning"]
    line: int
    instruction: str
    message: str


class BuildResult(TypedDict):
    """A successful build (a failed one raises BuildFailed, its JSON in `.result`)."""

    status: Literal["success"]
    image_id: str
    tag: str
    size_mb: float
    build_log_summary: str
    findings: List[Finding]
    steps: int
    context_bytes: int
    duration_ms: int


class AgentImage(TypedDict):
    id: str
    tags: List[str]
    size_mb: float
    created: str


class ImageList(TypedDict):
    images: List[AgentImage]


class DeleteImageResult(TypedDict):
    ok: bool
    deleted: List[str]


class PruneResult(TypedDict):
    space_reclaimed_mb: float
    space_reclaimed_bytes: int
    images_deleted: int


# --- The binary itself --------------------------------------------------------------------


class PingResult(TypedDict):
    ok: bool
    adde_version: str
    docker_host: str
    docker_context: str
    engine_version: str
    api_version: str
    min_api_version: str
    os: str
    arch: str
    kernel: str
    runtimes: List[str]
    default_runtime: str
    state_dir: str
    data_root: str
    storage_driver: str


class ToolInfo(TypedDict):
    name: str
    description: str
    input_schema: Dict[str, Any]


class ToolList(TypedDict):
    tools: List[ToolInfo]


class ErrorCodeInfo(TypedDict):
    error_code: str
    meaning: str


class ErrorCodeList(TypedDict):
    error_codes: List[ErrorCodeInfo]


class CellError(TypedDict, total=False):
    """A cell's error: Python's exception (name, value, traceback), or a shell cell's
    `{"name": "ExitStatus", "value": "exit status N"}`; `ContextRestarted` when the context
    was killed."""

    name: str
    value: str
    traceback: str


class _RichResultRequired(TypedDict):
    kind: Literal["execute_result", "display_data"]
    data: Dict[str, Any]


class RichResult(_RichResultRequired, total=False):
    """One rich output: `data` by MIME type ("text/plain", "text/html", "image/png" as
    base64, "image/svg+xml", "application/json", ...); `files` when written to output_dir;
    `omitted` (MIME type to size) when over the size caps."""

    files: Dict[str, str]
    omitted: Dict[str, int]


class _CodeResultRequired(TypedDict):
    run_id: str
    container_id: str
    context: str
    language: Language
    interpreter: str
    execution_count: int
    stdout: str
    stderr: str
    stdout_truncated: bool
    stderr_truncated: bool
    stdout_bytes: int
    stderr_bytes: int
    results: List[RichResult]
    results_truncated: bool
    error: Optional[CellError]
    timed_out: bool
    interrupted: bool
    context_restarted: bool
    duration_ms: int
    started_at: str


class CodeResult(_CodeResultRequired, total=False):
    """run_code's result. `exit_code` for shell cells; `restart_reason` when the context
    restarted."""

    exit_code: int
    restart_reason: str


class ContextInfo(TypedDict):
    name: str
    language: Language
    interpreter: str
    execution_count: int
    busy: bool


class ContextList(TypedDict):
    container_id: str
    contexts: List[ContextInfo]


class ContextClosed(TypedDict):
    ok: bool
    context: str


class _ProcessRequired(TypedDict):
    process_id: str
    container_id: str
    command: List[str]
    state: Literal["running", "exited"]
    started_at: str
    exit_code: Optional[int]
    stdout_bytes: int
    stderr_bytes: int


class ProcessInfo(_ProcessRequired, total=False):
    """A background process (start_process, wait_process, list_processes). Once it has
    exited: `exit_code`, and `signal`, `timed_out`, `oom_killed`, `execution_time` when they
    apply; `error` when adde lost track of it."""

    signal: str
    timed_out: bool
    oom_killed: bool
    execution_time: str
    error: str


class _OutputRequired(ProcessInfo):
    stdout: str
    stderr: str
    stdout_offset: int
    stderr_offset: int
    more: bool


class ProcessOutput(_OutputRequired, total=False):
    """read_process_output: the output from the offsets asked for; pass `stdout_offset` and
    `stderr_offset` to the next read. `*_skipped`: bytes dropped to keep the output bounded."""

    stdout_skipped: int
    stderr_skipped: int


class SignalResult(ProcessInfo):
    """signal_process: whether the signal was sent, and the process as it was then."""

    sent: bool


class ProcessList(TypedDict):
    """list_processes."""

    processes: List[ProcessInfo]


class InstallResult(TypedDict):
    """install_dependencies."""

    container_id: str
    package_manager: str
    packages: List[str]
    execution_time: str


Signal = Literal["SIGTERM", "SIGINT", "SIGHUP", "SIGKILL", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGSTOP", "SIGCONT"]


class OutputEvent(TypedDict):
    """Output of a run as it arrives (the streaming variants, `on_stdout`/`on_stderr`)."""

    event: Literal["stdout", "stderr"]
    data: str


class ResultEvent(TypedDict):
    """The last event of a streamed run: its result."""

    event: Literal["result"]
    result: ExecuteResult


RunEvent = Union[OutputEvent, ResultEvent]
