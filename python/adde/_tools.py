"""One function per adde tool, with ADDE's names and signatures. Each builds the call; the
sync API (`adde`) and the asyncio API (`adde.aio`) both run these, so they never drift.

Every function takes `bin_path` (the adde executable; found automatically when None) and
keyword arguments for adde's extra options, passed through as JSON fields (see
`adde list_tools` or the README for each tool's fields)."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

from ._run import Call

# adde itself gets this long beyond a run's own timeout before the call is abandoned.
MARGIN_SEC = 30.0
DEFAULT_BUILD_TIMEOUT_SEC = 1800.0


def _payload(fields: Mapping[str, Any], options: Mapping[str, Any]) -> Dict[str, Any]:
    payload = {k: v for k, v in fields.items() if v is not None}
    payload.update(options)
    return payload


def timeout_for(tool: str, payload: Mapping[str, Any]) -> Optional[float]:
    """How long to wait for adde: a run's or a build's own limit plus a margin, else no limit
    (pulls and installs take as long as they take)."""
    if tool in ("execute_code_block", "execute_command", "run_container"):
        return float(payload.get("timeout_sec", 30)) + MARGIN_SEC
    if tool.startswith("build_image_from_"):
        return float(payload.get("timeout_sec", DEFAULT_BUILD_TIMEOUT_SEC)) + MARGIN_SEC
    return None


def call(tool: str, payload: Dict[str, Any], bin_path: Optional[str]) -> Call:
    return Call(tool, payload, timeout_for(tool, payload), bin_path)


def pull_image(image: str, *, bin_path: Optional[str] = None, **options: Any) -> Call:
    """Pull `image` (a tag; "latest" when none). Returns {"ok": True, "image", "id"}.
    Options: platform."""
    return call("pull_image", _payload({"image": image}, options), bin_path)


def create_runtime_env(
    image: str,
    dependencies: Optional[List[str]] = None,
    env_vars: Optional[Dict[str, str]] = None,
    network: bool = False,
    port_bindings: Optional[Dict[str, str]] = None,
    use_image_cmd: bool = False,
    *,
    bin_path: Optional[str] = None,
    **options: Any,
) -> Call:
    """Create a hardened environment (no network, all capabilities dropped, 512 MiB, 0.5 CPU)
    with a /workspace volume. `dependencies` are installed with pip or npm; `network` gives
    the code a network; `port_bindings` ({"3000": "8080"}) publish on 127.0.0.1 and need
    `network`; `use_image_cmd` runs the image's own command. Returns {"container_id",
    "workspace", "limits", "security", ...}. Options: memory, cpus, pids_limit, nofile, pull,
    package_manager, pip_index_url, npm_registry, install_network, install_timeout_sec, disk,
    workspace ("volume" or "tmpfs")."""
    fields = {
        "image": image,
        "dependencies": dependencies,
        "env_vars": env_vars,
        "network": network,
        "port_bindings": port_bindings,
        "use_image_cmd": use_image_cmd,
    }
    return call("create_runtime_env", _payload(fields, options), bin_path)


def execute_code_block(
    container_id: str,
    filename: str,
    code_content: str,
    timeout_sec: float = 30,
    *,
    bin_path: Optional[str] = None,
    **options: Any,
) -> Call:
    """Write `code_content` to /workspace/`filename` and run it; after `timeout_sec` the run
    and everything it started are killed. Returns {"log": {"exit_code", "stdout", "stderr",
    "execution_time", "timed_out", ...}}: a program that fails or times out is a result, not
    an exception. Options: command (argv list), max_output_bytes."""
    fields = {"container_id": container_id, "filename": filename, "code_content": code_content, "timeout_sec": timeout_sec}
    return call("execute_code_block", _payload(fields, options), bin_path)


def get_container_logs(container_id: str, tail_lines: int = 0, *, bin_path: Optional[str] = None, **options: Any) -> Call:
    """The environment's last run as {"log": {...}}; `tail_lines` keeps the last N lines of
    each stream. Options: run_id, all (every run, as "runs"), container_output."""
    fields = {"container_id": container_id, "tail_lines": tail_lines}
    return call("get_container_logs", _payload(fields, options), bin_path)


def cleanup_env(container_id: Optional[str] = None, *, bin_path: Optional[str] = None, **options: Any) -> Call:
    """Stop and remove an environment (id, name or session) and its volumes; `all=True` removes
    every environment this owner made (all_owners=True: everyone's). Returns {"ok": True,
    "removed", "volumes_removed"}."""
    return call("cleanup_env", _payload({"container_id": container_id}, options), bin_path)


def prepare_build_context(
    files: Dict[str, str],
    context_id: Optional[str] = None,
    *,
    bin_path: Optional[str] = None,
    **options: Any,
) -> Call:
    """Stage files (path -> text) as a private build context; returns {"context_id", ...}.
    Options: files_base64 (path -> base64, for binary files), base_image (for the Dockerfile
    adde writes for Python or Node projects that have none)."""
    fields = {"files": files, "context_id": context_id}
    return call("prepare_build_context", _payload(fields, options), bin_path)


def build_image_from_context(
    context_id: str,
    tag: Optional[str] = None,
    build_args: Optional[Dict[str, str]] = None,
    *,
    bin_path: Optional[str] = None,
    **options: Any,
) -> Call:
    """Build a context from prepare_build_context. Returns {"status": "success", "image_id",
    "tag", "size_mb", "build_log_summary", "findings"}; raises BuildFailed (with
    failed_layer and build_log_summary in .result) when a step fails or the Dockerfile is
    blocked. Options: dockerfile, target, no_cache, labels, network, max_context_mb, timeout_sec,
    allow_remote_add."""
    fields = {"context_id": context_id, "tag": tag, "build_args": build_args}
    return call("build_image_from_context", _payload(fields, options), bin_path)


def build_image_from_path(
    path: str,
    tag: Optional[str] = None,
    build_args: Optional[Dict[str, str]] = None,
    *,
    bin_path: Optional[str] = None,
    **options: Any,
) -> Call:
    """Build a folder holding a Dockerfile, like build_image_from_context."""
    fields = {"path": str(path), "tag": tag, "build_args": build_args}
    return call("build_image_from_path", _payload(fields, options), bin_path)


def build_image_from_git(
    url: str,
    tag: Optional[str] = None,
    build_args: Optional[Dict[str, str]] = None,
    *,
    bin_path: Optional[str] = None,
    **options: Any,
) -> Call:
    """Clone a repository (shallow) and build it like build_image_from_path. Options: ref,
    subdir, and the build options."""
    fields = {"url": url, "tag": tag, "build_args": build_args}
    return call("build_image_from_git", _payload(fields, options), bin_path)


def list_agent_images(filter_tag: Optional[str] = None, *, bin_path: Optional[str] = None) -> Call:
    """The images adde built, as {"images": [{"id", "tags", "size_mb", "created"}]}."""
    return call("list_agent_images", _payload({"filter_tag": filter_tag}, {}), bin_path)


def prune_build_cache(older_than_hrs: Optional[float] = None, *, bin_path: Optional[str] = None) -> Call:
    """Remove what adde's builds left behind; returns {"space_reclaimed_mb", ...}."""
    return call("prune_build_cache", _payload({"older_than_hrs": older_than_hrs}, {}), bin_path)


