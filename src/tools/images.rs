//! pull_image, and the image lookup that create_runtime_env shares with it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::refs;

use super::build::BuildRecord;
use super::input::{in_range, megabytes, required};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PullImageInput {
    /// Image reference, e.g. "python:3.12-slim" or "127.0.0.1:5000/tools:1". Without a tag,
    /// "latest" is pulled (never every tag).
    pub image: String,
    /// Platform to pull, e.g. "linux/amd64"; the engine's own when absent.
    #[serde(default)]
    pub platform: Option<String>,
}

#[derive(Serialize)]
pub struct PullImageOutput {
    pub ok: bool,
    /// The normalized reference that was pulled, e.g. "busybox:latest".
    pub image: String,
    /// The image id ("sha256:...").
    pub id: String,
}

pub async fn pull_image(engine: &Engine, input: PullImageInput) -> Result<PullImageOutput> {
    let image = normalize_reference(&required("image", "image name", &input.image)?)?;
    let platform = input
        .platform
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty());
    engine.pull(&image, platform).await?;
    let id = engine
        .require_image(&image, "not present after pulling")
        .await?
        .id;
    Ok(PullImageOutput {
        ok: true,
        image,
        id,
    })
}

/// A valid reference, with ":latest" added when it has neither tag nor digest, so a pull
/// fetches one tag.
pub fn normalize_reference(reference: &str) -> Result<String> {
    let reference = refs::image_reference("image", reference)?;
    let reference = reference.as_str();
    let last = reference.rsplit('/').next().unwrap_or(reference);
    if reference.contains('@') || last.contains(':') {
        Ok(reference.to_string())
    } else {
        Ok(format!("{reference}:latest"))
    }
}

#[cfg(test)]
mod tests {
    use super::normalize_reference;

