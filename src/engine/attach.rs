//! The agent channel from the host: attach to the environment's PID 1 and run one helper role
//! through it, with the same stream an Engine-API exec gives (`ExecOutput`), so the callers
//! cannot tell the two apart except by speed.

use std::pin::Pin;
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::query_parameters::AttachContainerOptionsBuilder;
use futures_util::{Stream, StreamExt};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::containers::ExecOutput;
use super::{classify, container_path_id, Engine, OutputChunk, Subject};
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

/// An attachment to an environment's agent that has answered `Hello`: from here on it sees
/// the agent's output. `request` is the random id its frames carry.
struct Attached {
    input: Pin<Box<dyn AsyncWrite + Send>>,
    output:
        Pin<Box<dyn Stream<Item = std::result::Result<LogOutput, bollard::errors::Error>> + Send>>,
    decoder: AgentDecoder,
    request: u64,
}

impl Engine {
    /// Attaches to the environment's agent and waits for it to answer; `None` when it does
    /// not answer in time (dead, wedged, or an environment without one).
    async fn attach_agent(&self, id: &str) -> Result<Option<Attached>> {
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
        let mut output = attached.output;
        let request = u64::from_str_radix(&crate::ids::random_hex(8), 16).unwrap_or_default();
        let mut decoder = AgentDecoder::default();

        // Hello until Ready: from then on this attachment sees the agent's output.
        let hello = encode_agent_frames(AgentKind::Hello, request, &[]).concat();
        let ready = async {
            let mut resend = tokio::time::interval(HELLO_EVERY);
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
                                if frame.request == request && frame.kind == AgentKind::Ready {
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
        Ok(Some(Attached {
            input,
            output,
            decoder,
            request,
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
        let (output, _cancel) = self.agent_stream(id, attached, frames, |frame| match frame.kind {
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
        let (events, cancel) = self.agent_stream(id, attached, frames, move |frame| {
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
        let (mut replies, _cancel) =
            self.agent_stream(id, attached, frames, move |frame| match frame.kind {
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
                    serde_json::from_slice(&std::mem::take(&mut reply)).map_err(|e| {
                        Error::Helper(format!("the agent's reply is unreadable: {e}"))
                    }),
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
        id: &str,
        attached: Attached,
        frames: Vec<Vec<u8>>,
        pick: impl FnMut(AgentFrame) -> Option<Result<T>> + Send + 'static,
    ) -> (Frames<T>, Cancel) {
        let Attached {
            mut input,
            output,
            decoder,
            request,
        } = attached;
        // The attachment's input stays open while the output is read (closing it early makes
        // some engines end the attachment): until the stream below is dropped.
        let (keep_open, closed) = tokio::sync::oneshot::channel::<()>();
        let (cancel, cancelled) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            for frame in frames {
                // One write per frame: the engine never interleaves other callers inside it.
                if input.write_all(&frame).await.is_err() {
                    return;
                }
            }
            tokio::pin!(closed);
            tokio::select! {
                _ = &mut closed => return,
                got = cancelled => if got.is_ok() {
                    let frame = encode_agent_frames(AgentKind::ContextCancel, request, &[]).concat();
                    let _ = input.write_all(&frame).await;
                },
            }
            let _ = closed.await;
            drop(input);
        });

        let addr = self.addr.clone();
        let id = id.to_string();
        let stream = futures_util::stream::unfold(
            (output, decoder, false, keep_open, pick),
            move |(mut output, mut decoder, done, keep_open, mut pick)| {
                let addr = addr.clone();
                let id = id.clone();
                async move {
                    if done {
                        return None;
                    }
                    loop {
                        while let Some(frame) = decoder.next_frame() {
                            let Ok(frame) = frame else { continue };
                            if frame.request != request {
                                continue;
                            }
                            let kind = frame.kind;
                            if kind == AgentKind::Failed {
                                let why = String::from_utf8_lossy(&frame.payload).into_owned();
                                let state = (output, decoder, true, keep_open, pick);
                                return Some((Err(Error::Helper(why)), state));
                            }
                            let item = pick(frame);
                            if kind == AgentKind::End {
                                let item = item?;
                                return Some((item, (output, decoder, true, keep_open, pick)));
                            }
                            if let Some(item) = item {
                                let failed = item.is_err();
                                return Some((item, (output, decoder, failed, keep_open, pick)));
                            }
                        }
                        match output.next().await {
                            Some(Ok(LogOutput::StdOut { message })) => decoder.push(&message),
                            Some(Ok(_)) => {}
                            Some(Err(e)) => {
                                let err = classify(e, &addr, Subject::Container(&id));
                                let state = (output, decoder, true, keep_open, pick);
                                return Some((Err(err), state));
                            }
                            // The channel closed (PID 1 died with its environment): the
                            // output ends, as an exec's does, and the caller finds out why.
                            None => return None,
                        }
                    }
                }
            },
        );
        (Box::pin(stream), cancel)
    }
}
