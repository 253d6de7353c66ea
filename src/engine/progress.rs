//! The pull progress bar, drawn only when stderr is a terminal.

use std::collections::HashMap;
use std::io::IsTerminal;

/// A progress bar for pulls, drawn only when stderr is a terminal.
pub(super) struct PullProgress {
    bar: Option<indicatif::ProgressBar>,
    layers: HashMap<String, (u64, u64)>,
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
        }
    }

    pub(super) fn update(
        &mut self,
        layer: Option<&str>,
        detail: Option<&bollard::models::ProgressDetail>,
    ) {
        let (Some(bar), Some(layer), Some(detail)) = (&self.bar, layer, detail) else {
            return;
        };
        let current = detail.current.unwrap_or(0).max(0) as u64;
        let total = detail.total.unwrap_or(0).max(0) as u64;
        self.layers.insert(layer.to_string(), (current, total));
        bar.set_length(self.layers.values().map(|(_, t)| t).sum());
        bar.set_position(self.layers.values().map(|(c, _)| c).sum());
    }

    pub(super) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
