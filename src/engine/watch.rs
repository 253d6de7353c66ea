//! What a long-lived process (`adde serve`, `adde mcp`) remembers of adde's running
//! environments between calls. Every call into an environment checks that it is adde's and
//! running; asking the engine each time cost dockerd about as much CPU as the whole rest of
//! an execution through `adde serve`. Here the answer is kept, and forgotten at the first
//! event the engine reports about that container (pause, stop, die, rename, update, exec,
//! destroy: any). The engine's event stream is followed from a time taken from the engine's
//! own clock, so events that happen while the subscription is being set up are replayed, not
//! missed; while the stream is down nothing is remembered.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bollard::query_parameters::EventsOptionsBuilder;
use bollard::Docker;
use futures_util::StreamExt;

use super::containers::ContainerInfo;
use super::Label;

/// Most environments remembered at once; beyond, the engine is asked.
const MAX_KNOWN: usize = 4096;
/// How long to wait before following the engine's events again after the stream broke: at
/// first, and at most (an engine whose event stream keeps failing is not asked every second).
const RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(60);

#[derive(Default)]
pub(super) struct Watch {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    following: bool,
    /// Since which event count the stream has been followed; `None` while it is down.
    live_from: Option<u64>,
    /// Events seen so far; `last_event[id]` is the count at the last one about `id`.
    seen: u64,
    last_event: HashMap<String, u64>,
    known: HashMap<String, ContainerInfo>,
}

impl Watch {
    /// What is remembered of the running environment with this full id.
    pub(super) fn known(&self, id: &str) -> Option<ContainerInfo> {
        self.state.lock().ok()?.known.get(id).cloned()
    }

    /// Where the event count stands before the engine is asked (None: nothing may be
    /// remembered now); starts following the engine's events on first use.
    pub(super) fn mark(self: &Arc<Self>, docker: &Docker) -> Option<u64> {
        let mut state = self.state.lock().ok()?;
        if !state.following {
            state.following = true;
            tokio::spawn(follow(docker.clone(), Arc::downgrade(self)));
        }
        state.live_from.map(|_| state.seen)
    }

    /// Remembers `info`, asked for after `mark` returned `since`, unless an event about it
    /// (or a break in the stream) came in between.
    pub(super) fn remember(&self, since: u64, info: &ContainerInfo) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let unchanged = state.live_from.is_some_and(|from| from <= since)
            && state.last_event.get(&info.id).is_none_or(|&at| at <= since);
        if unchanged && state.known.len() < MAX_KNOWN {
            state.known.insert(info.id.clone(), info.clone());
        }
    }

    fn saw(&self, id: Option<&str>) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        state.seen += 1;
        let at = state.seen;
        match id {
            Some(id) => {
                state.known.remove(id);
                state.last_event.insert(id.to_string(), at);
            }
            // An event that names no container: forget everything.
            None => state.known.clear(),
        }
        if state.last_event.len() > MAX_KNOWN {
            // Old marks only matter to inspects still in flight: keep none, remember nothing
            // asked for before now.
            state.last_event.clear();
            state.live_from = state.live_from.map(|_| at);
        }
    }

    fn set_live(&self, live: bool) {
        if let Ok(mut state) = self.state.lock() {
            state.seen += 1;
            state.live_from = live.then_some(state.seen);
            if !live {
                state.known.clear();
            }
        }
    }
}

/// Follows the engine's events about adde's containers for as long as the watch exists.
async fn follow(docker: Docker, watch: Weak<Watch>) {
    let mut retry = RETRY;
    loop {
        // The engine's clock, not ours (a remote engine's may differ): events from then on
        // are replayed to the subscription however late it is set up.
        let since = match docker.info().await.ok().and_then(|info| info.system_time) {
            Some(time) => chrono::DateTime::parse_from_rfc3339(&time)
                .ok()
                .map(|t| (t.timestamp() - 1).to_string()),
            None => None,
        };
        if let Some(since) = since {
            let filters = HashMap::from([
                ("type", vec!["container".to_string()]),
                ("label", vec![Label::managed_filter()]),
            ]);
            let options = EventsOptionsBuilder::default()
                .since(&since)
                .filters(&filters)
                .build();
            let mut events = docker.events(Some(options));
            match watch.upgrade() {
                Some(watch) => watch.set_live(true),
                None => return,
            }
            while let Some(Ok(event)) = events.next().await {
                let Some(watch) = watch.upgrade() else { return };
                watch.saw(event.actor.as_ref().and_then(|a| a.id.as_deref()));
                retry = RETRY;
            }
        }
        match watch.upgrade() {
            Some(watch) => watch.set_live(false),
            None => return,
        }
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(MAX_RETRY);
    }
}
