//! `adde mcp`: adde's tools for MCP clients, served over stdio with rmcp (the official Rust
//! MCP SDK). A client's config entry is `{"command": "adde", "args": ["mcp"]}`.
//!
//! Every call goes through `tools::dispatch`, as on the command line, so the tools, their
//! checks and the operator's policy are the same; `surface` picks which tools and fields a
//! client sees, `render` turns results into MCP content. stdout carries the protocol and
//! nothing else: anything for humans goes to stderr.

mod render;
mod surface;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Arg, ArgAction, ArgMatches, Command};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, Implementation, ListToolsResult,
    PaginatedRequestParams, ProgressNotificationParam, ProgressToken, ServerCapabilities,
    ServerConfig, Tool,
};
use rmcp::service::{Peer, RequestContext};
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};
use serde_json::{json, Map, Value};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

use crate::admission::Admission;
use crate::call::{self, Call, Event};
use crate::engine::Engine;
use crate::error::Error;
use crate::tools;

use surface::{Choice, Exposed};

/// How long, at shutdown, calls in progress get to stop (a run is killed at once; other
/// calls are left to finish) before the server exits anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);
/// How long output and progress gather before they go out as one notification.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);
/// Most bytes of output in one progress notification.
const PROGRESS_CHUNK: usize = 4096;

/// The `mcp` subcommand and its flags.
pub fn command() -> Command {
    Command::new("mcp")
        .about("Serve adde's tools to an MCP client over stdio: {\"command\": \"adde\", \"args\": [\"mcp\"]}")
        .long_about(
            "Serve adde's tools to an MCP client over stdio. A client's config entry: \
             {\"command\": \"adde\", \"args\": [\"mcp\"]}.\n\nBy default the client sees the \
             agent tool set (run code, files, run history, create and clean up environments) \
             without the operator's fields (mounts, network, limits, runtime, user, labels, …). \
             Bound to one environment (--env, or --image/--spec to create it on first use), the \
             tools act on it and have no container_id field.",
        )
        .args(surface_args())
}

/// The flags that choose what a client sees and which environment it works in: `adde mcp`'s,
/// and `adde serve`'s for its MCP endpoint.
pub fn surface_args() -> Vec<Arg> {
    vec![
        Arg::new("env")
            .long("env")
            .value_name("ID|NAME")
            .help("Bind every tool to this environment; tools have no container_id field")
            .conflicts_with_all(["image", "spec"]),
        Arg::new("image")
            .long("image")
            .value_name("IMAGE")
            .help("Bind to an environment of this image, created on first use"),
        Arg::new("session")
            .long("session")
            .value_name("NAME")
            .help("With --image or --spec: get-or-create that session (kept at exit; without it the environment is removed at exit)"),
        Arg::new("spec")
            .long("spec")
            .value_name("JSON")
            .help("Bind to an environment created on first use from this create_runtime_env payload (any field)"),
        Arg::new("operator-fields")
            .long("operator-fields")
            .action(ArgAction::SetTrue)
            .help("Show the operator's fields (mounts, network, limits, runtime, user, labels, …) to the client"),
        Arg::new("all-tools")
            .long("all-tools")
            .action(ArgAction::SetTrue)
            .help("Expose every tool with every field, as `adde list_tools` lists them"),
    ]
}

/// How a bound server finds its environment.
enum Binding {
    /// One that exists: an id, short id or name.
    Existing(String),
    /// One made on first use from a create_runtime_env payload; `owned` when the server
    /// removes it at exit (no session).
    Create {
        spec: Map<String, Value>,
        owned: bool,
    },
}

