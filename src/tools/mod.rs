//! The tools, one file per group, and the one table that dispatch, `list_tools` and `--help`
//! are built from. Each tool is an input type (which both parses the payload and generates its
//! JSON Schema) and an async function given the process's one engine.

mod admin;
mod build;
mod env;
pub(crate) mod exec;
mod files;
mod images;
pub mod input;
mod interp;
mod logs;
mod oneshot;
pub mod pools;
mod procs;

pub use admin::{remove_expired, remove_unused_volumes, SpareHelpers};

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::engine::Engine;
use crate::error::{Error, Result};

pub struct ToolInfo {
    pub name: &'static str,
    pub summary: &'static str,
    pub schema: fn() -> Value,
    /// Fields the tool's error results carry besides `error` and `error_code` (ADDE's shape).
    pub failure_fields: fn() -> Map<String, Value>,
}

fn no_fields() -> Map<String, Value> {
    Map::new()
}

fn not_ok() -> Map<String, Value> {
    Map::from_iter([("ok".to_string(), Value::Bool(false))])
}

fn build_failed() -> Map<String, Value> {
    Map::from_iter([
        ("status".to_string(), Value::from("error")),
        ("build_log_summary".to_string(), Value::from("")),
        ("failed_layer".to_string(), Value::Null),
    ])
}

macro_rules! tools {
    ($( $name:literal => $run:path, $input:ty, $failure:path, $summary:literal; )*) => {
        pub const TOOLS: &[ToolInfo] = &[$(
            ToolInfo {
                name: $name,
                summary: $summary,
                schema: || serde_json::to_value(schemars::schema_for!($input)).unwrap_or_default(),
                failure_fields: $failure,
            },
        )*];

        /// Parses the payload for the named tool without running it: what every payload
        /// goes through first (the fuzz targets call this).
        pub fn parse_input(name: &str, payload: Value) -> Result<()> {
            match name {
                $( $name => input::parse::<$input>(payload).map(drop), )*
                _ => Err(Error::UnknownTool { name: name.to_string(), tools: names() }),
            }
        }

        /// Applies the operator's policy to the payload for the named tool, parses it and
        /// runs the tool: the one entry point of every caller (the CLI, and any server).
        pub async fn dispatch(engine: &Engine, name: &str, payload: Value) -> Result<Value> {
            if find(name).is_none() {
                return Err(Error::UnknownTool { name: name.to_string(), tools: names() });
            }
            let payload = govern(name, payload)?;
            match name {
                $( $name => {
                    let output = $run(engine, input::parse::<$input>(payload)?).await?;
                    serde_json::to_value(output).map_err(|e| Error::Internal(e.to_string()))
                } )*
                _ => Err(Error::UnknownTool { name: name.to_string(), tools: names() }),
            }
        }
    };
}

