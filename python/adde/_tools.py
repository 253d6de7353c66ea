"""One function per adde tool, with ADDE's names and signatures. Each builds the call; the
sync API (`adde`) and the asyncio API (`adde.aio`) both run these, so they never drift.

ADDE's own parameters keep their places; adde's further fields are keyword-only arguments
with their JSON names, so a typo (`dependancies=`, `timeout_secs=`) is a TypeError at run
time and an error for a type checker. An argument left at None is not sent: adde applies
its own default (see `adde list_tools` or the README for each field). Every function also
takes `bin_path`, the adde executable (found automatically when None)."""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, List, Literal, Mapping, Optional, Sequence, Union

from ._run import Call
from ._types import (
    BuildNetwork,
    BuildResult,
    CleanupResult,
    CodeResult,
    CommandLine,
    ContextClosed,
    ContextInfo,
    ContextList,
    CreatedEnv,
    DeleteImageResult,
    Encoding,
    EnvList,
    ErrorCodeList,
    ExecuteResult,
    ExportResult,
    ImageList,
    InstallNetwork,
    Language,
    InstallResult,
    ListFilesResult,
    LogsResult,
    Mount,
    OutputEvent,
    PackageManager,
    PingResult,
    PolicyView,
    PoolInfo,
    PoolList,
    PoolRemoveResult,
    PrepareResult,
    ProcessInfo,
    ProcessList,
    ProcessOutput,
    PruneResult,
    PullPolicy,
    PullResult,
    ReadFileResult,
    ReapResult,
    RunContainerResult,
    Signal,
    SignalResult,
    ToolList,
    WriteFileResult,
)

# adde itself gets this long beyond a run's own timeout before the call is abandoned.
MARGIN_SEC = 30.0
DEFAULT_BUILD_TIMEOUT_SEC = 1800.0

StrPath = Union[str, "os.PathLike[str]"]
BinPath = Optional[StrPath]
# Called with each piece of a run's output as it arrives (text; a character is never cut).
OnOutput = Optional[Callable[[str], object]]


def _payload(fields: Mapping[str, Any]) -> Dict[str, Any]:
    payload: Dict[str, Any] = {}
    for key, value in fields.items():
        if value is None:
            continue
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        elif isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, Mapping) and not isinstance(value, dict):
            value = dict(value)
        payload[key] = value
    return payload


def timeout_for(tool: str, payload: Mapping[str, Any]) -> Optional[float]:
    """How long to wait for adde: a run's or a build's own limit plus a margin, else no limit
    (pulls and installs take as long as they take)."""
    if tool in ("execute_code_block", "execute_command", "run_container", "run_code", "wait_process"):
        return float(payload.get("timeout_sec", 30)) + MARGIN_SEC
    if tool.startswith("build_image_from_"):
        return float(payload.get("timeout_sec", DEFAULT_BUILD_TIMEOUT_SEC)) + MARGIN_SEC
    return None


def call(tool: str, payload: Dict[str, Any], bin_path: BinPath) -> Call[Any]:
    """A call of any tool with a ready payload (what the LangChain tools use)."""
    return Call(tool, payload, timeout_for(tool, payload), os.fspath(bin_path) if bin_path is not None else None)


def _run_call(tool: str, fields: Mapping[str, Any], bin_path: BinPath, on_stdout: OnOutput, on_stderr: OnOutput) -> Call[ExecuteResult]:
    """A run, streamed when a callback wants its output as it comes."""
    run: Call[ExecuteResult] = call(tool, _payload(fields), bin_path)
    if on_stdout is None and on_stderr is None:
        return run
    run.payload["stream"] = True

    def on_output(event: OutputEvent) -> None:
        target = on_stdout if event["event"] == "stdout" else on_stderr
        if target is not None:
            target(event["data"])

    run.on_output = on_output
    return run


def pull_image(image: str, *, platform: Optional[str] = None, bin_path: BinPath = None) -> Call[PullResult]:
    """Pull `image` (a tag; "latest" when none). Returns {"ok": True, "image", "id"}.
    `platform`: e.g. "linux/amd64"; the engine's own when None."""
    return call("pull_image", _payload({"image": image, "platform": platform}), bin_path)


