//! Images: inspect, pull, list, remove, prune; and what the engine says about itself.

use std::collections::HashMap;

use bollard::models::{ImageInspect, SystemInfo};
use bollard::query_parameters::{
    CreateImageOptionsBuilder, ListImagesOptionsBuilder, PruneBuildOptionsBuilder,
    PruneImagesOptionsBuilder, RemoveImageOptionsBuilder,
};
use futures_util::StreamExt;

use super::progress::PullProgress;
use super::{image_path_ref, Engine, Label, Labels, Subject};
use crate::error::{Error, Result};

/// An image as the engine reports it.
#[derive(Clone, Debug)]
pub struct ImageInfo {
    pub id: String,
    pub tags: Vec<String>,
    pub size: u64,
    pub labels: Labels,
    /// The image's own command and entrypoint, when it has them.
    pub has_command: bool,
    /// PATH from the image's environment.
    pub path_env: Option<String>,
}

impl ImageInfo {
    fn from_inspect(image: ImageInspect) -> ImageInfo {
        let config = image.config.unwrap_or_default();
        ImageInfo {
            id: image.id.unwrap_or_default(),
            tags: real_tags(image.repo_tags.unwrap_or_default()),
            size: image.size.unwrap_or(0).max(0) as u64,
            labels: Labels::read(config.labels),
            has_command: config.cmd.is_some() || config.entrypoint.is_some(),
            path_env: config
                .env
                .unwrap_or_default()
                .into_iter()
                .find_map(|e| e.strip_prefix("PATH=").map(str::to_string)),
        }
    }
}

/// An image in a listing.
pub struct ImageSummary {
    pub id: String,
    pub tags: Vec<String>,
    pub size: u64,
    /// Unix seconds.
    pub created: i64,
}

/// The engine's versions and runtimes.
#[derive(serde::Serialize)]
pub struct About {
    #[serde(rename = "engine_version")]
    pub version: String,
    pub api_version: String,
    pub min_api_version: String,
    pub os: String,
    pub arch: String,
    pub kernel: String,
    pub runtimes: Vec<String>,
    pub default_runtime: String,
    /// Where the engine keeps images, containers and volumes (`DockerRootDir`).
    pub data_root: String,
    /// The storage driver of containers' root filesystems, e.g. "overlay2".
    pub storage_driver: String,
}

/// What creating an environment needs to know about the engine, from one `/info` call.
pub struct EngineFacts {
    /// The runtimes a container can be created with.
    pub runtimes: Vec<String>,
    /// The engine runs every container on its default runtime, whatever is asked (Podman).
    pub only_default_runtime: bool,
    pub data_root: String,
    pub storage_driver: String,
}

/// An image's tags in Docker's familiar form: Podman spells `agent-env:1` as
/// `docker.io/library/agent-env:1`, and `someone/tool:1` as `docker.io/someone/tool:1`.
fn real_tags(tags: Vec<String>) -> Vec<String> {
    tags.into_iter()
        .filter(|t| t != "<none>:<none>")
        .map(|t| familiar(&t).to_string())
        .collect()
}

fn familiar(tag: &str) -> &str {
    tag.strip_prefix("docker.io/library/")
        .or_else(|| tag.strip_prefix("docker.io/"))
        .unwrap_or(tag)
}

impl Engine {
    /// An image, or `None` when the engine has none by that reference or id.
    pub async fn inspect_image(&self, reference: &str) -> Result<Option<ImageInfo>> {
        let docker = self.docker()?;
        let found = self
            .ask_optional(
                Subject::Image(reference),
                docker.inspect_image(image_path_ref(reference)?),
            )
            .await?;
        let Some(image) = found.map(ImageInfo::from_inspect) else {
            return Ok(None);
        };
        // Image ids are content digests; anything else is not the image asked for.
        if !image.id.starts_with("sha256:") {
            return Err(Error::Engine {
                status: 500,
                message: format!(
                    "asked for image {reference}, the engine answered with {:?}",
                    image.id
                ),
            });
        }
        Ok(Some(image))
    }

