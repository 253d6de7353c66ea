//! The agent channel from the host: attach to the environment's PID 1 and run one helper role
//! through it, with the same stream an Engine-API exec gives (`ExecOutput`), so the callers
//! cannot tell the two apart except by speed.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::query_parameters::AttachContainerOptionsBuilder;
use futures_util::{Stream, StreamExt};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use super::containers::ExecOutput;
use super::{container_path_id, Engine, OutputChunk, Subject};
use crate::error::{Error, Result};
use crate::protocol::{
    encode_agent_frames, AgentDecoder, AgentFrame, AgentKind, AgentStart, ContextReply,
    ContextRequest, ProcReply, ProcRequest, Role,
};

/// What a context request brings back: the cell's output as it comes, then the reply.
pub enum ContextEvent {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    Reply(ContextReply),
}

type ContextEvents = Frames<ContextEvent>;
/// What an agent request brings back, item by item.
type Frames<T> = std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<T>> + Send>>;
/// Sends the agent `ContextCancel` for the request, when used.
type Cancel = tokio::sync::oneshot::Sender<()>;

/// The most a context's reply may weigh: its results are bounded by the request.
const MAX_REPLY: usize = 256 * 1024 * 1024;

/// How long the agent may take to answer `Hello` before it is taken for dead or wedged.
const READY_WAIT: Duration = Duration::from_secs(2);
/// How often `Hello` is repeated until the engine has wired this attachment to PID 1's
/// output (it may still be doing so when the connection is upgraded).
const HELLO_EVERY: Duration = Duration::from_millis(25);
/// Largest reply about background processes the host takes (a read is bounded well below).
const MAX_PROC_REPLY: usize = 16 * 1024 * 1024;

type Output =
    Pin<Box<dyn Stream<Item = std::result::Result<LogOutput, bollard::errors::Error>> + Send>>;
type Routes = Arc<StdMutex<HashMap<u64, UnboundedSender<AgentFrame>>>>;

/// An attachment to an environment's agent that has answered `Hello`: from then on it sees
/// the agent's output, which a reader task hands to the requests by their ids. One call uses
/// it once; a long-lived process (`adde serve`, `adde mcp`) keeps it for every call into that
/// environment, so that a call costs no attach and no hello.
pub(super) struct Link {
    /// Frames of one request are written under the lock, so requests never interleave.
    input: tokio::sync::Mutex<Pin<Box<dyn AsyncWrite + Send>>>,
    routes: Routes,
    /// Cancelled when the attachment ends (the environment stopped, the engine went away).
    closed: CancellationToken,
    reader: tokio::task::AbortHandle,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// The links a long-lived process keeps, by environment id.
#[derive(Default)]
pub(super) struct Links(StdMutex<HashMap<String, Arc<Link>>>);

/// One request on a link: `request` is the random id its frames carry.
struct Attached {
    link: Arc<Link>,
    request: u64,
}

fn random_request() -> u64 {
    u64::from_str_radix(&crate::ids::random_hex(8), 16).unwrap_or_default()
}

impl Engine {
    /// A link to the environment's agent for one request: the one kept for it, else a new
    /// attachment that has seen the agent answer; `None` when the agent does not answer in
    /// time (dead, wedged, or an environment without one).
    async fn attach_agent(&self, id: &str) -> Result<Option<Attached>> {
        let kept = self.links.as_ref().and_then(|links| {
            let mut links = links.0.lock().ok()?;
            links.retain(|_, link| !link.closed.is_cancelled());
            links.get(id).cloned()
        });
        let link = match kept {
            Some(link) => link,
            None => {
                let Some(link) = self.new_link(id).await? else {
                    return Ok(None);
                };
                let link = Arc::new(link);
                if let Some(Ok(mut links)) = self.links.as_ref().map(|l| l.0.lock()) {
                    links.insert(id.to_string(), link.clone());
                }
                link
            }
        };
        Ok(Some(Attached {
            link,
            request: random_request(),
        }))
    }

