//! The unix socket: one JSON request per line, `{"tool": …, "args": {…}, "id": …}`, answered
//! with the JSON object the command line prints for that call (on success or error). With
//! `"stream": true` in an execute tool's args, the run's output comes first as event lines, as
//! on the command line. A request's `id` (a string or a number) is copied into every line
//! that answers it: requests on one connection run concurrently, so a client that sends
//! several before reading needs ids to match the answers.
//!
//! Every client is hostile until proven otherwise: a line is bounded, a connection that does
//! not read its answers is dropped (its calls cancelled) instead of holding memory, and the
//! number of connections is bounded.
//!
//! `{"cancel": ID}` cancels the connection's call with that id (a run is killed and recorded,
//! as Ctrl-C does on the command line); the call answers `interrupted`. A client that closes
//! its end only for writing still gets its answers.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};
use tokio_util::sync::CancellationToken;

use super::Shared;
use crate::call::{self, Call};
use crate::cli::{error_object, event_json, take_stream};
use crate::error::Error;
use crate::tools;

/// The longest request line: room for a write_file of a few MiB in base64.
const MAX_LINE: usize = 32 * 1024 * 1024;
/// Connections served at once; more are answered `busy` and closed.
const MAX_CONNECTIONS: usize = 1024;
/// How long a client may leave an answer unread before it is dropped.
const WRITE_WAIT: Duration = Duration::from_secs(30);

/// Binds the socket, private to this user. A socket file left by a server that is gone is
/// replaced; one a live server listens on is not.
pub fn listen(path: &Path) -> std::result::Result<UnixListener, String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::state::private_dir(dir).map_err(|e| e.to_string())?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(format!(
                "another server is listening on {}; stop it or pass --socket",
                path.display()
            ));
        }
        std::fs::remove_file(path)
            .map_err(|e| format!("cannot replace {}: {e}", path.display()))?;
    }
    // Created with no permissions for others: the socket is as good as the caller's shell.
    // SAFETY: umask only changes this process's file-creation mask, restored right after.
    let previous = unsafe { libc::umask(0o177) };
    let bound = UnixListener::bind(path);
    unsafe { libc::umask(previous) };
    bound.map_err(|e| format!("cannot listen on {}: {e}", path.display()))
}

