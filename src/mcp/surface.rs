//! Which tools an MCP client sees, with which fields: the curated agent set or every tool,
//! operator fields hidden or not, `container_id` filled in when the server is bound to one
//! environment. Everything comes from `tools::TOOLS`, the table `list_tools` prints; the
//! schemas are only trimmed (fields hidden, words that cost tokens and tell a model nothing
//! removed), never written by hand. What a schema hides, a call may not send.

#[cfg(test)]
use serde_json::json;
use serde_json::{Map, Value};

use crate::error::Error;
use crate::tools::{ToolInfo, TOOLS};

/// The tools a model drives: run code, handle files, read the history, install packages,
/// run background processes, and (when the server is not bound to one environment) make and
/// remove environments.
const AGENT_TOOLS: &[&str] = &[
    "execute_code_block",
    "execute_command",
    "run_code",
    "context_list",
    "context_reset",
    "write_file",
    "read_file",
    "list_files",
    "get_container_logs",
    "install_dependencies",
    "start_process",
    "read_process_output",
    "signal_process",
    "wait_process",
    "list_processes",
    "create_runtime_env",
    "cleanup_env",
];

/// Tools that act on one environment: bound, their `container_id` is filled in.
const BINDABLE: &[&str] = &[
    "execute_code_block",
    "execute_command",
    "run_code",
    "context_create",
    "context_list",
    "context_reset",
    "context_close",
    "write_file",
    "read_file",
    "list_files",
    "get_container_logs",
    "export_files",
    "install_dependencies",
    "start_process",
    "read_process_output",
    "signal_process",
    "wait_process",
    "list_processes",
];

/// Fields that are the operator's to set (host mounts, network, resources, identity, the
/// runtime, registries, bulk removal), not a model's. Hidden unless `--operator-fields`.
const OPERATOR_FIELDS: &[(&str, &[&str])] = &[
    (
        "create_runtime_env",
        &[
            "mounts",
            "network",
            "port_bindings",
            "memory",
            "cpus",
            "pids_limit",
            "nofile",
            "runtime",
            "user",
            "labels",
            "use_image_cmd",
            "install_network",
            "install_timeout_sec",
            "pip_index_url",
            "npm_registry",
            "pull",
            "read_only_rootfs",
            "ttl_sec",
            // Fields main gained since (resources, storage): hidden as soon as they exist.
            "disk",
            "workspace",
        ],
    ),
    ("cleanup_env", &["all", "all_owners", "labels"]),
    (
        "install_dependencies",
        &[
            "install_network",
            "install_timeout_sec",
            "pip_index_url",
            "npm_registry",
        ],
    ),
];

/// What the operator chose on the command line.
#[derive(Clone, Debug, Default)]
pub struct Choice {
    pub all_tools: bool,
    pub operator_fields: bool,
    pub bound: bool,
}

