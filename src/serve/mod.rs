//! `adde serve`: one long-lived process for many callers. It speaks MCP over streamable HTTP
//! (loopback by default; a bearer token is required for any other address) and, on a unix
//! socket, one JSON request per line answered with the JSON the command line prints.
//!
//! What a per-call CLI cannot do, it does once: one engine connection and one policy for every
//! call, a bound on calls running and waiting (`busy` beyond it), warm pools kept full and
//! environments past their TTL removed in the background. SIGTERM (or SIGINT, SIGHUP) stops
//! it: no new calls, the calls in progress are cancelled (a run is killed and recorded, as
//! Ctrl-C does on the command line), and it exits once they have answered.

mod http;
mod socket;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{value_parser, Arg, ArgAction, ArgMatches, Command};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admission::{Admission, Limits};
use crate::engine::Engine;

/// The address MCP is served on unless told otherwise.
const DEFAULT_HTTP: &str = "127.0.0.1:8765";
/// Calls at once and calls waiting, unless the flags or the policy say fewer.
const DEFAULT_LIMITS: Limits = Limits {
    concurrent: 64,
    queued: 256,
};
/// How often environments past their TTL are removed and warm pools refilled, by default.
const MAINTAIN_EVERY_SEC: u64 = 30;
/// How long calls cancelled at shutdown get to answer before the server exits anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);
/// The variable that holds the HTTP endpoint's bearer token (kept off the command line, where
/// every user of the host can read it).
const TOKEN_ENV: &str = "ADDE_SERVE_TOKEN";

pub fn command() -> Command {
    Command::new("serve")
        .about("Serve adde's tools to many callers from one process: MCP over HTTP and JSON lines on a unix socket")
        .long_about(format!(
            "Serve adde's tools from one long-lived process: MCP over streamable HTTP (at \
             http://ADDR/mcp) and, on a unix socket, one JSON request per line \
             ({{\"tool\": …, \"args\": {{…}}, \"id\": …}}) answered with the JSON the command line \
             prints. One engine connection, one policy, a bound on calls running and waiting \
             (`busy` beyond it); warm pools are refilled, and environments past their TTL \
             and volumes nothing uses removed, in the background (every --maintain-every \
             seconds). SIGTERM stops it cleanly.\n\nAn HTTP address other than \
             loopback needs a bearer token (in ${TOKEN_ENV}); put TLS in front of it (a reverse \
             proxy such as Caddy or nginx). The MCP endpoint shows the agent tool set by \
             default; the flags below choose, as for `adde mcp`."
        ))
        .arg(
            Arg::new("socket")
                .long("socket")
                .value_name("PATH")
                .value_parser(value_parser!(PathBuf))
                .help("The unix socket for JSON lines [default: STATE_DIR/serve.sock]"),
        )
        .arg(
            Arg::new("no-socket")
                .long("no-socket")
                .action(ArgAction::SetTrue)
                .conflicts_with("socket")
                .help("Do not listen on a unix socket"),
        )
        .arg(
            Arg::new("http")
                .long("http")
                .value_name("ADDR")
                .value_parser(value_parser!(SocketAddr))
                .help(format!("Serve MCP on this address [default: {DEFAULT_HTTP}]")),
        )
        .arg(
            Arg::new("no-http")
                .long("no-http")
                .action(ArgAction::SetTrue)
                .conflicts_with("http")
                .help("Do not serve MCP over HTTP"),
        )
        .arg(
            Arg::new("max-concurrent")
                .long("max-concurrent")
                .value_name("N")
                .value_parser(value_parser!(usize))
                .help(format!(
                    "Calls run at once [default: {}, or the policy's limits.max_concurrent_calls]",
                    DEFAULT_LIMITS.concurrent
                )),
        )
        .arg(
            Arg::new("max-queued")
                .long("max-queued")
                .value_name("N")
                .value_parser(value_parser!(usize))
                .help(format!(
                    "Calls that may wait for a slot; more are answered `busy` [default: {}, or the policy's limits.max_queued_calls]",
                    DEFAULT_LIMITS.queued
                )),
        )
        .arg(
            Arg::new("maintain-every")
                .long("maintain-every")
                .value_name("SECONDS")
                .value_parser(value_parser!(u64).range(1..=86_400))
                .help(format!("How often environments past their ttl_sec are removed and warm pools refilled [default: {MAINTAIN_EVERY_SEC}]")),
        )
        .args(crate::mcp::surface_args())
}