    #[test]
    fn references_without_a_tag_get_latest() {
        let cases = [
            ("busybox", "busybox:latest"),
            ("busybox:1.36", "busybox:1.36"),
            ("127.0.0.1:5000/tools", "127.0.0.1:5000/tools:latest"),
            ("127.0.0.1:5000/tools:2", "127.0.0.1:5000/tools:2"),
            (
                "repo@sha256:0123456789abcdef0123456789abcdef",
                "repo@sha256:0123456789abcdef0123456789abcdef",
            ),
        ];
        for (given, want) in cases {
            assert_eq!(normalize_reference(given).unwrap(), want);
        }
        assert!(normalize_reference("bad name").is_err());
    }
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListImagesInput {
    /// Only images with a tag starting with this, e.g. "agent-env".
    #[serde(default)]
    pub filter_tag: Option<String>,
}

#[derive(Serialize)]
pub struct ListImagesOutput {
    pub images: Vec<AgentImage>,
}

#[derive(Serialize)]
pub struct AgentImage {
    pub id: String,
    pub tags: Vec<String>,
    pub size_mb: f64,
    /// When the image was built, UTC (RFC 3339).
    pub created: String,
}

/// The images adde built (by label), newest first.
pub async fn list_agent_images(
    engine: &Engine,
    input: ListImagesInput,
) -> Result<ListImagesOutput> {
    let prefix = input
        .filter_tag
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty());
    let mut images: Vec<_> = engine
        .list_managed_images()
        .await?
        .into_iter()
        .filter(|image| prefix.is_none_or(|p| image.tags.iter().any(|t| t.starts_with(p))))
        .collect();
    images.sort_by_key(|image| std::cmp::Reverse(image.created));
    let images = images
        .into_iter()
        .map(|image| AgentImage {
            id: image.id,
            tags: image.tags,
            size_mb: megabytes(image.size),
            created: chrono::DateTime::from_timestamp(image.created, 0)
                .unwrap_or_default()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        })
        .collect();
    Ok(ListImagesOutput { images })
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteImageInput {
    /// Image reference or id.
    pub image: String,
    /// Remove it even if a container uses it or it has several tags.
    #[serde(default)]
    pub force: bool,
    /// Refuse images adde did not build (the default; ADDE's field).
    #[serde(default = "yes")]
    pub agent_env_only: bool,
}

fn yes() -> bool {
    true
}

#[derive(Serialize)]
pub struct DeleteImageOutput {
    pub ok: bool,
    /// Ids deleted and tags removed.
    pub deleted: Vec<String>,
}

pub async fn delete_image(engine: &Engine, input: DeleteImageInput) -> Result<DeleteImageOutput> {
    let image = refs::image_reference("image", input.image.trim())?;
    let inspect = engine
        .require_image(&image, "no such image on the engine")
        .await?;
    if input.agent_env_only && !inspect.labels.is_managed() {
        return Err(Error::NotManaged(format!("image {image}")));
    }
    let deleted = engine.remove_image(&image, input.force).await?;
    Ok(DeleteImageOutput { ok: true, deleted })
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PruneInput {
    /// Only what builds left more than this many hours ago; everything when absent.
    #[serde(default)]
    pub older_than_hrs: Option<f64>,
}

#[derive(Serialize)]
pub struct PruneOutput {
    pub space_reclaimed_mb: f64,
    pub space_reclaimed_bytes: u64,
    /// Intermediate and dangling images removed.
    pub images_deleted: usize,
}

/// Removes what adde's builds left behind: the intermediate images of their steps (untagged
/// and unused; a tagged image's own chain stays), adde's dangling images, and the BuildKit
/// cache where the engine has one.
/// Removes the intermediate images of the recorded builds `due` selects (untagged and unused
/// ones; a tagged image's own chain stays), and their records. Returns the bytes freed and
/// the images removed.
pub async fn remove_build_leftovers(
    engine: &Engine,
    due: impl Fn(&BuildRecord) -> bool,
) -> Result<(u64, usize)> {
    let sizes = engine.image_sizes().await?;
    let own_size = |id: &str| {
        sizes.get(id).map_or(0, |(size, parent)| {
            let parent_size = sizes.get(parent).map_or(0, |(s, _)| *s);
            (size - parent_size).max(0) as u64
        })
    };
    let (mut bytes, mut deleted) = (0u64, 0usize);
    let records = std::fs::read_dir(crate::state::builds())
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_else(|_| Vec::new());
    for path in records {
        let Ok(record) = std::fs::read(&path)
            .map_err(drop)
            .and_then(|b| serde_json::from_slice::<BuildRecord>(&b).map_err(drop))
        else {
            continue;
        };
        if !due(&record) {
            continue;
        }
        // Newest step first: removing it frees its untagged parents with it.
        for id in record.intermediates.iter().rev() {
            for gone in engine.remove_intermediate(id).await? {
                bytes += own_size(&gone);
                deleted += 1;
            }
        }
        std::fs::remove_file(&path).map_err(|e| Error::state(&path, e))?;
    }
    Ok((bytes, deleted))
}

/// The oldest cut-off prune takes: ten years.
const MAX_PRUNE_AGE_HRS: f64 = 10.0 * 365.0 * 24.0;

pub async fn prune_build_cache(engine: &Engine, input: PruneInput) -> Result<PruneOutput> {
    let hours = in_range(
        "older_than_hrs",
        input.older_than_hrs.unwrap_or(0.0),
        0.0,
        MAX_PRUNE_AGE_HRS,
    )?;
    let cutoff = chrono::Utc::now() - chrono::Duration::seconds((hours * 3600.0) as i64);
    let (mut bytes, deleted) = remove_build_leftovers(engine, |r| r.finished_at <= cutoff).await?;
    let until = format!("{}s", (hours * 3600.0) as u64);
    bytes += engine.prune_caches(&until).await?;
    Ok(PruneOutput {
        space_reclaimed_mb: megabytes(bytes),
        space_reclaimed_bytes: bytes,
        images_deleted: deleted,
    })
}
