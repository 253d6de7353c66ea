"""The asyncio client: the same functions as `adde`, as coroutines, for agent loops that run
tools concurrently. Cancelling one interrupts adde, which stops the run in the container.

Each function returns a coroutine (`Coroutine[Any, Any, T]`, T the same TypedDict as the sync
function's result), so `asyncio.create_task(adde.aio.execute_code_block(...))` type-checks.

`stream_code_block` and `stream_command` take execute_code_block's and execute_command's
arguments and yield the run's output as it arrives, then its result:

    async for event in adde.aio.stream_code_block(cid, "main.py", code):
        if event["event"] == "result":
            log = event["result"]["log"]
        else:
            print(event["event"], event["data"], end="")
"""

from . import _tools
from ._context import AsyncContext as Context
from ._run import async_tool, stream_tool

pull_image = async_tool(_tools.pull_image)
create_runtime_env = async_tool(_tools.create_runtime_env)
execute_code_block = async_tool(_tools.execute_code_block)
get_container_logs = async_tool(_tools.get_container_logs)
cleanup_env = async_tool(_tools.cleanup_env)
prepare_build_context = async_tool(_tools.prepare_build_context)
build_image_from_context = async_tool(_tools.build_image_from_context)
build_image_from_path = async_tool(_tools.build_image_from_path)
build_image_from_git = async_tool(_tools.build_image_from_git)
list_agent_images = async_tool(_tools.list_agent_images)
prune_build_cache = async_tool(_tools.prune_build_cache)
delete_image = async_tool(_tools.delete_image)
execute_command = async_tool(_tools.execute_command)
write_file = async_tool(_tools.write_file)
read_file = async_tool(_tools.read_file)
list_files = async_tool(_tools.list_files)
export_files = async_tool(_tools.export_files)
list_runtime_envs = async_tool(_tools.list_runtime_envs)
reap = async_tool(_tools.reap)
run_container = async_tool(_tools.run_container)
ping = async_tool(_tools.ping)
list_tools = async_tool(_tools.list_tools)
list_error_codes = async_tool(_tools.list_error_codes)
show_policy = async_tool(_tools.show_policy)
pool_create = async_tool(_tools.pool_create)
pool_list = async_tool(_tools.pool_list)
pool_remove = async_tool(_tools.pool_remove)
run_code = async_tool(_tools.run_code)
context_create = async_tool(_tools.context_create)
context_list = async_tool(_tools.context_list)
context_reset = async_tool(_tools.context_reset)
context_close = async_tool(_tools.context_close)
install_dependencies = async_tool(_tools.install_dependencies)
start_process = async_tool(_tools.start_process)
read_process_output = async_tool(_tools.read_process_output)
signal_process = async_tool(_tools.signal_process)
wait_process = async_tool(_tools.wait_process)
list_processes = async_tool(_tools.list_processes)

stream_code_block = stream_tool(_tools.execute_code_block)
stream_command = stream_tool(_tools.execute_command)

__all__ = list(_tools.NAMES) + ["Context", "stream_code_block", "stream_command"]