    /// An image that must be there; `image_not_found` otherwise, saying `why` it should be.
    pub async fn require_image(&self, reference: &str, why: &str) -> Result<ImageInfo> {
        self.inspect_image(reference)
            .await?
            .ok_or_else(|| Error::ImageNotFound {
                image: reference.to_string(),
                detail: why.to_string(),
            })
    }

    /// Pulls `reference` (which must name a tag or digest, never "all tags"). Progress goes
    /// to stderr as a bar when stderr is a terminal; errors inside the stream are errors.
    pub async fn pull(&self, reference: &str, platform: Option<&str>) -> Result<()> {
        let mut options =
            CreateImageOptionsBuilder::default().from_image(image_path_ref(reference)?);
        if let Some(platform) = platform {
            options = options.platform(platform);
        }
        let docker = self.docker()?;
        let mut stream = docker.create_image(Some(options.build()), None, None);
        let mut progress = PullProgress::new(reference);
        let failed = |message: String| Error::PullFailed {
            image: reference.to_string(),
            message,
        };
        while let Some(event) = stream.next().await {
            match event {
                Ok(info) => {
                    if let Some(detail) = info.error_detail.and_then(|d| d.message) {
                        return Err(failed(detail));
                    }
                    progress.update(info.id.as_deref(), info.progress_detail.as_ref());
                }
                Err(bollard::errors::Error::DockerStreamError { error }) => {
                    return Err(failed(error));
                }
                Err(e) => {
                    return Err(match self.classify(e, Subject::Image(reference)) {
                        Error::Engine { message, .. } => failed(message),
                        other => other,
                    })
                }
            }
        }
        progress.finish();
        Ok(())
    }

    /// adde's images (by label).
    pub async fn list_managed_images(&self) -> Result<Vec<ImageSummary>> {
        let filters = HashMap::from([("label", vec![Label::managed_filter()])]);
        let options = ListImagesOptionsBuilder::default()
            .filters(&filters)
            .build();
        let docker = self.docker()?;
        let images = self
            .ask(Subject::Other, docker.list_images(Some(options)))
            .await?;
        Ok(images
            .into_iter()
            .filter(|i| Labels::read(Some(i.labels.clone())).is_managed())
            .map(|i| ImageSummary {
                id: i.id,
                tags: real_tags(i.repo_tags),
                size: i.size.max(0) as u64,
                created: i.created,
            })
            .collect())
    }

    /// Every image, intermediates included: id to (size, parent id).
    pub async fn image_sizes(&self) -> Result<HashMap<String, (i64, String)>> {
        let options = ListImagesOptionsBuilder::default().all(true).build();
        let docker = self.docker()?;
        let images = self
            .ask(Subject::Other, docker.list_images(Some(options)))
            .await?;
        Ok(images
            .into_iter()
            .map(|i| (i.id, (i.size, i.parent_id)))
            .collect())
    }

    /// Removes an image (and its untagged parents); returns what was deleted or untagged.
    pub async fn remove_image(&self, image: &str, force: bool) -> Result<Vec<String>> {
        let options = RemoveImageOptionsBuilder::default().force(force).build();
        let docker = self.docker()?;
        let items = self
            .ask(
                Subject::Image(image),
                docker.remove_image(image_path_ref(image)?, Some(options), None),
            )
            .await?;
        Ok(items
            .into_iter()
            .filter_map(|i| i.deleted.or(i.untagged))
            .collect())
    }