def delete_image(image: str, force: bool = False, agent_env_only: bool = True, *, bin_path: Optional[str] = None) -> Call:
    """Delete an image adde built (any image with agent_env_only=False)."""
    fields = {"image": image, "force": force, "agent_env_only": agent_env_only}
    return call("delete_image", _payload(fields, {}), bin_path)


def execute_command(
    container_id: str,
    command: Any,
    timeout_sec: float = 30,
    *,
    bin_path: Optional[str] = None,
    **options: Any,
) -> Call:
    """Run a shell command line (a string, through sh -c) or an argument list (no shell),
    with the same enforced timeout and log as execute_code_block. Options: workdir, env,
    stdin, max_output_bytes."""
    fields = {"container_id": container_id, "command": command, "timeout_sec": timeout_sec}
    return call("execute_command", _payload(fields, options), bin_path)


def write_file(container_id: str, path: str, content: str, *, bin_path: Optional[str] = None, **options: Any) -> Call:
    """Write a file (relative paths are under /workspace). Options: encoding ("utf8" or
    "base64"), mode (e.g. "0755")."""
    return call("write_file", _payload({"container_id": container_id, "path": path, "content": content}, options), bin_path)


def read_file(container_id: str, path: str, *, bin_path: Optional[str] = None, **options: Any) -> Call:
    """Read a file: {"content", "size", "has_more", ...}. Options: offset and line_count
    (lines, for text), max_bytes, encoding ("base64" for binary files)."""
    return call("read_file", _payload({"container_id": container_id, "path": path}, options), bin_path)


def list_files(container_id: str, path: Optional[str] = None, recursive: bool = False, *, bin_path: Optional[str] = None) -> Call:
    """List a folder (default /workspace): {"entries": [{"name", "kind", "size", "mode", "modified"}]}."""
    fields = {"container_id": container_id, "path": path, "recursive": recursive}
    return call("list_files", _payload(fields, {}), bin_path)


def export_files(container_id: str, paths: List[str], dest: str, *, bin_path: Optional[str] = None) -> Call:
    """Copy files or folders out into the host folder `dest` (nothing is written outside it)."""
    fields = {"container_id": container_id, "paths": paths, "dest": str(dest)}
    return call("export_files", _payload(fields, {}), bin_path)


def list_runtime_envs(
    session: Optional[str] = None, all: bool = False, *, bin_path: Optional[str] = None, **options: Any
) -> Call:
    """adde's environments: {"environments": [{"container_id", "session", "state", ...}]}.
    Only this owner's unless all_owners=True."""
    return call("list_runtime_envs", _payload({"session": session, "all": all}, options), bin_path)


def reap(*, bin_path: Optional[str] = None, **options: Any) -> Call:
    """Remove environments past their TTL and whatever nothing uses any more."""
    return call("reap", _payload({}, options), bin_path)


def run_container(image: str, *, bin_path: Optional[str] = None, **options: Any) -> Call:
    """One-shot run: create, put the code or payload in, run, collect the log, remove.
    Options: command or code_content (+ filename), payload, payload_path, timeout_sec, env,
    memory, cpus, pids_limit, network."""
    return call("run_container", _payload({"image": image}, options), bin_path)


def ping(*, bin_path: Optional[str] = None) -> Call:
    """The engine's versions and runtimes, adde's version and state directory."""
    return call("ping", {}, bin_path)


def list_tools(*, bin_path: Optional[str] = None) -> Call:
    """Every tool with its description and input JSON Schema."""
    return call("list_tools", {}, bin_path)


def list_error_codes(*, bin_path: Optional[str] = None) -> Call:
    """Every error_code adde can return, with what it means."""
    return call("list_error_codes", {}, bin_path)


def show_policy(*, bin_path: Optional[str] = None) -> Call:
    """The operator's policy in force ({"policy": {...} or None, "source", "searched"}), so a
    caller can stay within its limits."""
    return call("show_policy", {}, bin_path)


NAMES = [
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
]