fn binding(matches: &ArgMatches) -> Result<Option<Binding>, String> {
    if let Some(env) = matches.get_one::<String>("env") {
        if matches.contains_id("session") {
            return Err("--session goes with --image or --spec, not --env".into());
        }
        return Ok(Some(Binding::Existing(env.clone())));
    }
    let mut spec = match matches.get_one::<String>("spec") {
        Some(text) => match serde_json::from_str(text) {
            Ok(Value::Object(spec)) => spec,
            _ => return Err("--spec must be a JSON object (a create_runtime_env payload)".into()),
        },
        None => Map::new(),
    };
    if let Some(image) = matches.get_one::<String>("image") {
        spec.insert("image".into(), image.clone().into());
    }
    if spec.is_empty() {
        if matches.contains_id("session") {
            return Err("--session goes with --image or --spec".into());
        }
        return Ok(None);
    }
    if let Some(session) = matches.get_one::<String>("session") {
        spec.insert("session".into(), session.clone().into());
    }
    // Checked now, so that a bad spec stops the server before a client connects.
    tools::parse_input("create_runtime_env", Value::Object(spec.clone()))
        .map_err(|e| format!("--spec/--image: {e}"))?;
    let owned = !spec.contains_key("session") && !spec.contains_key("name");
    Ok(Some(Binding::Create { spec, owned }))
}

/// The MCP server the flags describe; `admission` bounds its calls (`adde serve`).
pub(crate) fn server(
    matches: &ArgMatches,
    admission: Option<Arc<Admission>>,
) -> Result<Server, String> {
    let binding = binding(matches)?;
    let choice = Choice {
        all_tools: matches.get_flag("all-tools"),
        operator_fields: matches.get_flag("operator-fields"),
        bound: binding.is_some(),
    };
    Ok(Server::new(choice, binding, admission))
}