/// One tool as the client sees it.
pub struct Exposed {
    pub info: &'static ToolInfo,
    pub schema: Map<String, Value>,
    /// Fields the client may not send, and why.
    pub refused: Vec<(String, &'static str)>,
    /// Whether `container_id` is filled in by the server.
    pub bound: bool,
}

const BOUND_WHY: &str = "this server is bound to one environment and fills it in";
const OPERATOR_WHY: &str = "it is the operator's to set (adde mcp --operator-fields exposes it)";

/// The tools for this choice, in the table's order, less those the operator's policy
/// disables (a call to one would be refused anyway; a model should not see it).
pub fn expose(choice: &Choice) -> Vec<Exposed> {
    let policy = crate::policy::current()
        .ok()
        .and_then(|l| l.policy.as_ref());
    TOOLS
        .iter()
        .filter(|t| policy.is_none_or(|p| p.enabled(t.name)))
        .filter(|t| {
            if choice.all_tools {
                return true;
            }
            let bound_away = choice.bound && !BINDABLE.contains(&t.name);
            AGENT_TOOLS.contains(&t.name) && !bound_away
        })
        .map(|info| {
            let mut refused = Vec::new();
            let bound = choice.bound && BINDABLE.contains(&info.name);
            if bound {
                refused.push(("container_id".to_string(), BOUND_WHY));
            }
            if !choice.operator_fields && !choice.all_tools {
                let operator = OPERATOR_FIELDS
                    .iter()
                    .find(|(name, _)| *name == info.name)
                    .map_or(&[][..], |(_, fields)| fields);
                refused.extend(operator.iter().map(|f| (f.to_string(), OPERATOR_WHY)));
            }
            let full = (info.schema)();
            // A hidden field's other names are refused too.
            let aliases: Vec<(String, &'static str)> = refused
                .iter()
                .flat_map(|(field, why)| {
                    full["properties"][field]["aliases"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .map(move |alias| (alias.to_string(), *why))
                })
                .collect();
            refused.extend(aliases);
            let hidden: Vec<&str> = refused.iter().map(|(f, _)| f.as_str()).collect();
            let schema = compact(full, &hidden);
            Exposed {
                info,
                schema,
                refused,
                bound,
            }
        })
        .collect()
}

impl Exposed {
    /// Refuses a field the schema hides (a client need not respect the schema).
    pub fn check(&self, arguments: &Map<String, Value>) -> Result<(), Error> {
        for (field, why) in &self.refused {
            if arguments.contains_key(field) {
                return Err(Error::InvalidPayload {
                    message: format!("field `{field}` is not accepted here: {why}"),
                    field: Some(field.clone()),
                });
            }
        }
        Ok(())
    }

    /// MCP's behaviour hints for this tool.
    pub fn annotations(&self) -> rmcp::model::ToolAnnotations {
        annotations(self.info.name)
    }
}

/// readOnlyHint for reads; destructiveHint for what removes; idempotentHint where a repeat
/// changes nothing more; openWorldHint false for what stays inside the engine.
fn annotations(name: &str) -> rmcp::model::ToolAnnotations {
    use rmcp::model::ToolAnnotations as A;
    let read_only = || A::new().read_only(true).open_world(false);
    match name {
        "read_file"
        | "list_files"
        | "get_container_logs"
        | "list_agent_images"
        | "context_list"
        | "list_runtime_envs"
        | "list_tools"
        | "list_error_codes"
        | "ping"
        | "pool_list"
        | "show_policy"
        | "read_process_output"
        | "wait_process"
        | "list_processes" => read_only(),
        "cleanup_env" | "delete_image" | "prune_build_cache" | "reap" | "pool_remove"
        | "context_reset" | "context_close" => A::new()
            .read_only(false)
            .destructive(true)
            .idempotent(true)
            .open_world(false),
        // Overwrites what is there; the same write twice leaves the same file.
        "write_file" | "export_files" => A::new()
            .read_only(false)
            .destructive(true)
            .idempotent(true)
            .open_world(false),
        // Code may do anything inside its environment; so may a signal to it.
        "execute_code_block" | "execute_command" | "run_container" | "run_code"
        | "start_process" | "signal_process" => A::new()
            .read_only(false)
            .destructive(true)
            .idempotent(false),
        "pull_image" | "pool_create" | "install_dependencies" => A::new()
            .read_only(false)
            .destructive(false)
            .idempotent(true),
        "create_runtime_env"
        | "context_create"
        | "prepare_build_context"
        | "build_image_from_context"
        | "build_image_from_path"
        | "build_image_from_git" => A::new()
            .read_only(false)
            .destructive(false)
            .idempotent(false),
        _ => A::new(),
    }
}

/// The schema without `hidden` fields and without what costs tokens and tells a model
/// nothing: `$schema`, `title`, Rust number formats, null alternatives (an absent field is
/// the null), null defaults, line breaks inside descriptions, definitions no longer used.
pub fn compact(schema: Value, hidden: &[&str]) -> Map<String, Value> {
    let Value::Object(mut schema) = schema else {
        return Map::new();
    };
    schema.remove("$schema");
    schema.remove("title");
    if let Some(Value::Object(properties)) = schema.get_mut("properties") {
        properties.retain(|name, _| !hidden.contains(&name.as_str()));
    }
    if let Some(Value::Array(required)) = schema.get_mut("required") {
        required.retain(|name| !name.as_str().is_some_and(|n| hidden.contains(&n)));
        if required.is_empty() {
            schema.remove("required");
        }
    }
    let mut value = Value::Object(schema);
    trim(&mut value);
    let Value::Object(mut schema) = value else {
        return Map::new();
    };
    // Definitions are written out where they are used (adde's are small and not recursive;
    // some clients do not follow `$ref`), then the unused ones dropped.
    if let Some(Value::Object(defs)) = schema.get("$defs").cloned() {
        for (key, inner) in schema.iter_mut() {
            if key != "$defs" {
                inline(inner, &defs, 0);
            }
        }
    }
    prune_definitions(&mut schema);
    schema
}

/// Replaces `$ref`s with what they refer to; a `oneOf` of string constants becomes an
/// `enum`; alternatives lose their own descriptions when the field has one.
fn inline(value: &mut Value, defs: &Map<String, Value>, depth: u8) {
    match value {
        Value::Object(object) => {
            let target = object
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/$defs/"))
                .and_then(|name| defs.get(name))
                .and_then(Value::as_object);
            if let (Some(target), true) = (target, depth < 8) {
                let target = target.clone();
                object.remove("$ref");
                for (k, v) in target {
                    object.entry(k).or_insert(v);
                }
            }
            let constants: Option<Vec<Value>> = object
                .get("oneOf")
                .and_then(Value::as_array)
                .and_then(|alternatives| {
                    alternatives
                        .iter()
                        .map(|a| a.get("const").filter(|c| c.is_string()).cloned())
                        .collect()
                });
            if let Some(constants) = constants {
                object.remove("oneOf");
                object.insert("type".into(), "string".into());
                object.insert("enum".into(), Value::Array(constants));
            }
            if object.contains_key("description") {
                for key in ["anyOf", "oneOf"] {
                    if let Some(Value::Array(alternatives)) = object.get_mut(key) {
                        for alternative in alternatives.iter_mut().filter_map(Value::as_object_mut)
                        {
                            alternative.remove("description");
                        }
                    }
                }
            }
            for inner in object.values_mut() {
                inline(inner, defs, depth + 1);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| inline(i, defs, depth + 1)),
        _ => {}
    }
}

fn trim(value: &mut Value) {
    match value {
        Value::Object(object) => {
            object.remove("format");
            object.remove("aliases");
            if object.get("default").is_some_and(Value::is_null) {
                object.remove("default");
            }
            if let Some(Value::String(text)) = object.get_mut("description") {
                *text = text.split_whitespace().collect::<Vec<_>>().join(" ");
            }
            // "type": ["string", "null"] reads "string".
            if let Some(Value::Array(types)) = object.get("type") {
                let kept: Vec<Value> = types
                    .iter()
                    .filter(|t| t.as_str() != Some("null"))
                    .cloned()
                    .collect();
                if kept.len() == 1 {
                    object.insert("type".into(), kept[0].clone());
                }
            }
            // "anyOf": [X, {"type": "null"}] reads X.
            if let Some(Value::Array(alternatives)) = object.get("anyOf") {
                let kept: Vec<Value> = alternatives
                    .iter()
                    .filter(|a| a.get("type").and_then(Value::as_str) != Some("null"))
                    .cloned()
                    .collect();
                if kept.len() == 1 && kept.len() < alternatives.len() {
                    object.remove("anyOf");
                    if let Value::Object(inner) = &kept[0] {
                        for (k, v) in inner {
                            object.entry(k.clone()).or_insert_with(|| v.clone());
                        }
                    }
                }
            }
            for inner in object.values_mut() {
                trim(inner);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(trim),
        _ => {}
    }
}

/// Removes `$defs` entries nothing refers to any more (e.g. after a field was hidden).
fn prune_definitions(schema: &mut Map<String, Value>) {
    loop {
        let Some(Value::Object(defs)) = schema.get("$defs") else {
            return;
        };
        let mut rest = schema.clone();
        rest.remove("$defs");
        let used_text = format!("{} {}", Value::Object(rest), Value::Object(defs.clone()));
        let unused: Vec<String> = defs
            .keys()
            .filter(|name| {
                let reference = format!("\"#/$defs/{name}\"");
                // A definition that refers only to itself is unused too; adde has none.
                !used_text.contains(&reference)
            })
            .cloned()
            .collect();
        if unused.is_empty() {
            return;
        }
        if let Some(Value::Object(defs)) = schema.get_mut("$defs") {
            for name in &unused {
                defs.remove(name);
            }
            if defs.is_empty() {
                schema.remove("$defs");
            }
        }
    }
}

/// The names of the tools for this choice, for messages.
pub fn names(exposed: &[Exposed]) -> Vec<&'static str> {
    exposed.iter().map(|e| e.info.name).collect()
}

/// The description of a tool as the client sees it (the table's one line).
pub fn description(exposed: &Exposed) -> String {
    if exposed.bound {
        exposed
            .info
            .summary
            .replace("an environment", "the environment")
    } else {
        exposed.info.summary.to_string()
    }
}

/// The object a failed call returns: adde's own error object (`error`, `error_code`, the
/// error's details, the tool's failure fields), as the command line prints it.
pub fn error_object(info: Option<&ToolInfo>, err: &Error) -> Value {
    let mut object = info.map(|t| (t.failure_fields)()).unwrap_or_default();
    object.insert("error".into(), err.to_string().into());
    object.insert("error_code".into(), err.code().into());
    object.extend(err.details());
    Value::Object(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find<'a>(exposed: &'a [Exposed], name: &str) -> Option<&'a Exposed> {
        exposed.iter().find(|e| e.info.name == name)
    }

    #[test]
    fn the_default_set_is_the_agent_set_without_operator_fields() {
        let exposed = expose(&Choice::default());
        assert_eq!(names(&exposed).len(), AGENT_TOOLS.len());
        let create = find(&exposed, "create_runtime_env").unwrap();
        let properties = create.schema["properties"].as_object().unwrap();
        for hidden in ["mounts", "network", "memory", "runtime", "user", "labels"] {
            assert!(!properties.contains_key(hidden), "{hidden}");
        }
        for kept in ["image", "dependencies", "session", "env_vars"] {
            assert!(properties.contains_key(kept), "{kept}");
        }
        // Definitions are written out where they are used.
        assert!(create.schema.get("$defs").is_none());
        assert_eq!(
            create.schema["properties"]["package_manager"]["enum"],
            json!(["pip", "npm"])
        );
        let err = create
            .check(&Map::from_iter([("mounts".to_string(), json!([]))]))
            .unwrap_err();
        assert_eq!(err.code(), "invalid_payload");
        assert_eq!(err.details()["field"], "mounts");
    }

    #[test]
    fn bound_tools_have_no_container_id_and_refuse_one() {
        let exposed = expose(&Choice {
            bound: true,
            ..Choice::default()
        });
        assert!(find(&exposed, "create_runtime_env").is_none());
        assert!(find(&exposed, "cleanup_env").is_none());
        for tool in &exposed {
            assert!(tool.bound);
            assert!(!tool.schema["properties"]
                .as_object()
                .unwrap()
                .contains_key("container_id"));
            assert!(!tool
                .schema
                .get("required")
                .is_some_and(|r| r.as_array().unwrap().contains(&json!("container_id"))));
            let sent = Map::from_iter([("container_id".to_string(), json!("x"))]);
            assert!(tool.check(&sent).is_err());
        }
    }

    #[test]
    fn all_tools_is_the_whole_table_with_every_field() {
        let exposed = expose(&Choice {
            all_tools: true,
            ..Choice::default()
        });
        assert_eq!(exposed.len(), TOOLS.len());
        for tool in &exposed {
            let full = (tool.info.schema)();
            let keys = |v: &Value| -> Vec<String> {
                v.as_object()
                    .map(|o| o.keys().cloned().collect())
                    .unwrap_or_default()
            };
            let shown = keys(tool.schema.get("properties").unwrap_or(&Value::Null));
            let full = keys(&full["properties"]);
            assert_eq!(full, shown, "{}", tool.info.name);
            assert!(tool.refused.is_empty());
        }
    }

    #[test]
    fn compacting_drops_noise_but_keeps_meaning() {
        let exposed = expose(&Choice {
            all_tools: true,
            ..Choice::default()
        });
        let text =
            serde_json::to_string(&exposed.iter().map(|e| &e.schema).collect::<Vec<_>>()).unwrap();
        for noise in [
            "\"$schema\"",
            "\"format\"",
            "\"title\"",
            "\"null\"",
            "\\n",
            "$ref",
            "$defs",
        ] {
            assert!(!text.contains(noise), "{noise}");
        }
        let run = find(&exposed, "execute_code_block").unwrap();
        assert_eq!(run.schema["additionalProperties"], false);
        assert_eq!(run.schema["properties"]["command"]["type"], "array");
        assert_eq!(run.schema["properties"]["timeout_sec"]["default"], 30.0);
        let read = find(&exposed, "read_file").unwrap();
        assert_eq!(
            read.schema["properties"]["encoding"]["enum"],
            json!(["utf8", "base64"])
        );
        let create = find(&exposed, "create_runtime_env").unwrap();
        let mounts = &create.schema["properties"]["mounts"]["items"];
        assert_eq!(mounts["required"], json!(["source", "target"]));
    }

    #[test]
    fn every_tool_has_annotations_that_fit() {
        for tool in TOOLS {
            let a = annotations(tool.name);
            assert!(a.read_only_hint.is_some(), "{}", tool.name);
            if a.read_only_hint == Some(true) {
                assert!(a.destructive_hint.is_none());
            }
        }
        assert_eq!(annotations("reap").destructive_hint, Some(true));
        assert_eq!(annotations("ping").read_only_hint, Some(true));
    }
}