tools! {
    "pull_image" => images::pull_image, images::PullImageInput, not_ok,
        "Pull an image (a tag, never every tag) and report its id.";
    "create_runtime_env" => env::create_runtime_env, env::CreateEnvInput, no_fields,
        "Create a hardened, long-lived environment with a /workspace volume; optionally install dependencies.";
    "execute_code_block" => exec::execute_code_block, exec::ExecuteInput, no_fields,
        "Write a file into an environment and run it with a timeout that kills its whole process tree.";
    "execute_command" => exec::execute_command, exec::CommandInput, no_fields,
        "Run a shell command line (sh -c) or an argument list in an environment, with the same enforced timeout, capture and history.";
    "run_code" => interp::run_code, interp::RunCodeInput, no_fields,
        "Run a cell of Python (or bash) in a persistent context of an environment: variables, imports, the shell's directory and exports stay between calls; returns stdout, stderr, the last expression's value, charts (PNG) and tables (HTML) as rich results, and the error.";
    "context_create" => interp::context_create, interp::ContextCreateInput, no_fields,
        "Start a named code context (python or bash) in an environment; run_code also starts one on first use.";
    "context_list" => interp::context_list, interp::ContextListInput, no_fields,
        "List an environment's code contexts: name, language, interpreter, cells run, busy.";
    "context_reset" => interp::context_reset, interp::ContextNameInput, no_fields,
        "Restart a code context: its variables and everything it runs are gone, its name stays.";
    "context_close" => interp::context_close, interp::ContextNameInput, no_fields,
        "End a code context and everything it runs.";
    "install_dependencies" => env::install_dependencies, env::InstallInput, no_fields,
        "Install packages (pip or npm) into a running environment, the way create_runtime_env does: with a network for the installer only, the code stays offline.";
    "start_process" => procs::start_process, procs::StartProcessInput, no_fields,
        "Start a command in the background (a server, a watcher): it outlives the call; returns a process_id to read its output, signal, wait for or list it.";
    "read_process_output" => procs::read_process_output, procs::ReadOutputInput, no_fields,
        "Read a background process's output so far, from the offsets of the previous read, with its state and exit code.";
    "signal_process" => procs::signal_process, procs::SignalInput, no_fields,
        "Send a signal (SIGTERM by default) to a background process and what it started.";
    "wait_process" => procs::wait_process, procs::WaitInput, no_fields,
        "Wait up to timeout_sec for a background process to exit; returns its state and exit code.";
    "list_processes" => procs::list_processes, procs::ListProcessesInput, no_fields,
        "List an environment's background processes: running ones and the last that exited.";
    "write_file" => files::write_file, files::WriteFileInput, not_ok,
        "Write a file into an environment (text or base64, with a mode) through the archive API.";
    "read_file" => files::read_file, files::ReadFileInput, no_fields,
        "Read a file from an environment: text paged by lines, or bytes as base64.";
    "list_files" => files::list_files, files::ListFilesInput, no_fields,
        "List a folder of an environment (names, kinds, sizes, modes, times), optionally recursively.";
    "export_files" => files::export_files, files::ExportInput, not_ok,
        "Copy files or folders out of an environment into a host folder, streaming, never writing outside it.";
    "get_container_logs" => logs::get_container_logs, logs::LogsInput, no_fields,
        "Return an environment's last run (or one run, or all runs) from the host-side history.";
    "cleanup_env" => admin::cleanup_env, admin::CleanupInput, not_ok,
        "Stop and remove an environment adde created, with its volumes (or all of them).";
    "prepare_build_context" => build::prepare_build_context, build::PrepareInput, no_fields,
        "Stage files (text or base64) as a private build context; adds a .dockerignore and, for Python or Node projects without one, a Dockerfile.";
    "build_image_from_context" => build::build_image_from_context, build::BuildFromContextInput, build_failed,
        "Build an image from a context made by prepare_build_context, behind the Dockerfile security gate.";
    "build_image_from_path" => build::build_image_from_path, build::BuildFromPathInput, build_failed,
        "Build an image from a folder holding a Dockerfile, behind the Dockerfile security gate.";
    "build_image_from_git" => build::build_image_from_git, build::BuildFromGitInput, build_failed,
        "Clone a repository (shallow) and build it like build_image_from_path.";
    "list_agent_images" => images::list_agent_images, images::ListImagesInput, no_fields,
        "List the images adde built, optionally those whose tag starts with filter_tag.";
    "delete_image" => images::delete_image, images::DeleteImageInput, not_ok,
        "Delete an image; by default only one adde built.";
    "prune_build_cache" => images::prune_build_cache, images::PruneInput, no_fields,
        "Remove what adde's builds left behind (intermediate and dangling images, build cache) and report the space reclaimed.";
    "list_runtime_envs" => admin::list_runtime_envs, admin::ListEnvsInput, no_fields,
        "List adde's environments with id, session, image, state, creation, expiry and limits.";
    "reap" => admin::reap, admin::ReapInput, no_fields,
        "Remove environments past their TTL, leftovers of crashed calls, unused volumes and stale staging folders.";
    "run_container" => oneshot::run_container, oneshot::RunContainerInput, no_fields,
        "One-shot run: create a hardened environment, put the code or payload in, run, collect the log, remove everything.";
    "ping" => admin::ping, admin::PingInput, no_fields,
        "Check the engine: reachable, versions, runtimes, adde's version and state directory.";
    "pool_create" => pools::pool_create, pools::PoolCreateInput, no_fields,
        "Keep N environments of a create_runtime_env spec started ahead of time; creates with that spec then take one.";
    "pool_list" => pools::pool_list, pools::PoolListInput, no_fields,
        "List the warm pools: spec, size and environments ready now.";
    "pool_remove" => pools::pool_remove, pools::PoolRemoveInput, no_fields,
        "Remove a warm pool and the environments it had ready.";
    "list_tools" => list_tools, ListToolsInput, no_fields,
        "List every tool with a one-line description and its input JSON Schema.";
    "list_error_codes" => list_error_codes, ListToolsInput, no_fields,
        "List every error_code adde can return, with what it means.";
    "show_policy" => show_policy, ListToolsInput, no_fields,
        "Show the operator's policy in force (limits, permissions, defaults, allowed images and tools) and where it was read from; null when there is none.";
}

/// The policy's part of a call: a disabled tool is refused, the policy's defaults fill the
/// fields the payload leaves out, and every bounded field is checked, before the payload is
/// parsed and anything is done. Tools that make other calls internally (run_container's
/// environment) go through here too.
pub fn govern(name: &str, mut payload: Value) -> Result<Value> {
    if let Some(policy) = &crate::policy::current()?.policy {
        policy.prepare(name, &mut payload)?;
        policy.check(name, &payload)?;
    }
    Ok(payload)
}

pub(crate) use env::loopback_index;
pub(crate) use images::normalize_reference as normalize_image;

pub fn names() -> Vec<&'static str> {
    TOOLS.iter().map(|t| t.name).collect()
}

pub fn find(name: &str) -> Option<&'static ToolInfo> {
    TOOLS.iter().find(|t| t.name == name)
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListToolsInput {}

async fn show_policy(_: &Engine, _: ListToolsInput) -> Result<Value> {
    crate::policy::show()
}

/// Every tool, or under a policy that lists tools, the enabled ones.
async fn list_tools(_: &Engine, _: ListToolsInput) -> Result<Value> {
    let policy = crate::policy::current()?.policy.as_ref();
    let tools: Vec<Value> = TOOLS
        .iter()
        .filter(|t| policy.is_none_or(|p| p.enabled(t.name)))
        .map(|t| json!({"name": t.name, "description": t.summary, "input_schema": (t.schema)()}))
        .collect();
    Ok(json!({ "tools": tools }))
}

async fn list_error_codes(_: &Engine, _: ListToolsInput) -> Result<Value> {
    let codes: Vec<Value> = crate::error::CODES
        .iter()
        .map(|(code, meaning)| json!({"error_code": code, "meaning": meaning}))
        .collect();
    Ok(json!({ "error_codes": codes }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The public contract: a change to any tool's name, description or schema shows up here
    /// and must be accepted on purpose (`cargo insta review`, or INSTA_UPDATE=always).
    #[test]
    fn the_tool_list_is_pinned() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let tools = runtime
            .block_on(list_tools(&Engine::from_env(), ListToolsInput {}))
            .unwrap();
        insta::assert_json_snapshot!("list_tools", tools);
    }

    #[test]
    fn every_tool_has_an_object_schema() {
        for tool in TOOLS {
            assert_eq!((tool.schema)()["type"], "object", "{}", tool.name);
        }
    }
}