/// Runs the server until the client closes stdin or a signal stops it.
pub fn main(matches: &ArgMatches) -> ExitCode {
    // The command line's hook prints a JSON error on stdout: here stdout is the protocol's.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("adde mcp: internal error: {info}");
    }));
    let server = match server(matches, None) {
        Ok(server) => server,
        Err(message) => {
            eprintln!("adde mcp: {message}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("adde mcp: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(serve(server));
    // A read of stdin may still be pending in the runtime's blocking pool; do not wait for it.
    std::process::exit(code)
}

async fn serve(server: Server) -> i32 {
    let finish = server.clone();
    let running = match server.serve(rmcp::transport::io::stdio_pipes()).await {
        Ok(running) => running,
        Err(e) => {
            eprintln!("adde mcp: the client did not initialize: {e}");
            return 1;
        }
    };
    let stop = running.cancellation_token();
    let waiting = running.waiting();
    tokio::pin!(waiting);
    tokio::select! {
        _ = &mut waiting => {}
        _ = crate::call::stop_signal() => {
            // Cancels every call in progress: runs are killed, as Ctrl-C kills them.
            stop.cancel();
            let _ = waiting.await;
        }
    }
    finish.finish("adde mcp").await;
    0
}

#[derive(Clone)]
pub(crate) struct Server {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    tools: Vec<Exposed>,
    listed: Vec<Tool>,
    binding: Option<Binding>,
    /// The environment made for a `Create` binding, once made.
    created: tokio::sync::Mutex<Option<String>>,
    /// Held for reading by every call, so that shutdown can wait for them.
    inflight: Arc<tokio::sync::RwLock<()>>,
    instructions: String,
    admission: Option<Arc<Admission>>,
}

impl Server {
    fn new(choice: Choice, binding: Option<Binding>, admission: Option<Arc<Admission>>) -> Server {
        let tools = surface::expose(&choice);
        let listed = tools
            .iter()
            .map(|t| {
                let mut tool = Tool::new(t.info.name, surface::description(t), t.schema.clone());
                tool.annotations = Some(t.annotations());
                tool
            })
            .collect();
        let instructions = if choice.bound {
            "Every tool acts on one isolated environment (files in /workspace); no container_id \
             is needed."
        } else {
            "Run code in isolated Docker environments: create_runtime_env returns a container_id \
             (or name one with `session`) for the other tools; cleanup_env removes it."
        };
        Server {
            inner: Arc::new(Inner {
                engine: Engine::from_env().keeping_agent_links(),
                tools,
                listed,
                binding,
                created: tokio::sync::Mutex::new(None),
                inflight: Arc::new(tokio::sync::RwLock::new(())),
                instructions: instructions.to_string(),
                admission,
            }),
        }
    }

    /// At exit: waits (a while) for calls still in progress, then removes the environment
    /// the server made for itself.
    pub(crate) async fn finish(&self, who: &str) {
        // Calls still in progress hold the lock for reading.
        if tokio::time::timeout(SHUTDOWN_GRACE, self.inner.inflight.write())
            .await
            .is_err()
        {
            eprintln!("{who}: calls still in progress at exit were abandoned");
        }
        self.inner.release().await;
    }
}

impl Inner {
    /// The bound environment: the one named, or the one made (made now on first use).
    async fn environment(&self, again: bool) -> Result<String, Error> {
        match &self.binding {
            None => Err(Error::Internal("no environment is bound".into())),
            Some(Binding::Existing(env)) => Ok(env.clone()),
            Some(Binding::Create { spec, .. }) => {
                let mut created = self.created.lock().await;
                if let (Some(id), false) = (created.as_ref(), again) {
                    return Ok(id.clone());
                }
                call::emit(|| Event::Progress {
                    message: format!("creating the environment ({})", spec["image"]),
                });
                let env = tools::dispatch(
                    &self.engine,
                    "create_runtime_env",
                    Value::Object(spec.clone()),
                )
                .await?;
                let id = env["container_id"]
                    .as_str()
                    .ok_or_else(|| Error::Internal("create_runtime_env gave no id".into()))?
                    .to_string();
                *created = Some(id.clone());
                Ok(id)
            }
        }
    }

    /// At exit: removes the environment the server made for itself (not a session's).
    async fn release(&self) {
        let Some(Binding::Create { owned: true, .. }) = &self.binding else {
            return;
        };
        if let Some(id) = self.created.lock().await.take() {
            let payload = json!({ "container_id": id });
            if let Err(e) = tools::dispatch(&self.engine, "cleanup_env", payload).await {
                eprintln!("adde mcp: could not remove environment {id}: {e}");
            }
        }
    }

    async fn call(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let name = request.name.as_ref();
        let Some(tool) = self.tools.iter().find(|t| t.info.name == name) else {
            // A protocol error, as MCP asks for an unknown tool.
            let message = format!(
                "unknown tool {name:?}; the tools are: {}",
                surface::names(&self.tools).join(", ")
            );
            let data = json!({ "error_code": "unknown_tool" });
            return Err(ErrorData::invalid_params(message, Some(data)));
        };
        let _inflight = self.inflight.clone().read_owned().await;
        let mut arguments = request.arguments.unwrap_or_default();
        if let Err(err) = tool.check(&arguments) {
            return Ok(render::failure(Some(tool.info), &err));
        }
        let image = image_read(tool.info.name, &mut arguments);

        let progress = context.meta.get_progress_token();
        let (events, forwarder) = match &progress {
            Some(token) => {
                let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                let peer = context.peer.clone();
                let token = token.clone();
                let label = tool.info.name;
                let forwarder = tokio::spawn(forward(peer, token, label, rx));
                (Some(tx), Some(forwarder))
            }
            None => (None, None),
        };
        let call = Call {
            cancel: context.ct.clone(),
            events,
        };
        let admission = self.admission.clone();
        let work = async {
            let _slot = match &admission {
                Some(gate) => Some(gate.admit().await?),
                None => None,
            };
            let mut again = false;
            loop {
                let mut arguments = arguments.clone();
                if tool.bound {
                    let id = self.environment(again).await?;
                    arguments.insert("container_id".into(), id.into());
                }
                let result =
                    tools::dispatch(&self.engine, tool.info.name, Value::Object(arguments)).await;
                // An environment made from a spec that went away (or stopped) is made again
                // (a session's is restarted) once; nothing ran yet.
                let gone = matches!(
                    &result,
                    Err(Error::ContainerNotFound(_) | Error::ContainerNotRunning { .. })
                );
                if gone
                    && !again
                    && matches!(self.binding, Some(Binding::Create { .. }))
                    && tool.bound
                {
                    again = true;
                    continue;
                }
                return result;
            }
        };
        let outcome = call::scope(call, call::guarded(work)).await;

        if let (Some(token), Some(forwarder)) = (progress, forwarder) {
            let sent = forwarder.await.unwrap_or(0);
            if !context.ct.is_cancelled() {
                let message = match &outcome {
                    Ok(_) => format!("{} done", tool.info.name),
                    Err(e) => format!("{} failed: {}", tool.info.name, e.code()),
                };
                let param = ProgressNotificationParam::new(token, f64::from(sent + 1))
                    .with_message(message);
                let _ = context.peer.notify_progress(param).await;
            }
        }
        Ok(match outcome {
            Ok(value) => render::success(tool.info.name, value, image),
            Err(err) => render::failure(Some(tool.info), &err),
        })
    }
}

/// For read_file of an image (.png, .jpg, .gif, .webp) with no encoding asked for: reads
/// the bytes (base64), to return them as image content. Returns the MIME type.
fn image_read(tool: &str, arguments: &mut Map<String, Value>) -> Option<&'static str> {
    if tool != "read_file" {
        return None;
    }
    let mime = render::image_type(arguments.get("path")?.as_str()?)?;
    match arguments.get("encoding") {
        None => {
            arguments.insert("encoding".into(), "base64".into());
            Some(mime)
        }
        Some(encoding) if encoding == "base64" => Some(mime),
        Some(_) => None,
    }
}

/// Sends a call's events as progress notifications: a first one at once, then output and
/// steps gathered for PROGRESS_EVERY. Returns how many it sent.
async fn forward(
    peer: Peer<RoleServer>,
    token: ProgressToken,
    tool: &'static str,
    mut events: UnboundedReceiver<Event>,
) -> u32 {
    let mut sent = 0u32;
    let send = |sent: &mut u32, message: String| {
        *sent += 1;
        let param =
            ProgressNotificationParam::new(token.clone(), f64::from(*sent)).with_message(message);
        let peer = peer.clone();
        async move {
            let _ = peer.notify_progress(param).await;
        }
    };
    send(&mut sent, format!("{tool} started")).await;
    // Output of one stream waiting to go out, and the latest step.
    let mut output: Option<(bool, Vec<u8>)> = None;
    let mut step: Option<String> = None;
    let mut due: Option<Instant> = None;
    loop {
        let event = tokio::select! {
            event = events.recv() => event,
            _ = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                for message in drain(&mut output, &mut step) {
                    send(&mut sent, message).await;
                }
                due = None;
                continue;
            }
        };
        let Some(event) = event else {
            break;
        };
        match event {
            Event::Output { stderr, bytes } => {
                if output.as_ref().is_some_and(|(s, _)| *s != stderr) {
                    for message in drain(&mut output, &mut None) {
                        send(&mut sent, message).await;
                    }
                }
                output.get_or_insert((stderr, Vec::new())).1.extend(bytes);
            }
            Event::Progress { message } => step = Some(message),
        }
        due.get_or_insert(Instant::now() + PROGRESS_EVERY);
    }
    for message in drain(&mut output, &mut step) {
        send(&mut sent, message).await;
    }
    sent
}

/// The messages for what waits: output in pieces of at most PROGRESS_CHUNK bytes (stderr
/// marked), then the latest step.
fn drain(output: &mut Option<(bool, Vec<u8>)>, step: &mut Option<String>) -> Vec<String> {
    let mut messages = Vec::new();
    if let Some((stderr, bytes)) = output.take() {
        for piece in bytes.chunks(PROGRESS_CHUNK) {
            let text = String::from_utf8_lossy(piece);
            messages.push(if stderr {
                format!("[stderr] {text}")
            } else {
                text.into_owned()
            });
        }
    }
    messages.extend(step.take());
    messages
}

impl ServerHandler for Server {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("adde", env!("CARGO_PKG_VERSION")))
            .with_instructions(self.inner.instructions.clone())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.inner.listed.clone()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.inner.call(request, context).await.map(Into::into)
    }
}