def create_runtime_env(
    image: str,
    dependencies: Optional[Sequence[str]] = None,
    env_vars: Optional[Mapping[str, str]] = None,
    network: bool = False,
    port_bindings: Optional[Mapping[str, str]] = None,
    use_image_cmd: bool = False,
    *,
    session: Optional[str] = None,
    memory: Optional[str] = None,
    cpus: Optional[float] = None,
    pids_limit: Optional[int] = None,
    nofile: Optional[int] = None,
    pull: Optional[PullPolicy] = None,
    package_manager: Optional[PackageManager] = None,
    pip_index_url: Optional[str] = None,
    npm_registry: Optional[str] = None,
    install_network: Optional[InstallNetwork] = None,
    install_timeout_sec: Optional[int] = None,
    mounts: Optional[Sequence[Mount]] = None,
    user: Optional[str] = None,
    read_only_rootfs: Optional[bool] = None,
    workdir: Optional[str] = None,
    labels: Optional[Mapping[str, str]] = None,
    runtime: Optional[str] = None,
    ttl_sec: Optional[int] = None,
    disk: Optional[str] = None,
    workspace: Optional[Literal["volume", "tmpfs"]] = None,
    bin_path: BinPath = None,
) -> Call[CreatedEnv]:
    """Create a hardened environment (no network, all capabilities dropped, 512 MiB, 0.5 CPU)
    with a /workspace volume. `dependencies` are installed with pip or npm; `network` gives
    the code a network; `port_bindings` ({"3000": "8080"}) publish on 127.0.0.1 and need
    `network`; `use_image_cmd` runs the image's own command; `session` makes the call
    get-or-create by name. Returns the environment as the engine applied it:
    {"container_id", "workspace", "limits", "security", "session_action", ...}.
    Limits and the rest: memory, cpus, pids_limit, nofile, pull, package_manager,
    pip_index_url, npm_registry, install_network, install_timeout_sec, mounts, user,
    read_only_rootfs, workdir, labels, runtime, ttl_sec, disk, workspace ("volume" or
    "tmpfs")."""
    fields = {
        "image": image,
        "dependencies": dependencies,
        "env_vars": env_vars,
        "network": network,
        "port_bindings": port_bindings,
        "use_image_cmd": use_image_cmd,
        "session": session,
        "memory": memory,
        "cpus": cpus,
        "pids_limit": pids_limit,
        "nofile": nofile,
        "pull": pull,
        "package_manager": package_manager,
        "pip_index_url": pip_index_url,
        "npm_registry": npm_registry,
        "install_network": install_network,
        "install_timeout_sec": install_timeout_sec,
        "mounts": mounts,
        "user": user,
        "read_only_rootfs": read_only_rootfs,
        "workdir": workdir,
        "labels": labels,
        "runtime": runtime,
        "ttl_sec": ttl_sec,
    }
    return call("create_runtime_env", _payload(fields), bin_path)


def execute_code_block(
    container_id: str,
    filename: str,
    code_content: str,
    timeout_sec: float = 30,
    *,
    command: Optional[Sequence[str]] = None,
    max_output_bytes: Optional[int] = None,
    on_stdout: OnOutput = None,
    on_stderr: OnOutput = None,
    bin_path: BinPath = None,
) -> Call[ExecuteResult]:
    """Write `code_content` to /workspace/`filename` and run it; after `timeout_sec` the run
    and everything it started are killed. Returns {"log": {"exit_code", "stdout", "stderr",
    "execution_time", "timed_out", ...}}: a program that fails or times out is a result, not
    an exception. `command`: an argv to run instead of the interpreter the extension picks;
    `max_output_bytes`: bytes kept of each stream; `on_stdout`, `on_stderr`: called with the
    program's output as it arrives (`adde.aio.stream_code_block` yields it instead)."""
    fields = {
        "container_id": container_id,
        "filename": filename,
        "code_content": code_content,
        "timeout_sec": timeout_sec,
        "command": command,
        "max_output_bytes": max_output_bytes,
    }
    return _run_call("execute_code_block", fields, bin_path, on_stdout, on_stderr)


