//! Classic-builder builds of a streamed context.

use std::collections::HashMap;
use std::io::IsTerminal;

use bollard::query_parameters::BuildImageOptionsBuilder;
use futures_util::StreamExt;

use super::build_log::BuildLog;
use super::{Engine, Label, Labels, Subject};
use crate::error::Result;

/// What a build is asked to do.
pub struct BuildRequest {
    pub tag: String,
    pub dockerfile: String,
    pub build_args: HashMap<String, String>,
    pub labels: Labels,
    pub target: Option<String>,
    pub no_cache: bool,
    pub network_mode: Option<String>,
}

/// What a build did, whether it succeeded (`image_id`) or failed (`error`).
#[derive(Default, Debug)]
pub struct BuildOutcome {
    pub image_id: Option<String>,
    pub error: Option<String>,
    /// The last step header seen, e.g. "Step 3/5 : RUN make", and its number.
    pub step: Option<(u32, String)>,
    pub lines: Vec<String>,
    /// Images the steps produced (not the base images), for prune_build_cache.
    pub intermediates: Vec<String>,
}

impl Engine {
    /// Runs a classic-builder build of a streamed context. A failing step is not an `Err`:
    /// it comes back in the outcome with the log, so the caller can report where it failed.
    /// `on_intermediate` hears of every image a step makes as soon as the log shows it, so
    /// a build that is stopped (or whose caller is killed) still leaves a trail.
    pub async fn build(
        &self,
        request: &BuildRequest,
        context: crate::context::TarStream,
        mut on_intermediate: impl FnMut(&[String]),
    ) -> Result<BuildOutcome> {
        // The classic builder turns each label into a step of its own: only the ones adde needs.
        let labels = request.labels.clone().without(Label::Version).into_map();
        let mut options = BuildImageOptionsBuilder::default()
            .dockerfile(&request.dockerfile)
            .t(&request.tag)
            .rm(true)
            .forcerm(true)
            .nocache(request.no_cache)
            .buildargs(&request.build_args)
            .labels(&labels);
        if let Some(target) = &request.target {
            options = options.target(target);
        }
        if let Some(network) = &request.network_mode {
            options = options.networkmode(network);
        }
        let docker = self.docker()?;
        let mut stream = docker.build_image(
            options.build(),
            None,
            Some(bollard::body_try_stream(context)),
        );
        let mut outcome = BuildOutcome::default();
        let mut log = BuildLog::new(std::io::stderr().is_terminal());
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(text) = info.stream.as_deref() {
                        let known = outcome.intermediates.len();
                        log.push(text, &mut outcome);
                        if outcome.intermediates.len() > known {
                            on_intermediate(&outcome.intermediates);
                        }
                    }
                    if let Some(id) = info.aux.and_then(|aux| aux.id) {
                        outcome.image_id = Some(id);
                    }
                    if let Some(message) = info.error_detail.and_then(|d| d.message) {
                        outcome.error = Some(message);
                        break;
                    }
                }
                Err(bollard::errors::Error::DockerStreamError { error }) => {
                    outcome.error = Some(error);
                    break;
                }
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 400,
                    message,
                }) => {
                    outcome.error = Some(message);
                    break;
                }
                Err(e) => return Err(self.classify(e, Subject::Other)),
            }
        }
        log.finish(&mut outcome);
        Ok(outcome)
    }
}