    async fn new_link(&self, id: &str) -> Result<Option<Link>> {
        let options = AttachContainerOptionsBuilder::default()
            .stdin(true)
            .stdout(true)
            .stream(true)
            .build();
        let docker = self.docker()?;
        let attached = self
            .ask(
                Subject::Container(id),
                docker.attach_container(container_path_id(id)?, Some(options)),
            )
            .await?;
        let mut input = attached.input;
        let mut output: Output = attached.output;
        let hello_id = random_request();
        let mut decoder = AgentDecoder::default();

        // Hello until Ready: from then on this attachment sees the agent's output.
        let hello = encode_agent_frames(AgentKind::Hello, hello_id, &[]).concat();
        let ready = async {
            // The first Hello goes at once: an interval's first tick waits for the timer
            // wheel's next millisecond, about 1.2 ms on every CLI call.
            if input.write_all(&hello).await.is_err() {
                return false;
            }
            let start = tokio::time::Instant::now() + HELLO_EVERY;
            let mut resend = tokio::time::interval_at(start, HELLO_EVERY);
            loop {
                tokio::select! {
                    _ = resend.tick() => {
                        if input.write_all(&hello).await.is_err() {
                            return false;
                        }
                    }
                    chunk = output.next() => {
                        let Some(chunk) = chunk else {
                            return false;
                        };
                        if let Ok(LogOutput::StdOut { message }) = chunk {
                            decoder.push(&message);
                        }
                        while let Some(frame) = decoder.next_frame() {
                            if let Ok(frame) = frame {
                                if frame.request == hello_id && frame.kind == AgentKind::Ready {
                                    return true;
                                }
                            }
                        }
                    }
                }
            }
        };
        if !tokio::time::timeout(READY_WAIT, ready)
            .await
            .unwrap_or(false)
        {
            return Ok(None);
        }
        let routes = Routes::default();
        let closed = CancellationToken::new();
        let reader = tokio::spawn(read_link(output, decoder, routes.clone(), closed.clone()));
        Ok(Some(Link {
            input: tokio::sync::Mutex::new(input),
            routes,
            closed,
            reader: reader.abort_handle(),
        }))
    }

    /// Runs helper `args` (a role and its arguments) through the environment's agent; `None`
    /// when the agent does not answer in time (dead, wedged, or an environment without one),
    /// so that the caller falls back to an exec.
    pub(super) async fn agent_exec(
        &self,
        id: &str,
        role: Role,
        args: Vec<String>,
        env: Vec<String>,
        workdir: &str,
        stdin: Vec<u8>,
    ) -> Result<Option<ExecOutput>> {
        let Some(attached) = self.attach_agent(id).await? else {
            return Ok(None);
        };
        let request = attached.request;
        let start = serde_json::to_vec(&AgentStart {
            role: role.as_str().to_string(),
            args,
            env,
            workdir: workdir.to_string(),
        })
        .map_err(|e| Error::Internal(e.to_string()))?;
        let frames = encode_agent_frames(AgentKind::Start, request, &start)
            .into_iter()
            .chain(encode_agent_frames(AgentKind::Stdin, request, &stdin))
            .chain(encode_agent_frames(AgentKind::StdinEnd, request, &[]))
            .collect();
        let (output, _cancel) = self.agent_stream(attached, frames, |frame| match frame.kind {
            AgentKind::Stdout => Some(Ok(OutputChunk::Stdout(frame.payload.into()))),
            AgentKind::Stderr => Some(Ok(OutputChunk::Stderr(frame.payload.into()))),
            _ => None,
        });
        Ok(Some(output))
    }

    /// Sends `request` to the environment's code-interpreter contexts and returns what comes
    /// back (the cell's output, then the reply), and a sender that cancels the request.
    pub async fn context_call(
        &self,
        id: &str,
        request: &ContextRequest,
    ) -> Result<Option<(ContextEvents, Cancel)>> {
        let Some(attached) = self.attach_agent(id).await? else {
            return Ok(None);
        };
        let body = serde_json::to_vec(request).map_err(|e| Error::Internal(e.to_string()))?;
        let frames = encode_agent_frames(AgentKind::ContextRequest, attached.request, &body)
            .into_iter()
            .chain(encode_agent_frames(
                AgentKind::ContextRequestEnd,
                attached.request,
                &[],
            ))
            .collect();
        let mut reply = Vec::new();
        let (events, cancel) = self.agent_stream(attached, frames, move |frame| {
            match frame.kind {
                AgentKind::Stdout => Some(Ok(ContextEvent::Stdout(frame.payload))),
                AgentKind::Stderr => Some(Ok(ContextEvent::Stderr(frame.payload))),
                AgentKind::ContextReply => {
                    // A reply is at most what its results may weigh, and some slack.
                    if reply.len() + frame.payload.len() > MAX_REPLY {
                        return Some(Err(Error::Helper(
                            "the context's reply is too large".into(),
                        )));
                    }
                    reply.extend_from_slice(&frame.payload);
                    None
                }
                AgentKind::End => Some(
                    serde_json::from_slice(&std::mem::take(&mut reply))
                        .map(ContextEvent::Reply)
                        .map_err(|e| Error::Helper(format!("unreadable context reply: {e}"))),
                ),
                _ => None,
            }
        });
        Ok(Some((events, cancel)))
    }