def get_container_logs(
    container_id: str,
    tail_lines: int = 0,
    *,
    run_id: Optional[str] = None,
    all: Optional[bool] = None,
    container_output: Optional[bool] = None,
    bin_path: BinPath = None,
) -> Call[LogsResult]:
    """The environment's last run as {"log": {...}}; `tail_lines` keeps the last N lines of
    each stream. `run_id`: that run instead; `all=True`: every run, as "runs";
    `container_output=True`: the container's own stdout and stderr too."""
    fields = {
        "container_id": container_id,
        "tail_lines": tail_lines,
        "run_id": run_id,
        "all": all,
        "container_output": container_output,
    }
    return call("get_container_logs", _payload(fields), bin_path)


def cleanup_env(
    container_id: Optional[str] = None,
    *,
    session: Optional[str] = None,
    all: Optional[bool] = None,
    all_owners: Optional[bool] = None,
    labels: Optional[Mapping[str, str]] = None,
    bin_path: BinPath = None,
) -> Call[CleanupResult]:
    """Stop and remove an environment (by id, name or `session`) and its volumes; `all=True`
    removes every environment this owner made (`all_owners=True`: everyone's; only those with
    `labels`, when given). Returns {"ok": True, "removed", "volumes_removed"}."""
    fields = {"container_id": container_id, "session": session, "all": all, "all_owners": all_owners, "labels": labels}
    return call("cleanup_env", _payload(fields), bin_path)


def prepare_build_context(
    files: Mapping[str, str],
    context_id: Optional[str] = None,
    *,
    files_base64: Optional[Mapping[str, str]] = None,
    base_image: Optional[str] = None,
    bin_path: BinPath = None,
) -> Call[PrepareResult]:
    """Stage files (path -> text) as a private build context; returns {"context_id", ...}.
    `files_base64`: path -> base64, for binary files; `base_image`: of the Dockerfile adde
    writes for Python or Node projects that have none."""
    fields = {"files": files, "context_id": context_id, "files_base64": files_base64, "base_image": base_image}
    return call("prepare_build_context", _payload(fields), bin_path)


def _build(
    tool: str,
    source: Dict[str, Any],
    tag: Optional[str],
    build_args: Optional[Mapping[str, str]],
    dockerfile: Optional[str],
    target: Optional[str],
    no_cache: Optional[bool],
    labels: Optional[Mapping[str, str]],
    network: Optional[BuildNetwork],
    max_context_mb: Optional[float],
    timeout_sec: Optional[float],
    allow_remote_add: Optional[bool],
    bin_path: BinPath,
) -> Call[BuildResult]:
    fields = {
        **source,
        "tag": tag,
        "build_args": build_args,
        "dockerfile": dockerfile,
        "target": target,
        "no_cache": no_cache,
        "labels": labels,
        "network": network,
        "max_context_mb": max_context_mb,
        "timeout_sec": timeout_sec,
        "allow_remote_add": allow_remote_add,
    }
    return call(tool, _payload(fields), bin_path)


def build_image_from_context(
    context_id: str,
    tag: Optional[str] = None,
    build_args: Optional[Mapping[str, str]] = None,
    *,
    dockerfile: Optional[str] = None,
    target: Optional[str] = None,
    no_cache: Optional[bool] = None,
    labels: Optional[Mapping[str, str]] = None,
    network: Optional[BuildNetwork] = None,
    max_context_mb: Optional[float] = None,
    timeout_sec: Optional[float] = None,
    allow_remote_add: Optional[bool] = None,
    bin_path: BinPath = None,
) -> Call[BuildResult]:
    """Build a context from prepare_build_context. Returns {"status": "success", "image_id",
    "tag", "size_mb", "build_log_summary", "findings", ...}; raises BuildFailed (with
    failed_layer and build_log_summary in .result) when a step fails or the Dockerfile is
    blocked."""
    return _build(
        "build_image_from_context", {"context_id": context_id}, tag, build_args, dockerfile, target, no_cache,
        labels, network, max_context_mb, timeout_sec, allow_remote_add, bin_path,
    )  # fmt: skip