/// What `serve` was asked to do, checked before anything listens.
struct Plan {
    socket: Option<PathBuf>,
    http: Option<SocketAddr>,
    token: Option<String>,
    limits: Limits,
    maintain_every: Duration,
}

fn plan(matches: &ArgMatches) -> Result<Plan, String> {
    let socket = (!matches.get_flag("no-socket")).then(|| {
        matches
            .get_one::<PathBuf>("socket")
            .cloned()
            .unwrap_or_else(crate::state::serve_socket)
    });
    let http = if matches.get_flag("no-http") {
        None
    } else {
        Some(
            matches
                .get_one::<SocketAddr>("http")
                .copied()
                .unwrap_or_else(|| DEFAULT_HTTP.parse().expect("a valid address")),
        )
    };
    if socket.is_none() && http.is_none() {
        return Err("--no-socket and --no-http leave nothing to serve".into());
    }
    let token = std::env::var(TOKEN_ENV).ok().filter(|t| !t.is_empty());
    if let (Some(addr), None) = (http, &token) {
        if !addr.ip().is_loopback() {
            return Err(format!(
                "serving MCP on {addr}, beyond this host, needs a bearer token: set {TOKEN_ENV} \
                 (clients send `Authorization: Bearer <token>`) and put TLS in front (a reverse \
                 proxy such as Caddy or nginx)"
            ));
        }
    }
    if token.as_ref().is_some_and(|t| t.len() < 16) {
        return Err(format!("{TOKEN_ENV} must be at least 16 characters"));
    }
    Ok(Plan {
        socket,
        http,
        token,
        limits: limits(matches)?,
        maintain_every: Duration::from_secs(
            matches
                .get_one::<u64>("maintain-every")
                .copied()
                .unwrap_or(MAINTAIN_EVERY_SEC),
        ),
    })
}

/// The bounds on calls: the flags', within the policy's.
fn limits(matches: &ArgMatches) -> Result<Limits, String> {
    let policy = crate::policy::current()
        .map_err(|e| e.to_string())?
        .policy
        .as_ref()
        .map(|p| p.limits.clone())
        .unwrap_or_default();
    let pick = |flag: &str, allowed: Option<usize>, default: usize| {
        let cap = allowed.unwrap_or(default);
        match matches.get_one::<usize>(flag) {
            Some(&asked) if asked > cap && allowed.is_some() => Err(format!(
                "--{flag} {asked} is over the policy's limit of {cap}"
            )),
            Some(&asked) => Ok(asked),
            None => Ok(cap),
        }
    };
    let concurrent = pick(
        "max-concurrent",
        policy.max_concurrent_calls,
        DEFAULT_LIMITS.concurrent,
    )?;
    if concurrent == 0 {
        return Err("--max-concurrent must be at least 1".into());
    }
    Ok(Limits {
        concurrent,
        queued: pick("max-queued", policy.max_queued_calls, DEFAULT_LIMITS.queued)?,
    })
}

/// What every connection shares.
pub(crate) struct Shared {
    pub engine: Engine,
    pub admission: Arc<Admission>,
    /// Cancelled at shutdown: every call in progress is cancelled with it.
    pub stop: CancellationToken,
    /// Every connection and call, so that shutdown can wait for them.
    pub tasks: TaskTracker,
}