    /// Asks the environment's agent about its background processes and returns its reply
    /// (at most `MAX_PROC_REPLY` bytes); `None` when the agent does not answer `Hello`.
    pub async fn agent_call(&self, id: &str, request: &ProcRequest) -> Result<Option<ProcReply>> {
        let Some(attached) = self.attach_agent(id).await? else {
            return Ok(None);
        };
        let payload = serde_json::to_vec(request).map_err(|e| Error::Internal(e.to_string()))?;
        let frames = encode_agent_frames(AgentKind::ProcRequest, attached.request, &payload)
            .into_iter()
            .chain(encode_agent_frames(
                AgentKind::ProcRequestEnd,
                attached.request,
                &[],
            ))
            .collect();
        let mut reply = Vec::new();
        let (mut replies, _cancel) = self.agent_stream(attached, frames, move |frame| match frame
            .kind
        {
            AgentKind::ProcReply if reply.len() + frame.payload.len() > MAX_PROC_REPLY => {
                Some(Err(Error::Helper(format!(
                    "the agent's reply is over {} MiB",
                    MAX_PROC_REPLY >> 20
                ))))
            }
            AgentKind::ProcReply => {
                reply.extend_from_slice(&frame.payload);
                None
            }
            AgentKind::End => Some(
                serde_json::from_slice(&std::mem::take(&mut reply))
                    .map_err(|e| Error::Helper(format!("the agent's reply is unreadable: {e}"))),
            ),
            _ => None,
        });
        match replies.next().await {
            Some(reply) => reply.map(Some),
            None => Err(Error::Helper(
                "the environment's agent went away before it answered (the environment \
                 stopped?)"
                    .into(),
            )),
        }
    }

    /// Writes `frames` to the agent and streams the frames of the attachment's request, as
    /// `pick` turns them into items, until `End` (which `pick` sees first) or `Failed`. The
    /// sender, when used, sends the agent `ContextCancel` for the request.
    fn agent_stream<T: Send + 'static>(
        &self,
        attached: Attached,
        frames: Vec<Vec<u8>>,
        pick: impl FnMut(AgentFrame) -> Option<Result<T>> + Send + 'static,
    ) -> (Frames<T>, Cancel) {
        let Attached { link, request } = attached;
        // Routed before anything is written, so that no answer can come first.
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        if let Ok(mut routes) = link.routes.lock() {
            routes.insert(request, sender);
        }
        let route = Route {
            link: link.clone(),
            request,
        };
        let (cancel, cancelled) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            {
                let mut input = link.input.lock().await;
                for frame in frames {
                    if input.write_all(&frame).await.is_err() {
                        return;
                    }
                }
            }
            // Until the request is done (its stream dropped, the sender with it) or cancelled.
            if cancelled.await.is_ok() {
                let frame = encode_agent_frames(AgentKind::ContextCancel, request, &[]).concat();
                let _ = link.input.lock().await.write_all(&frame).await;
            }
        });

        let stream = futures_util::stream::unfold(
            (receiver, false, route, pick),
            move |(mut receiver, done, route, mut pick)| async move {
                if done {
                    return None;
                }
                // None: the attachment closed (PID 1 died with its environment): the output
                // ends, as an exec's does, and the caller finds out why.
                while let Some(frame) = receiver.recv().await {
                    let kind = frame.kind;
                    if kind == AgentKind::Failed {
                        let why = String::from_utf8_lossy(&frame.payload).into_owned();
                        let error = if why == crate::protocol::ENVIRONMENT_ALTERED {
                            Error::EnvironmentAltered(why)
                        } else {
                            Error::Helper(why)
                        };
                        return Some((Err(error), (receiver, true, route, pick)));
                    }
                    let item = pick(frame);
                    if kind == AgentKind::End {
                        let item = item?;
                        return Some((item, (receiver, true, route, pick)));
                    }
                    if let Some(item) = item {
                        let failed = item.is_err();
                        return Some((item, (receiver, failed, route, pick)));
                    }
                }
                None
            },
        );
        (Box::pin(stream), cancel)
    }
}

/// A request's place on its link, given up when its stream is dropped.
struct Route {
    link: Arc<Link>,
    request: u64,
}

impl Drop for Route {
    fn drop(&mut self) {
        if let Ok(mut routes) = self.link.routes.lock() {
            routes.remove(&self.request);
        }
    }
}

/// Hands the agent's frames to the requests they name, until the attachment ends. Frames of
/// requests nobody here made (other processes attached to the same agent) are dropped.
async fn read_link(
    mut output: Output,
    mut decoder: AgentDecoder,
    routes: Routes,
    closed: CancellationToken,
) {
    loop {
        while let Some(frame) = decoder.next_frame() {
            let Ok(frame) = frame else { continue };
            if let Ok(routes) = routes.lock() {
                if let Some(route) = routes.get(&frame.request) {
                    let _ = route.send(frame);
                }
            }
        }
        match output.next().await {
            Some(Ok(LogOutput::StdOut { message })) => decoder.push(&message),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => break,
        }
    }
    closed.cancel();
    // The requests still waiting see their stream end.
    if let Ok(mut routes) = routes.lock() {
        routes.clear();
    }
}