def build_image_from_path(
    path: StrPath,
    tag: Optional[str] = None,
    build_args: Optional[Mapping[str, str]] = None,
    *,
    dockerfile: Optional[str] = None,
    target: Optional[str] = None,
    no_cache: Optional[bool] = None,
    labels: Optional[Mapping[str, str]] = None,
    network: Optional[BuildNetwork] = None,
    max_context_mb: Optional[float] = None,
    timeout_sec: Optional[float] = None,
    allow_remote_add: Optional[bool] = None,
    bin_path: BinPath = None,
) -> Call[BuildResult]:
    """Build a folder holding a Dockerfile, like build_image_from_context."""
    return _build(
        "build_image_from_path", {"path": path}, tag, build_args, dockerfile, target, no_cache,
        labels, network, max_context_mb, timeout_sec, allow_remote_add, bin_path,
    )  # fmt: skip


def build_image_from_git(
    url: str,
    tag: Optional[str] = None,
    build_args: Optional[Mapping[str, str]] = None,
    *,
    ref: Optional[str] = None,
    subdir: Optional[str] = None,
    dockerfile: Optional[str] = None,
    target: Optional[str] = None,
    no_cache: Optional[bool] = None,
    labels: Optional[Mapping[str, str]] = None,
    network: Optional[BuildNetwork] = None,
    max_context_mb: Optional[float] = None,
    timeout_sec: Optional[float] = None,
    allow_remote_add: Optional[bool] = None,
    bin_path: BinPath = None,
) -> Call[BuildResult]:
    """Clone a repository (shallow; `ref` a branch, tag or commit, `subdir` the folder to
    build) and build it like build_image_from_path."""
    return _build(
        "build_image_from_git", {"url": url, "ref": ref, "subdir": subdir}, tag, build_args, dockerfile, target,
        no_cache, labels, network, max_context_mb, timeout_sec, allow_remote_add, bin_path,
    )  # fmt: skip


def list_agent_images(filter_tag: Optional[str] = None, *, bin_path: BinPath = None) -> Call[ImageList]:
    """The images adde built, as {"images": [{"id", "tags", "size_mb", "created"}]}."""
    return call("list_agent_images", _payload({"filter_tag": filter_tag}), bin_path)


def prune_build_cache(older_than_hrs: Optional[float] = None, *, bin_path: BinPath = None) -> Call[PruneResult]:
    """Remove what adde's builds left behind; returns {"space_reclaimed_mb", ...}."""
    return call("prune_build_cache", _payload({"older_than_hrs": older_than_hrs}), bin_path)


def delete_image(
    image: str, force: bool = False, agent_env_only: bool = True, *, bin_path: BinPath = None
) -> Call[DeleteImageResult]:
    """Delete an image adde built (any image with agent_env_only=False)."""
    fields = {"image": image, "force": force, "agent_env_only": agent_env_only}
    return call("delete_image", _payload(fields), bin_path)


def execute_command(
    container_id: str,
    command: CommandLine,
    timeout_sec: float = 30,
    *,
    workdir: Optional[str] = None,
    env: Optional[Mapping[str, str]] = None,
    stdin: Optional[str] = None,
    max_output_bytes: Optional[int] = None,
    on_stdout: OnOutput = None,
    on_stderr: OnOutput = None,
    bin_path: BinPath = None,
) -> Call[ExecuteResult]:
    """Run a shell command line (a string, through sh -c) or an argument list (no shell),
    with the same enforced timeout and log as execute_code_block (and its `on_stdout` and
    `on_stderr`; `adde.aio.stream_command` yields the output instead)."""
    fields = {
        "container_id": container_id,
        "command": command,
        "timeout_sec": timeout_sec,
        "workdir": workdir,
        "env": env,
        "stdin": stdin,
        "max_output_bytes": max_output_bytes,
    }
    return _run_call("execute_command", fields, bin_path, on_stdout, on_stderr)


