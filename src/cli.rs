//! The command-line envelope shared by every tool: parse `adde <tool> [JSON]` (the payload
//! from stdin when absent), dispatch, print exactly one JSON object on stdout, and exit 0 on
//! success or 1 on any error, with the message repeated on stderr for humans.

use std::ffi::OsString;
use std::io::{IsTerminal, Read, Write};
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{Arg, Command};
use serde_json::{Map, Value};

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::tools::{self, TOOLS};

/// The command line. `with_fields` adds each tool's input fields to its long help; that
/// means generating every tool's schema, so it is done only when help was asked for.
fn command(with_fields: bool) -> Command {
    let tools = TOOLS.iter().map(move |tool| {
        let long_about = if with_fields {
            let fields = describe_fields(&(tool.schema)());
            format!("{}\n\nInput fields:\n{fields}", tool.summary)
        } else {
            tool.summary.to_string()
        };
        Command::new(tool.name)
            .about(tool.summary)
            .long_about(long_about)
            .arg(
                Arg::new("payload")
                    .value_name("JSON")
                    .help("The input as a JSON object; read from stdin when absent"),
            )
    });
    Command::new("adde")
        .version(env!("CARGO_PKG_VERSION"))
        .about("Run AI agents' code safely in hardened Docker containers. Every tool reads one JSON object and prints one JSON object.")
        .override_usage("adde <TOOL> [JSON]   (the JSON from stdin when absent)")
        .after_help("Every call prints exactly one JSON object on stdout and exits 0 on success, 1 on error.\nErrors are {\"error\": ..., \"error_code\": ...}. `adde list_tools` prints every input schema.")
        .subcommand_value_name("TOOL")
        .subcommand_help_heading("Tools")
        .arg_required_else_help(true)
        .disable_help_subcommand(true)
        .subcommands(tools)
        .subcommand(crate::mcp::command())
        .subcommand(crate::serve::command())
}