    /// Removes an intermediate image if it is untagged and nothing depends on it; returns the
    /// ids deleted (it and its untagged parents), or none when it was kept.
    pub async fn remove_intermediate(&self, id: &str) -> Result<Vec<String>> {
        let Some(image) = self.inspect_image(id).await? else {
            return Ok(Vec::new());
        };
        if !image.tags.is_empty() {
            return Ok(Vec::new());
        }
        let options = RemoveImageOptionsBuilder::default().force(false).build();
        let docker = self.docker()?;
        match docker.remove_image(id, Some(options), None).await {
            Ok(items) => Ok(items.into_iter().filter_map(|i| i.deleted).collect()),
            // 409: a child image or a container still uses it; it stays.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404 | 409,
                ..
            }) => Ok(Vec::new()),
            Err(e) => Err(self.classify(e, Subject::Image(id))),
        }
    }

    /// Prunes adde's dangling images and, where the engine has one, the BuildKit cache
    /// older than `until` (a Go duration). Returns the bytes the engine reports reclaimed.
    pub async fn prune_caches(&self, until: &str) -> Result<u64> {
        let mut image_filters = HashMap::from([
            ("dangling", vec!["true".to_string()]),
            ("label", vec![Label::managed_filter()]),
        ]);
        if until != "0s" {
            image_filters.insert("until", vec![until.to_string()]);
        }
        let options = PruneImagesOptionsBuilder::default()
            .filters(&image_filters)
            .build();
        let docker = self.docker()?;
        let images = self
            .ask(Subject::Other, docker.prune_images(Some(options)))
            .await?;
        let mut reclaimed = images.space_reclaimed.unwrap_or(0).max(0) as u64;
        let build_filters = HashMap::from([("until", vec![until.to_string()])]);
        let options = PruneBuildOptionsBuilder::default()
            .filters(&build_filters)
            .build();
        // Engines without BuildKit's cache answer with an error or with nothing to prune.
        if let Ok(build) = docker.prune_build(Some(options)).await {
            reclaimed += build.space_reclaimed.unwrap_or(0).max(0) as u64;
        }
        Ok(reclaimed)
    }

    /// What the engine says about itself.
    pub async fn about(&self) -> Result<About> {
        let docker = self.docker()?;
        let version = self.ask(Subject::Other, docker.version()).await?;
        let info = self.ask(Subject::Other, docker.info()).await?;
        let runtimes = self.selectable_runtimes(&info).await?;
        Ok(About {
            version: version.version.unwrap_or_default(),
            api_version: version.api_version.unwrap_or_default(),
            min_api_version: version.min_api_version.unwrap_or_default(),
            os: version.os.unwrap_or_default(),
            arch: version.arch.unwrap_or_default(),
            kernel: version.kernel_version.unwrap_or_default(),
            runtimes,
            default_runtime: info.default_runtime.unwrap_or_default(),
            data_root: info.docker_root_dir.unwrap_or_default(),
            storage_driver: info.driver.unwrap_or_default(),
        })
    }

    /// The engine's runtimes, data root and storage driver.
    pub async fn facts(&self) -> Result<EngineFacts> {
        let docker = self.docker()?;
        let info = self.ask(Subject::Other, docker.info()).await?;
        Ok(EngineFacts {
            runtimes: self.selectable_runtimes(&info).await?,
            only_default_runtime: self.is_podman().await?,
            data_root: info.docker_root_dir.unwrap_or_default(),
            storage_driver: info.driver.unwrap_or_default(),
        })
    }

    /// The OCI runtimes a container can be created with. Podman's Docker-compatible API (4.3)
    /// ignores the runtime asked for and runs every container on its default one (asked for
    /// runsc, the container ran on runc), and it lists every runtime it is configured for,
    /// installed or not: there, only the default counts.
    async fn selectable_runtimes(&self, info: &SystemInfo) -> Result<Vec<String>> {
        if self.is_podman().await? {
            return Ok(info.default_runtime.iter().cloned().collect());
        }
        let mut names: Vec<String> = info
            .runtimes
            .iter()
            .flat_map(|r| r.keys().cloned())
            .collect();
        names.sort();
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn podman_s_full_names_read_as_docker_s_familiar_ones() {
        let tags = vec![
            "docker.io/library/agent-env:1".to_string(),
            "docker.io/someone/tool:2".to_string(),
            "127.0.0.1:5000/x:3".to_string(),
            "<none>:<none>".to_string(),
        ];
        assert_eq!(
            real_tags(tags),
            ["agent-env:1", "someone/tool:2", "127.0.0.1:5000/x:3"]
        );
    }
}
