"""adde: run AI agents' code safely in hardened Docker containers.

A thin client for the `adde` binary, with ADDE's function names and signatures. Each function
returns the tool's JSON result as a dict and raises AddeError (a RuntimeError) when the tool
fails. A program that exits non-zero or times out inside the container is not an error: it is
the returned log.

    import adde
    env = adde.create_runtime_env("python:3.12-slim", dependencies=["requests"])
    log = adde.execute_code_block(env["container_id"], "main.py", "print(6 * 7)")["log"]
    adde.cleanup_env(env["container_id"])

`adde.run_code` runs cells in a persistent code context (`adde.Context(cid).run(code)`).
`adde.aio` has the same functions for asyncio, `adde.langchain` LangChain/LangGraph tools,
and `adde.Client` / `adde.AsyncClient` the same again as methods that talk to a running
`adde serve` (no process per call).
The results are TypedDicts (`adde.RunLog`, `adde.CreatedEnv`, ...): plain dicts whose keys a
type checker knows. adde's own stderr is not printed: it goes to the "adde" logger at DEBUG
level (and to stderr with ADDE_VERBOSE=1), and onto AddeError.stderr.
"""

from . import _tools
from ._client import AsyncClient, Client
from ._context import Context
from ._errors import (
    AddeError,
    AddeTimeout,
    BinaryNotFound,
    BuildFailed,
    DockerUnavailable,
    InvalidInput,
    NotFound,
    NotManaged,
    PolicyDenied,
)
from ._find import find_adde_bin
from ._types import (
    AgentImage as AgentImage,
    BuildNetwork as BuildNetwork,
    BuildResult as BuildResult,
    CellError as CellError,
    CleanupResult as CleanupResult,
    CodeResult as CodeResult,
    CommandLine as CommandLine,
    ContextClosed as ContextClosed,
    ContextInfo as ContextInfo,
    ContextList as ContextList,
    ContainerOutput as ContainerOutput,
    CreatedEnv as CreatedEnv,
    DeleteImageResult as DeleteImageResult,
    Encoding as Encoding,
    EnvDescription as EnvDescription,
    EnvList as EnvList,
    ErrorCodeInfo as ErrorCodeInfo,
    ErrorCodeList as ErrorCodeList,
    ExecuteResult as ExecuteResult,
    ExportResult as ExportResult,
    Finding as Finding,
    ImageList as ImageList,
    InstallNetwork as InstallNetwork,
    InstallResult as InstallResult,
    InstalledDeps as InstalledDeps,
    Language as Language,
    Limits as Limits,
    ListEntry as ListEntry,
    ListFilesResult as ListFilesResult,
    LogsResult as LogsResult,
    Mount as Mount,
    MountInfo as MountInfo,
    OutputEvent as OutputEvent,
    PackageManager as PackageManager,
    PingResult as PingResult,
    PrepareResult as PrepareResult,
    ProcessInfo as ProcessInfo,
    ProcessList as ProcessList,
    ProcessOutput as ProcessOutput,
    PruneResult as PruneResult,
    PullPolicy as PullPolicy,
    PullResult as PullResult,
    ReadFileResult as ReadFileResult,
    ReapResult as ReapResult,
    RichResult as RichResult,
    ResultEvent as ResultEvent,
    RunContainerResult as RunContainerResult,
    RunError as RunError,
    RunEvent as RunEvent,
    RunLog as RunLog,
    Security as Security,
    Signal as Signal,
    SignalResult as SignalResult,
    ToolInfo as ToolInfo,
    ToolList as ToolList,
    WriteFileResult as WriteFileResult,
)
from ._run import sync_tool

pull_image = sync_tool(_tools.pull_image)
create_runtime_env = sync_tool(_tools.create_runtime_env)
execute_code_block = sync_tool(_tools.execute_code_block)
get_container_logs = sync_tool(_tools.get_container_logs)
cleanup_env = sync_tool(_tools.cleanup_env)
prepare_build_context = sync_tool(_tools.prepare_build_context)
build_image_from_context = sync_tool(_tools.build_image_from_context)
build_image_from_path = sync_tool(_tools.build_image_from_path)
build_image_from_git = sync_tool(_tools.build_image_from_git)
list_agent_images = sync_tool(_tools.list_agent_images)
prune_build_cache = sync_tool(_tools.prune_build_cache)
delete_image = sync_tool(_tools.delete_image)
execute_command = sync_tool(_tools.execute_command)
write_file = sync_tool(_tools.write_file)
read_file = sync_tool(_tools.read_file)
list_files = sync_tool(_tools.list_files)
export_files = sync_tool(_tools.export_files)
list_runtime_envs = sync_tool(_tools.list_runtime_envs)
reap = sync_tool(_tools.reap)
run_container = sync_tool(_tools.run_container)
ping = sync_tool(_tools.ping)
list_tools = sync_tool(_tools.list_tools)
list_error_codes = sync_tool(_tools.list_error_codes)
show_policy = sync_tool(_tools.show_policy)
pool_create = sync_tool(_tools.pool_create)
pool_list = sync_tool(_tools.pool_list)
pool_remove = sync_tool(_tools.pool_remove)
run_code = sync_tool(_tools.run_code)
context_create = sync_tool(_tools.context_create)
context_list = sync_tool(_tools.context_list)
context_reset = sync_tool(_tools.context_reset)
context_close = sync_tool(_tools.context_close)
install_dependencies = sync_tool(_tools.install_dependencies)
start_process = sync_tool(_tools.start_process)
read_process_output = sync_tool(_tools.read_process_output)
signal_process = sync_tool(_tools.signal_process)
wait_process = sync_tool(_tools.wait_process)
list_processes = sync_tool(_tools.list_processes)

__all__ = [
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
    "Client",
    "AsyncClient",
    "run_code",
    "context_create",
    "context_list",
    "context_reset",
    "context_close",
    "Context",
    "install_dependencies",
    "start_process",
    "read_process_output",
    "signal_process",
    "wait_process",
    "list_processes",
    "AddeError",
    "AddeTimeout",
    "BinaryNotFound",
    "BuildFailed",
    "DockerUnavailable",
    "InvalidInput",
    "NotFound",
    "NotManaged",
    "PolicyDenied",
    "find_adde_bin",
    "AgentImage",
    "BuildNetwork",
    "BuildResult",
    "CellError",
    "CleanupResult",
    "CodeResult",
    "CommandLine",
    "ContextClosed",
    "ContextInfo",
    "ContextList",
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
    "Language",
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
    "RichResult",
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
