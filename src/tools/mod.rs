//! The tools, one file per group. Each tool is an input type (which both parses the payload
//! and generates its JSON Schema) and an async function; the table below is the single list
//! that dispatch, `list_tools` and `--help` are built from.

mod admin;
mod build;
mod env;
mod exec;
mod files;
mod helper_volume;
mod images;
mod logs;
mod oneshot;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

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

        /// Parses the payload for the named tool and runs it.
        pub async fn dispatch(name: &str, payload: Value) -> Result<Value> {
            match name {
                $( $name => run::<$input, _, _>(payload, $run).await, )*
                _ => Err(Error::UnknownTool { name: name.to_string() }),
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
    "list_tools" => list_tools, ListToolsInput, no_fields,
        "List every tool with a one-line description and its input JSON Schema.";
}

pub fn names() -> Vec<&'static str> {
    TOOLS.iter().map(|t| t.name).collect()
}

pub fn find(name: &str) -> Option<&'static ToolInfo> {
    TOOLS.iter().find(|t| t.name == name)
}

async fn run<I, O, F>(payload: Value, tool: fn(I) -> F) -> Result<Value>
where
    I: DeserializeOwned,
    O: Serialize,
    F: std::future::Future<Output = Result<O>>,
{
    let input = parse::<I>(payload)?;
    let output = tool(input).await?;
    serde_json::to_value(output).map_err(|e| Error::Internal(e.to_string()))
}

/// Deserializes a payload, naming the offending field and what is accepted when it fails.
pub fn parse<I: DeserializeOwned>(payload: Value) -> Result<I> {
    if !payload.is_object() {
        return Err(Error::InvalidJson(format!(
            "expected a JSON object such as {{\"image\": \"busybox\"}}, got {}",
            kind_of(&payload)
        )));
    }
    serde_path_to_error::deserialize(payload).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner().to_string();
        // Unknown and missing fields are reported at the object; the name is in backticks.
        let field = if path == "." {
            inner.split('`').nth(1).map(str::to_string)
        } else {
            Some(path.clone())
        };
        let message = if path == "." {
            inner
        } else {
            format!("field `{path}`: {inner}")
        };
        Error::InvalidPayload { message, field }
    })
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListToolsInput {}

async fn list_tools(_: ListToolsInput) -> Result<Value> {
    let tools: Vec<Value> = TOOLS
        .iter()
        .map(|t| json!({"name": t.name, "description": t.summary, "input_schema": (t.schema)()}))
        .collect();
    Ok(json!({ "tools": tools }))
}

/// A string field that must not be blank, trimmed; `what` names it in the error.
pub fn required(field: &'static str, what: &str, value: &str) -> Result<String> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(Error::invalid(field, format!("{what} is required")));
    }
    Ok(trimmed.to_string())
}

/// A path that must stay inside its folder: relative, no `..`, no NUL; returned cleaned.
pub fn relative_path(field: &'static str, name: &str) -> Result<String> {
    let bad = |why: &str| {
        Err(Error::invalid(
            field,
            format!("{field} {name:?} {why}; give a relative path such as \"main.py\" or \"src/app.js\""),
        ))
    };
    if name.trim().is_empty() {
        return bad("is empty");
    }
    if name.contains('\0') {
        return bad("contains a NUL byte");
    }
    if name.starts_with('/') {
        return bad("is absolute");
    }
    if name.ends_with('/') {
        return bad("names a folder");
    }
    let parts: Vec<&str> = name
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.contains(&"..") {
        return bad("contains '..'");
    }
    if parts.is_empty() {
        return bad("names no file");
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_field_names_the_field_and_what_is_accepted() {
        let err = parse::<exec::ExecuteInput>(json!({
            "container_id": "x", "filename": "a.py", "code_content": "", "timeout_secs": 3
        }))
        .err()
        .unwrap();
        assert_eq!(err.code(), "invalid_payload");
        let text = err.to_string();
        assert!(
            text.contains("timeout_secs") && text.contains("timeout_sec`"),
            "{text}"
        );
        assert_eq!(err.details()["field"], "timeout_secs");
    }

    #[test]
    fn wrong_type_names_the_field() {
        let err = parse::<exec::ExecuteInput>(json!({
            "container_id": "x", "filename": "a.py", "code_content": "", "timeout_sec": "30"
        }))
        .err()
        .unwrap();
        assert_eq!(err.details()["field"], "timeout_sec");
        assert!(err.to_string().contains("invalid type"), "{err}");
    }

    #[test]
    fn missing_field_is_named_and_non_objects_are_rejected() {
        let err = parse::<images::PullImageInput>(json!({})).err().unwrap();
        assert_eq!(err.details()["field"], "image");
        let err = parse::<images::PullImageInput>(json!(["busybox"]))
            .err()
            .unwrap();
        assert_eq!(err.code(), "invalid_json");
    }

    #[test]
    fn every_tool_has_an_object_schema() {
        for tool in TOOLS {
            assert_eq!((tool.schema)()["type"], "object", "{}", tool.name);
        }
    }

    #[test]
    fn paths_must_stay_inside() {
        assert_eq!(relative_path("filename", "main.py").unwrap(), "main.py");
        assert_eq!(
            relative_path("filename", "./src//app.js").unwrap(),
            "src/app.js"
        );
        for bad in [
            "",
            "  ",
            "/etc/passwd",
            "../x.py",
            "a/../../x",
            "a\0b",
            "dir/",
            ".",
        ] {
            let err = relative_path("filename", bad).err().unwrap();
            assert_eq!(err.code(), "invalid_argument", "{bad:?}");
            assert_eq!(err.details()["field"], "filename");
        }
    }

    #[test]
    fn blank_values_are_rejected() {
        let err = required("image", "image name", "  ").err().unwrap();
        assert_eq!(err.to_string(), "image name is required");
        assert_eq!(err.details()["field"], "image");
        assert_eq!(
            required("image", "image name", " busybox ").unwrap(),
            "busybox"
        );
    }
}