def write_file(
    container_id: str,
    path: str,
    content: str,
    *,
    encoding: Optional[Encoding] = None,
    mode: Optional[str] = None,
    bin_path: BinPath = None,
) -> Call[WriteFileResult]:
    """Write a file (relative paths are under /workspace). `encoding`: "utf8" or "base64";
    `mode`: e.g. "0755"."""
    fields = {"container_id": container_id, "path": path, "content": content, "encoding": encoding, "mode": mode}
    return call("write_file", _payload(fields), bin_path)


def read_file(
    container_id: str,
    path: str,
    *,
    offset: Optional[int] = None,
    line_count: Optional[int] = None,
    max_bytes: Optional[int] = None,
    encoding: Optional[Encoding] = None,
    bin_path: BinPath = None,
) -> Call[ReadFileResult]:
    """Read a file: {"content", "size", "has_more", ...}. `offset` and `line_count` page text
    by lines; `max_bytes` caps the read; encoding="base64" for binary files."""
    fields = {
        "container_id": container_id,
        "path": path,
        "offset": offset,
        "line_count": line_count,
        "max_bytes": max_bytes,
        "encoding": encoding,
    }
    return call("read_file", _payload(fields), bin_path)


def list_files(
    container_id: str, path: Optional[str] = None, recursive: bool = False, *, bin_path: BinPath = None
) -> Call[ListFilesResult]:
    """List a folder (default /workspace): {"entries": [{"name", "kind", "size", "mode", "modified"}]}."""
    fields = {"container_id": container_id, "path": path, "recursive": recursive}
    return call("list_files", _payload(fields), bin_path)


def export_files(
    container_id: str, paths: Sequence[str], dest: StrPath, *, bin_path: BinPath = None
) -> Call[ExportResult]:
    """Copy files or folders out into the host folder `dest` (nothing is written outside it)."""
    fields = {"container_id": container_id, "paths": paths, "dest": dest}
    return call("export_files", _payload(fields), bin_path)


def list_runtime_envs(
    session: Optional[str] = None,
    all: bool = False,
    *,
    all_owners: Optional[bool] = None,
    bin_path: BinPath = None,
) -> Call[EnvList]:
    """adde's environments: {"environments": [{"container_id", "session", "state", ...}]};
    only this owner's unless `all_owners=True`."""
    fields = {"session": session, "all": all, "all_owners": all_owners}
    return call("list_runtime_envs", _payload(fields), bin_path)


def reap(
    *,
    context_max_age_hrs: Optional[float] = None,
    all_owners: Optional[bool] = None,
    bin_path: BinPath = None,
) -> Call[ReapResult]:
    """Remove environments past their TTL and whatever nothing uses any more (build contexts
    unchanged for `context_max_age_hrs`, default a week); this owner's unless `all_owners`."""
    fields = {"context_max_age_hrs": context_max_age_hrs, "all_owners": all_owners}
    return call("reap", _payload(fields), bin_path)


def run_container(
    image: str,
    *,
    command: Optional[CommandLine] = None,
    code_content: Optional[str] = None,
    filename: Optional[str] = None,
    payload: Optional[Mapping[str, str]] = None,
    payload_path: Optional[StrPath] = None,
    timeout_sec: Optional[float] = None,
    env: Optional[Mapping[str, str]] = None,
    memory: Optional[str] = None,
    cpus: Optional[float] = None,
    pids_limit: Optional[int] = None,
    network: Optional[bool] = None,
    max_output_bytes: Optional[int] = None,
    bin_path: BinPath = None,
) -> Call[RunContainerResult]:
    """One-shot run: create, put the code or payload in, run, collect the log, remove.
    Give `command`, or `code_content` and `filename`."""
    fields = {
        "image": image,
        "command": command,
        "code_content": code_content,
        "filename": filename,
        "payload": payload,
        "payload_path": payload_path,
        "timeout_sec": timeout_sec,
        "env": env,
        "memory": memory,
        "cpus": cpus,
        "pids_limit": pids_limit,
        "network": network,
        "max_output_bytes": max_output_bytes,
    }
    return call("run_container", _payload(fields), bin_path)


def ping(*, bin_path: BinPath = None) -> Call[PingResult]:
    """The engine's versions and runtimes, adde's version and state directory."""
    return call("ping", {}, bin_path)