pub async fn accept(listener: UnixListener, shared: Arc<Shared>) {
    let open = Arc::new(AtomicUsize::new(0));
    loop {
        let stream = tokio::select! {
            _ = shared.stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // Out of descriptors, say: the next accept may do better.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if open.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            open.fetch_sub(1, Ordering::SeqCst);
            shared.tasks.spawn(refuse(stream, shared.clone()));
            continue;
        }
        let open = open.clone();
        let connection = serve_connection(stream, shared.clone());
        shared.tasks.spawn(async move {
            connection.await;
            open.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

async fn refuse(mut stream: UnixStream, shared: Arc<Shared>) {
    let limits = shared.admission.limits();
    let err = Error::Busy {
        concurrent: limits.concurrent,
        queued: limits.queued,
    };
    let line = line(Value::Object(error_object(None, &err)), None);
    let _ = tokio::time::timeout(WRITE_WAIT, stream.write_all(&line)).await;
}

/// One request line.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    tool: String,
    #[serde(default)]
    args: Option<Value>,
    #[serde(default)]
    id: Option<Value>,
}

async fn serve_connection(stream: UnixStream, shared: Arc<Shared>) {
    let (reader, mut writer) = stream.into_split();
    // Cancelled when the connection is dropped for not reading, or at shutdown.
    let gone = shared.stop.child_token();
    let (answers, mut outgoing) = mpsc::unbounded_channel::<Vec<u8>>();
    let write = {
        let gone = gone.clone();
        async move {
            while let Some(bytes) = outgoing.recv().await {
                match tokio::time::timeout(WRITE_WAIT, writer.write_all(&bytes)).await {
                    Ok(Ok(())) => {}
                    // Unread for too long, or closed: its calls are no use to anyone.
                    _ => {
                        gone.cancel();
                        return;
                    }
                }
            }
        }
    };
    let writing = tokio::spawn(write);
    let calls = tokio_util::task::TaskTracker::new();
    // The calls with an id, so that `{"cancel": ID}` can reach them.
    let in_flight: Arc<Mutex<HashMap<String, CancellationToken>>> = Default::default();
    let mut lines = FramedRead::new(reader, LinesCodec::new_with_max_length(MAX_LINE));
    loop {
        let next = tokio::select! {
            _ = gone.cancelled() => break,
            next = lines.next() => next,
        };
        match next {
            None => break,
            Some(Ok(text)) if text.trim().is_empty() => {}
            Some(Ok(text)) => {
                if let Some(id) = cancellation(&text) {
                    if let Some(token) = in_flight.lock().ok().and_then(|m| m.get(&id).cloned()) {
                        token.cancel();
                    }
                    continue;
                }
                let answers = answers.clone();
                let shared = shared.clone();
                let cancel = gone.child_token();
                let in_flight = in_flight.clone();
                // Registered before the next line is read, so a cancel right behind finds it.
                let id = request_id(&text);
                if let (Some(id), Ok(mut map)) = (&id, in_flight.lock()) {
                    map.insert(id.clone(), cancel.clone());
                }
                calls.spawn(async move {
                    answer(&text, &shared, cancel, &answers).await;
                    if let (Some(id), Ok(mut map)) = (&id, in_flight.lock()) {
                        map.remove(id);
                    }
                });
            }
            Some(Err(LinesCodecError::MaxLineLengthExceeded)) => {
                let err = Error::InvalidJson(format!(
                    "a request line is longer than {MAX_LINE} bytes; the connection is closed"
                ));
                let _ = answers.send(line(Value::Object(error_object(None, &err)), None));
                break;
            }
            Some(Err(LinesCodecError::Io(_))) => break,
        }
    }
    // The client has sent all it will: its calls still answer, then the connection closes.
    calls.close();
    calls.wait().await;
    drop(answers);
    let _ = writing.await;
}

/// The id a `{"cancel": ID}` line names.
fn cancellation(text: &str) -> Option<String> {
    let value: Value = serde_json::from_str(text).ok()?;
    let object = value.as_object()?;
    (object.len() == 1).then(|| object.get("cancel").map(Value::to_string))?
}

/// A request's id, as the key of the calls in flight.
fn request_id(text: &str) -> Option<String> {
    let value: Value = serde_json::from_str(text).ok()?;
    value.get("id").map(Value::to_string)
}

/// Answers one request: its events as they come, then its result.
async fn answer(
    text: &str,
    shared: &Shared,
    cancel: CancellationToken,
    answers: &mpsc::UnboundedSender<Vec<u8>>,
) {
    let send = |bytes: Vec<u8>| {
        let _ = answers.send(bytes);
    };
    let request: Request = match serde_json::from_str(text) {
        Ok(request) => request,
        Err(e) => {
            // The id, if the line is JSON at all, so the client knows which request failed.
            let id = serde_json::from_str::<Value>(text)
                .ok()
                .and_then(|v| v.get("id").cloned());
            let err = Error::InvalidJson(format!(
                "a request is {{\"tool\": NAME, \"args\": {{…}}, \"id\": ID}}: {e}"
            ));
            return send(line(Value::Object(error_object(None, &err)), id.as_ref()));
        }
    };
    let id = request
        .id
        .as_ref()
        .filter(|id| id.is_string() || id.is_number());
    if request.id.is_some() && id.is_none() {
        let err = Error::InvalidJson("a request's `id` is a string or a number".into());
        return send(line(Value::Object(error_object(None, &err)), None));
    }
    let tool = request.tool.as_str();
    let (events, mut received) = mpsc::unbounded_channel();
    let forward = {
        let answers = answers.clone();
        let id = id.cloned();
        async move {
            while let Some(event) = received.recv().await {
                let _ = answers.send(line(event_json(event), id.as_ref()));
            }
        }
    };
    let forwarding = tokio::spawn(forward);
    let result = {
        let call = async {
            let mut payload = request.args.clone().unwrap_or_else(|| Map::new().into());
            if !payload.is_object() {
                return Err(Error::InvalidJson("`args` is a JSON object".into()));
            }
            let stream = take_stream(tool, &mut payload)?;
            let call = Call {
                cancel,
                events: stream.then_some(events),
            };
            let _slot = shared.admission.admit().await?;
            call::scope(call, tools::dispatch(&shared.engine, tool, payload)).await
        };
        call::guarded(call).await
    };
    // The call's sender is gone with it: the forwarder ends once it has sent every event.
    let _ = forwarding.await;
    send(match result {
        Ok(value) => line(value, id),
        Err(err) => line(Value::Object(error_object(Some(tool), &err)), id),
    });
}

/// One answer line: the object, with the request's id when it had one.
fn line(mut value: Value, id: Option<&Value>) -> Vec<u8> {
    if let (Some(id), Some(object)) = (id, value.as_object_mut()) {
        object.insert("id".into(), id.clone());
    }
    let mut bytes = serde_json::to_vec(&value).unwrap_or_else(|_| b"{}".to_vec());
    bytes.push(b'\n');
    bytes
}
