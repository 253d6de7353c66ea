//! The pull progress bar, drawn only when stderr is a terminal, and the pull's progress for
//! a caller that listens (an MCP client).

use std::collections::HashMap;
use std::io::IsTerminal;

/// A progress bar for pulls, drawn only when stderr is a terminal.
pub(super) struct PullProgress {
    bar: Option<indicatif::ProgressBar>,
    layers: HashMap<String, (u64, u64)>,
    /// For a caller that listens to the call's progress (an MCP client).
    reference: String,
}

impl PullProgress {
    pub(super) fn new(reference: &str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {elapsed}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_message(format!("pulling {reference}"));
            bar
        });
        PullProgress {
            bar,
            layers: HashMap::new(),
            reference: reference.to_string(),
        }
    }

    pub(super) fn update(
        &mut self,
        layer: Option<&str>,
        detail: Option<&bollard::models::ProgressDetail>,
    ) {
        let (Some(layer), Some(detail)) = (layer, detail) else {
            return;
        };
        if self.bar.is_none() && !crate::call::wants_events() {
            return;
        }
        let current = detail.current.unwrap_or(0).max(0) as u64;
        let total = detail.total.unwrap_or(0).max(0) as u64;
        self.layers.insert(layer.to_string(), (current, total));
        let length: u64 = self.layers.values().map(|(_, t)| t).sum();
        let position: u64 = self.layers.values().map(|(c, _)| c).sum();
        if let Some(bar) = &self.bar {
            bar.set_length(length);
            bar.set_position(position);
        }
        crate::call::emit(|| crate::call::Event::Progress {
            message: format!(
                "pulling {}: {:.1}/{:.1} MB",
                self.reference,
                position as f64 / 1e6,
                length as f64 / 1e6
            ),
        });
    }

    pub(super) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