def list_tools(*, bin_path: BinPath = None) -> Call[ToolList]:
    """Every tool with its description and input JSON Schema."""
    return call("list_tools", {}, bin_path)


def list_error_codes(*, bin_path: BinPath = None) -> Call[ErrorCodeList]:
    """Every error_code adde can return, with what it means."""
    return call("list_error_codes", {}, bin_path)


def show_policy(*, bin_path: BinPath = None) -> Call[PolicyView]:
    """The operator's policy in force ({"policy": {...} or None, "source", "searched"}), so a
    caller can stay within its limits."""
    return call("show_policy", {}, bin_path)


def pool_create(spec: Mapping[str, Any], size: int, *, bin_path: BinPath = None) -> Call[PoolInfo]:
    """Keep `size` environments of a create_runtime_env `spec` started ahead of time;
    create_runtime_env with exactly that spec then takes one. Returns {"pool", "size",
    "ready", "spec"}."""
    return call("pool_create", {"spec": dict(spec), "size": size}, bin_path)


def pool_list(*, bin_path: BinPath = None) -> Call[PoolList]:
    """The warm pools: {"pools": [{"pool", "size", "ready", "spec"}]}."""
    return call("pool_list", {}, bin_path)


def pool_remove(pool: str, *, bin_path: BinPath = None) -> Call[PoolRemoveResult]:
    """Remove a warm pool and the environments it had ready."""
    return call("pool_remove", {"pool": pool}, bin_path)


def run_code(
    container_id: str,
    code: str,
    language: Language = "python",
    context: str = "default",
    timeout_sec: float = 30,
    *,
    max_output_bytes: Optional[int] = None,
    max_result_bytes: Optional[int] = None,
    max_cell_bytes: Optional[int] = None,
    svg: Optional[bool] = None,
    output_dir: Optional[str] = None,
    bin_path: BinPath = None,
) -> Call[CodeResult]:
    """Run a cell in a persistent context of the environment (made on first use): Python
    globals and imports, or a shell's directory, variables and functions, stay between calls.
    Returns {"stdout", "stderr", "results" (rich outputs by MIME type: the last expression's
    value, display(), matplotlib PNGs, pandas HTML), "error", "execution_count",
    "context_restarted", "run_id", ...}. At `timeout_sec` the cell is interrupted; one that
    does not stop is killed with its context, which restarts. `svg`: figures as SVG too;
    `output_dir`: write rich outputs as files there and return their paths."""
    fields = {
        "container_id": container_id,
        "code": code,
        "language": language,
        "context": context,
        "timeout_sec": timeout_sec,
        "max_output_bytes": max_output_bytes,
        "max_result_bytes": max_result_bytes,
        "max_cell_bytes": max_cell_bytes,
        "svg": svg,
        "output_dir": output_dir,
    }
    return call("run_code", _payload(fields), bin_path)


def context_create(
    container_id: str, context: str = "default", language: Language = "python", *, bin_path: BinPath = None
) -> Call[ContextInfo]:
    """Start a named code context; run_code also starts one on first use."""
    fields = {"container_id": container_id, "context": context, "language": language}
    return call("context_create", fields, bin_path)


def context_list(container_id: str, *, bin_path: BinPath = None) -> Call[ContextList]:
    """The environment's code contexts: name, language, interpreter, cells run, busy."""
    return call("context_list", {"container_id": container_id}, bin_path)


def context_reset(container_id: str, context: str = "default", *, bin_path: BinPath = None) -> Call[ContextInfo]:
    """Restart a code context: its state is gone, its name stays."""
    return call("context_reset", {"container_id": container_id, "context": context}, bin_path)


def context_close(container_id: str, context: str = "default", *, bin_path: BinPath = None) -> Call[ContextClosed]:
    """End a code context and everything it runs."""
    return call("context_close", {"container_id": container_id, "context": context}, bin_path)


