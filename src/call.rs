//! What a caller other than the command line gives one tool call: a way to cancel it, and a
//! channel for what the call reports while it runs (a run's output, a pull's bytes, a build's
//! steps). The command line sets neither: there, Ctrl-C and the terminal do those jobs.
//! `adde mcp` sets both for every `tools/call`.
//!
//! It is task-local, so that `tools::dispatch` and every tool keep their signatures; the
//! few places that can stop early or report progress ask for it.

use std::future::Future;

use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

/// The context of one call.
#[derive(Clone, Default)]
pub struct Call {
    /// Cancelled when the caller gives up on the call: a run in progress is then killed,
    /// the way Ctrl-C kills it on the command line.
    pub cancel: CancellationToken,
    /// Where progress goes, when the caller wants it.
    pub events: Option<UnboundedSender<Event>>,
}

/// Something a call reports while it runs.
#[derive(Debug)]
pub enum Event {
    /// Output of a run, as it arrives.
    Output { stderr: bool, bytes: Vec<u8> },
    /// A step of a long call (a pull's bytes, a build's step).
    Progress { message: String },
}

tokio::task_local! {
    static CALL: Call;
}

/// Runs `work` as one call with this context.
pub async fn scope<F: Future>(call: Call, work: F) -> F::Output {
    CALL.scope(call, work).await
}

/// Completes when the call is cancelled; never on the command line. The token is taken
/// now, so the future may be awaited anywhere.
pub fn cancelled() -> impl Future<Output = ()> + Send + 'static {
    let token = CALL.try_with(|call| call.cancel.clone()).ok();
    async move {
        match token {
            Some(token) => token.cancelled_owned().await,
            None => std::future::pending().await,
        }
    }
}

/// Whether anyone listens to this call's events (so that building one is worth it).
pub fn wants_events() -> bool {
    CALL.try_with(|call| call.events.is_some()).unwrap_or(false)
}

/// Reports an event, if anyone listens; `make` runs only then.
pub fn emit(make: impl FnOnce() -> Event) {
    let _ = CALL.try_with(|call| {
        if let Some(events) = &call.events {
            let _ = events.send(make());
        }
    });
}

/// Runs `work`, turning a panic into an internal error: a long-lived server answers the call
/// and goes on serving. The call's future lives on the heap: a tool's future is large, and a
/// server's worker threads would otherwise carry copies of it on their stacks.
pub fn guarded<T>(
    work: impl Future<Output = crate::error::Result<T>> + Send,
) -> impl Future<Output = crate::error::Result<T>> + Send {
    use futures_util::FutureExt;
    std::panic::AssertUnwindSafe(Box::pin(work))
        .catch_unwind()
        .map(|outcome| {
            outcome.unwrap_or_else(|panic| {
                let what = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                Err(crate::error::Error::Internal(what))
            })
        })
}

/// Completes when a server is asked to stop: SIGTERM, SIGINT or SIGHUP. Never completes when
/// the signals cannot be listened for (the server then stops only when killed).
pub async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut terminate), Ok(mut interrupt), Ok(mut hangup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        eprintln!("adde: cannot listen for signals");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
        _ = hangup.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_a_call_nothing_is_reported_or_cancelled() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            assert!(!wants_events());
            emit(|| unreachable!("no listener"));
            let never = tokio::time::timeout(std::time::Duration::from_millis(20), cancelled());
            assert!(never.await.is_err());
        });
    }

    #[test]
    fn inside_a_call_events_flow_and_cancellation_is_seen() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let call = Call {
                cancel: CancellationToken::new(),
                events: Some(tx),
            };
            let token = call.cancel.clone();
            scope(call, async move {
                assert!(wants_events());
                emit(|| Event::Progress {
                    message: "step".into(),
                });
                let waiting = cancelled();
                token.cancel();
                waiting.await;
            })
            .await;
            assert!(matches!(rx.recv().await, Some(Event::Progress { .. })));
        });
    }
}
