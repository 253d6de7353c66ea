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
    encode_agent_frames, AgentDecoder, AgentKind, AgentStart, ProcReply, ProcRequest, Role,
};

/// How long the agent may take to answer `Hello` before it is taken for dead or wedged.
const READY_WAIT: Duration = Duration::from_secs(2);
/// How often `Hello` is repeated until the engine has wired this attachment to PID 1's
/// output (it may still be doing so when the connection is upgraded).
const HELLO_EVERY: Duration = Duration::from_millis(25);
/// Largest reply about background processes the host takes (a read is bounded well below).
const MAX_PROC_REPLY: usize = 16 * 1024 * 1024;

/// An attachment to an environment's agent that has seen the agent answer: from here on, it
/// receives the agent's output.
struct Attached {
    input: Pin<Box<dyn AsyncWrite + Send>>,
    output:
        Pin<Box<dyn Stream<Item = std::result::Result<LogOutput, bollard::errors::Error>> + Send>>,
    decoder: AgentDecoder,
    request: u64,
}

impl Engine {
    /// Attaches to the environment's PID 1 and says hello until the agent answers; `None`
    /// when it does not answer in time (dead, wedged, or an environment without one).
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

    /// Asks the environment's agent about its background processes and returns its reply
    /// (at most `MAX_PROC_REPLY` bytes); `None` when the agent does not answer `Hello`.
    pub async fn agent_call(&self, id: &str, request: &ProcRequest) -> Result<Option<ProcReply>> {
        let Some(Attached {
            mut input,
            mut output,
            mut decoder,
            request: number,
        }) = self.attach_agent(id).await?
        else {
            return Ok(None);
        };
        let payload = serde_json::to_vec(request).map_err(|e| Error::Internal(e.to_string()))?;
        let frames = encode_agent_frames(AgentKind::ProcRequest, number, &payload)
            .into_iter()
            .chain(encode_agent_frames(AgentKind::ProcRequestEnd, number, &[]));
        for frame in frames {
            // One write per frame: the engine never interleaves other callers inside it.
            input.write_all(&frame).await.map_err(|e| {
                Error::Helper(format!("cannot write to the environment's agent: {e}"))
            })?;
        }
        let mut reply = Vec::new();
        loop {
            while let Some(frame) = decoder.next_frame() {
                let Ok(frame) = frame else { continue };
                if frame.request != number {
                    continue;
                }
                match frame.kind {
                    AgentKind::ProcReply if reply.len() + frame.payload.len() <= MAX_PROC_REPLY => {
                        reply.extend_from_slice(&frame.payload)
                    }
                    AgentKind::ProcReply => {
                        return Err(Error::Helper(format!(
                            "the agent's reply is over {} MiB",
                            MAX_PROC_REPLY >> 20
                        )))
                    }
                    AgentKind::ProcReplyEnd => {
                        return serde_json::from_slice(&reply).map(Some).map_err(|e| {
                            Error::Helper(format!("the agent's reply is unreadable: {e}"))
                        })
                    }
                    _ => {}
                }
            }
            match output.next().await {
                Some(Ok(LogOutput::StdOut { message })) => decoder.push(&message),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(self.classify(e, Subject::Container(id))),
                None => {
                    return Err(Error::Helper(
                        "the environment's agent went away before it answered (the \
                         environment stopped?)"
                            .into(),
                    ))
                }
            }
        }
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
        let Some(Attached {
            mut input,
            output,
            decoder,
            request,
        }) = self.attach_agent(id).await?
        else {
            return Ok(None);
        };

        let start = serde_json::to_vec(&AgentStart {
            role: role.as_str().to_string(),
            args,
            env,
            workdir: workdir.to_string(),
        })
        .map_err(|e| Error::Internal(e.to_string()))?;
        // The attachment's input stays open while the output is read (closing it early makes
        // some engines end the attachment): until the stream below is dropped.
        let (keep_open, closed) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let frames = encode_agent_frames(AgentKind::Start, request, &start)
                .into_iter()
                .chain(encode_agent_frames(AgentKind::Stdin, request, &stdin))
                .chain(encode_agent_frames(AgentKind::StdinEnd, request, &[]));
            for frame in frames {
                // One write per frame: the engine never interleaves other callers inside it.
                if input.write_all(&frame).await.is_err() {
                    return;
                }
            }
            let _ = closed.await;
            drop(input);
        });

        let addr = self.addr.clone();
        let id = id.to_string();
        let stream = futures_util::stream::unfold(
            (output, decoder, false, keep_open),
            move |(mut output, mut decoder, done, keep_open)| {
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
                            let item = match frame.kind {
                                AgentKind::Stdout => Ok(OutputChunk::Stdout(frame.payload.into())),
                                AgentKind::Stderr => Ok(OutputChunk::Stderr(frame.payload.into())),
                                AgentKind::Failed => Err(Error::Helper(
                                    String::from_utf8_lossy(&frame.payload).into_owned(),
                                )),
                                AgentKind::End => return None,
                                _ => continue,
                            };
                            let failed = item.is_err();
                            return Some((item, (output, decoder, failed, keep_open)));
                        }
                        match output.next().await {
                            Some(Ok(LogOutput::StdOut { message })) => decoder.push(&message),
                            Some(Ok(_)) => {}
                            Some(Err(e)) => {
                                let err = classify(e, &addr, Subject::Container(&id));
                                return Some((Err(err), (output, decoder, true, keep_open)));
                            }
                            // The channel closed (PID 1 died with its environment): the
                            // output ends, as an exec's does, and the caller finds out why.
                            None => return None,
                        }
                    }
                }
            },
        );
        Ok(Some(Box::pin(stream)))
    }
}