def install_dependencies(
    container_id: str,
    packages: Sequence[str],
    manager: Optional[PackageManager] = None,
    *,
    pip_index_url: Optional[str] = None,
    npm_registry: Optional[str] = None,
    install_network: Optional[InstallNetwork] = None,
    install_timeout_sec: Optional[int] = None,
    bin_path: BinPath = None,
) -> Call[InstallResult]:
    """Install `packages` into a running environment, as create_runtime_env's `dependencies`
    are: the installer gets a network, the code never does. Returns {"package_manager",
    "packages", "execution_time", ...}; raises AddeError (dependency_install_failed, with the
    installer's output in .result) when the install fails."""
    fields = {
        "container_id": container_id,
        "packages": packages,
        "manager": manager,
        "pip_index_url": pip_index_url,
        "npm_registry": npm_registry,
        "install_network": install_network,
        "install_timeout_sec": install_timeout_sec,
    }
    return call("install_dependencies", _payload(fields), bin_path)


def start_process(
    container_id: str,
    command: CommandLine,
    *,
    workdir: Optional[str] = None,
    env: Optional[Mapping[str, str]] = None,
    timeout_sec: Optional[float] = None,
    max_output_bytes: Optional[int] = None,
    bin_path: BinPath = None,
) -> Call[ProcessInfo]:
    """Start a command in the background (a server, a watcher): it outlives the call, until
    it exits, is signalled, reaches `timeout_sec` (none by default) or the environment is
    removed. Returns {"process_id", "state": "running", ...}. The last `max_output_bytes` of
    each stream are kept."""
    fields = {
        "container_id": container_id,
        "command": command,
        "workdir": workdir,
        "env": env,
        "timeout_sec": timeout_sec,
        "max_output_bytes": max_output_bytes,
    }
    return call("start_process", _payload(fields), bin_path)


def read_process_output(
    container_id: str,
    process_id: str,
    stdout_offset: int = 0,
    stderr_offset: int = 0,
    *,
    max_bytes: Optional[int] = None,
    bin_path: BinPath = None,
) -> Call[ProcessOutput]:
    """A background process's output from these offsets, with its state: pass the result's
    `stdout_offset` and `stderr_offset` to the next read to get only what is new."""
    fields = {
        "container_id": container_id,
        "process_id": process_id,
        "stdout_offset": stdout_offset,
        "stderr_offset": stderr_offset,
        "max_bytes": max_bytes,
    }
    return call("read_process_output", _payload(fields), bin_path)


def signal_process(
    container_id: str, process_id: str, signal: Signal = "SIGTERM", *, bin_path: BinPath = None
) -> Call[SignalResult]:
    """Send `signal` to a background process and what it started; {"sent": False} when it
    had already exited."""
    fields = {"container_id": container_id, "process_id": process_id, "signal": signal}
    return call("signal_process", _payload(fields), bin_path)


def wait_process(
    container_id: str, process_id: str, timeout_sec: float = 30, *, bin_path: BinPath = None
) -> Call[ProcessInfo]:
    """Wait up to `timeout_sec` for a background process to exit; its state either way."""
    fields = {"container_id": container_id, "process_id": process_id, "timeout_sec": timeout_sec}
    return call("wait_process", _payload(fields), bin_path)


def list_processes(container_id: str, *, bin_path: BinPath = None) -> Call[ProcessList]:
    """An environment's background processes: running ones and the last that exited."""
    return call("list_processes", {"container_id": container_id}, bin_path)


NAMES: List[str] = [
    "pull_image",
    "create_runtime_env",
    "execute_code_block",
    "get_container_logs",
    "cleanup_env",
    "prepare_build_context",
    "build_image_from_context",
    "build_image_from_path",
    "build_image_from_git",
    "list_agent_images",
    "prune_build_cache",
    "delete_image",
    "execute_command",
    "write_file",
    "read_file",
    "list_files",
    "export_files",
    "list_runtime_envs",
    "reap",
    "run_container",
    "ping",
    "list_tools",
    "list_error_codes",
    "show_policy",
    "pool_create",
    "pool_list",
    "pool_remove",
    "run_code",
    "context_create",
    "context_list",
    "context_reset",
    "context_close",
    "install_dependencies",
    "start_process",
    "read_process_output",
    "signal_process",
    "wait_process",
    "list_processes",
]