pub fn main(matches: &ArgMatches) -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        eprintln!("adde serve: internal error: {info}");
    }));
    let plan = match plan(matches) {
        Ok(plan) => plan,
        Err(message) => {
            eprintln!("adde serve: {message}");
            return ExitCode::from(2);
        }
    };
    let admission = Arc::new(Admission::new(plan.limits));
    let mcp = match crate::mcp::server(matches, Some(admission.clone())) {
        Ok(server) => server,
        Err(message) => {
            eprintln!("adde serve: {message}");
            return ExitCode::from(2);
        }
    };
    // Worker threads get the main thread's 8 MiB of stack: a debug build's tool futures are
    // large (a call's own future is on the heap: `call::guarded`).
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(8 * 1024 * 1024)
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("adde serve: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let shared = Arc::new(Shared {
        engine: Engine::from_env().keeping_agent_links(),
        admission,
        stop: CancellationToken::new(),
        tasks: TaskTracker::new(),
    });
    let code = runtime.block_on(serve(plan, shared, mcp));
    runtime.shutdown_timeout(Duration::from_secs(1));
    ExitCode::from(code)
}

async fn serve(plan: Plan, shared: Arc<Shared>, mcp: crate::mcp::Server) -> u8 {
    let socket = match &plan.socket {
        Some(path) => match socket::listen(path) {
            Ok(listener) => Some(listener),
            Err(message) => {
                eprintln!("adde serve: {message}");
                return 1;
            }
        },
        None => None,
    };
    let http = match plan.http {
        Some(addr) => match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => Some(listener),
            Err(e) => {
                eprintln!("adde serve: cannot listen on {addr}: {e}");
                return 1;
            }
        },
        None => None,
    };
    // One line per endpoint, so that a script can wait for the server to be ready.
    if let Some(path) = &plan.socket {
        eprintln!("adde serve: JSON lines on unix:{}", path.display());
    }
    if let Some(listener) = &http {
        if let Ok(addr) = listener.local_addr() {
            eprintln!("adde serve: MCP on http://{addr}/mcp");
        }
    }
    let limits = shared.admission.limits();
    eprintln!(
        "adde serve: at most {} calls at once and {} waiting",
        limits.concurrent, limits.queued
    );

    if let Some(listener) = socket {
        shared.tasks.spawn(socket::accept(listener, shared.clone()));
    }
    if let Some(listener) = http {
        let service = http::Endpoint::new(mcp.clone(), plan.token.clone(), shared.stop.clone());
        shared
            .tasks
            .spawn(http::accept(listener, service, shared.clone()));
    }
    shared
        .tasks
        .spawn(maintain(shared.clone(), plan.maintain_every));

    crate::call::stop_signal().await;
    eprintln!("adde serve: stopping: calls in progress are cancelled");
    shared.stop.cancel();
    shared.tasks.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, shared.tasks.wait())
        .await
        .is_err()
    {
        eprintln!("adde serve: calls still in progress at exit were abandoned");
    }
    mcp.finish("adde serve").await;
    if let Some(path) = &plan.socket {
        let _ = std::fs::remove_file(path);
    }
    0
}

/// In the background: removes environments past their TTL and volumes nothing uses, and keeps
/// warm pools full.
async fn maintain(shared: Arc<Shared>, period: Duration) {
    let mut every = tokio::time::interval(period);
    loop {
        tokio::select! {
            _ = shared.stop.cancelled() => return,
            _ = every.tick() => {}
        }
        let work = async {
            match crate::tools::remove_expired(&shared.engine, false).await {
                Ok((removed, _)) if !removed.is_empty() => {
                    eprintln!(
                        "adde serve: removed {} environments past their TTL",
                        removed.len()
                    );
                }
                Ok(_) => {}
                Err(e) => eprintln!("adde serve: removing expired environments: {e}"),
            }
            // A crashed create's volumes, an environment's removed without them.
            let spare = crate::tools::SpareHelpers::All;
            match crate::tools::remove_unused_volumes(&shared.engine, false, spare).await {
                Ok(removed) if !removed.is_empty() => {
                    eprintln!("adde serve: removed {} unused volumes", removed.len());
                }
                Ok(_) => {}
                Err(e) => eprintln!("adde serve: removing unused volumes: {e}"),
            }
            for (pool, error) in crate::tools::pools::refill_all(&shared.engine).await {
                eprintln!("adde serve: refilling pool {pool}: {error}");
            }
        };
        tokio::select! {
            _ = shared.stop.cancelled() => return,
            _ = work => {}
        }
    }
}