/// One line per input field: name, type, whether required, description.
fn describe_fields(schema: &Value) -> String {
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(properties) = schema["properties"].as_object() else {
        return "  (none)".into();
    };
    if properties.is_empty() {
        return "  (none)".into();
    }
    properties
        .iter()
        .map(|(name, field)| {
            let kind = type_name(field, schema);
            let need = if required.contains(&name.as_str()) {
                ", required"
            } else {
                ""
            };
            let doc = field["description"]
                .as_str()
                .unwrap_or("")
                .replace('\n', " ");
            let default = match &field["default"] {
                Value::Null => String::new(),
                // 30.0 reads as 30: JSON does not tell the two apart.
                Value::Number(n) if n.as_f64().is_some_and(|f| f.fract() == 0.0) => {
                    format!(", default {}", n.as_f64().unwrap_or_default() as i64)
                }
                value => format!(", default {value}"),
            };
            let aliases = field["aliases"]
                .as_array()
                .map(|a| {
                    let names: Vec<&str> = a.iter().filter_map(Value::as_str).collect();
                    format!(", also {}", names.join(", "))
                })
                .unwrap_or_default();
            format!("  {name} ({kind}{need}{default}{aliases}): {doc}")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A field's type in words: "string", "number", "string|array", or an enum's values.
fn type_name(field: &Value, schema: &Value) -> String {
    if let Some(reference) = field["$ref"].as_str() {
        let name = reference.rsplit('/').next().unwrap_or("");
        return type_name(&schema["$defs"][name], schema);
    }
    if let Some(values) = field["enum"].as_array() {
        let names: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        return names.join("|");
    }
    if let Some(alternatives) = field["anyOf"].as_array().or(field["oneOf"].as_array()) {
        let names: Vec<String> = alternatives
            .iter()
            .map(|a| type_name(a, schema))
            .filter(|t| t != "null")
            .collect();
        return names.join("|");
    }
    if field["const"].is_string() {
        return field["const"].to_string();
    }
    match &field["type"] {
        Value::String(t) => t.clone(),
        Value::Array(types) => types
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .collect::<Vec<_>>()
            .join("|"),
        _ => "value".into(),
    }
}

pub fn main(args: Vec<OsString>) -> ExitCode {
    // Even a bug keeps the contract: one JSON object on stdout, exit 1.
    std::panic::set_hook(Box::new(|info| {
        let _ = fail(None, Error::Internal(info.to_string()));
        std::process::exit(1);
    }));
    // `adde help` and `adde help TOOL` read as `adde --help` and `adde TOOL --help`.
    let args = if args.get(1).is_some_and(|a| a == "help") {
        let mut rewritten = vec![args[0].clone()];
        rewritten.extend(args[2..].iter().cloned());
        rewritten.push("--help".into());
        rewritten
    } else {
        args
    };
    let wants_help = args.iter().skip(1).any(|a| a == "--help" || a == "-h");
    let matches = match command(wants_help).try_get_matches_from(&args) {
        Ok(matches) => matches,
        Err(err) => {
            return match err.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    let _ = err.print();
                    ExitCode::SUCCESS
                }
                ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
                | ErrorKind::MissingSubcommand => {
                    let _ = err.print();
                    ExitCode::from(2)
                }
                ErrorKind::InvalidSubcommand => {
                    let name = args
                        .get(1)
                        .map(|a| a.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    fail(
                        None,
                        Error::UnknownTool {
                            name,
                            tools: tools::names(),
                        },
                    )
                }
                _ => {
                    let tool = args
                        .get(1)
                        .and_then(|a| a.to_str())
                        .and_then(tools::find)
                        .map(|t| t.name);
                    let text = err.to_string();
                    let first = text.lines().next().unwrap_or("invalid arguments");
                    let message = first.trim_start_matches("error: ").to_string();
                    fail(
                        tool,
                        Error::Usage(format!("{message}; usage: adde <TOOL> [JSON]")),
                    )
                }
            };
        }
    };
    let Some((tool, sub)) = matches.subcommand() else {
        return ExitCode::from(2);
    };
    match tool {
        "mcp" => return crate::mcp::main(sub),
        "serve" => return crate::serve::main(sub),
        _ => {}
    }
    let payload = sub.get_one::<String>("payload").cloned();
    match run(tool, payload) {
        Ok(value) => {
            print_json(&value);
            ExitCode::SUCCESS
        }
        Err(err) => fail(Some(tool), err),
    }
}

fn run(tool: &str, payload: Option<String>) -> Result<Value> {
    let text = match payload {
        Some(text) => text,
        None => read_stdin()?,
    };
    let payload: Value = if text.trim().is_empty() {
        Value::Object(Map::new())
    } else {
        serde_json::from_str(&text).map_err(|e| Error::InvalidJson(e.to_string()))?
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Internal(format!("cannot start the runtime: {e}")))?;
    let engine = Engine::from_env();
    let mut payload = payload;
    if !take_stream(tool, &mut payload)? {
        return runtime.block_on(tools::dispatch(&engine, tool, payload));
    }
    // Output as it arrives, one JSON event per line; the result is the last line.
    let (events, mut received) = tokio::sync::mpsc::unbounded_channel();
    let call = crate::call::Call {
        events: Some(events),
        ..Default::default()
    };
    runtime.block_on(async {
        let printer = tokio::spawn(async move {
            while let Some(event) = received.recv().await {
                print_json(&event_json(event));
            }
        });
        let result = crate::call::scope(call, tools::dispatch(&engine, tool, payload)).await;
        // The call's sender is gone with its scope: the printer ends once it has printed all.
        let _ = printer.await;
        result
    })
}

/// Whether the call asks the command line to stream its output: `"stream": true` in an
/// execute_code_block or execute_command payload. It is the envelope's, not the tool's, so it
/// is taken out of the payload (other callers stream their own way, e.g. MCP progress).
pub(crate) fn take_stream(tool: &str, payload: &mut Value) -> Result<bool> {
    if !matches!(tool, "execute_code_block" | "execute_command") {
        return Ok(false);
    }
    match payload.as_object_mut().and_then(|o| o.remove("stream")) {
        Some(Value::Bool(stream)) => Ok(stream),
        Some(other) => Err(Error::InvalidPayload {
            message: format!("field `stream`: expected true or false, got {other}"),
            field: Some("stream".into()),
        }),
        None => Ok(false),
    }
}

pub(crate) fn event_json(event: crate::call::Event) -> Value {
    match event {
        crate::call::Event::Output { stderr, bytes } => serde_json::json!({
            "event": if stderr { "stderr" } else { "stdout" },
            "data": String::from_utf8_lossy(&bytes),
        }),
        crate::call::Event::Progress { message } => {
            serde_json::json!({"event": "progress", "message": message})
        }
    }
}

fn read_stdin() -> Result<String> {
    let mut stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprintln!("adde: reading the JSON payload from stdin (end with Ctrl-D)");
    }
    let mut bytes = Vec::new();
    stdin
        .read_to_end(&mut bytes)
        .map_err(|e| Error::InvalidJson(format!("cannot read stdin: {e}")))?;
    String::from_utf8(bytes).map_err(|_| Error::InvalidJson("stdin is not UTF-8".into()))
}

/// Prints the error object on stdout and one line on stderr, and returns exit code 1.
fn fail(tool: Option<&str>, err: Error) -> ExitCode {
    print_json(&Value::Object(error_object(tool, &err)));
    eprintln!("adde: error: {err}");
    ExitCode::from(1)
}

/// What a failed call answers: the error, its code and details, with the tool's own failure
/// fields (ADDE's shape).
pub(crate) fn error_object(tool: Option<&str>, err: &Error) -> Map<String, Value> {
    let mut object = tool
        .and_then(tools::find)
        .map(|t| (t.failure_fields)())
        .unwrap_or_default();
    object.insert("error".into(), err.to_string().into());
    object.insert("error_code".into(), err.code().into());
    object.extend(err.details());
    object
}

fn print_json(value: &Value) {
    let mut text = serde_json::to_string(value).unwrap_or_else(|_| "{}".into());
    text.push('\n');
    // A closed stdout (e.g. piped into `head`) is not worth a panic.
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}
