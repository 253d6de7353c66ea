//! pull_image, and the image lookup that create_runtime_env shares with it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::engine::Engine;
use crate::error::{Error, Result};

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

pub async fn pull_image(input: PullImageInput) -> Result<PullImageOutput> {
    let image = normalize_reference(&super::required("image", "image name", &input.image)?)?;
    let platform = input
        .platform
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty());
    let engine = Engine::connect()?;
    engine.pull(&image, platform).await?;
    let id = image_id(&engine, &image).await?;
    Ok(PullImageOutput {
        ok: true,
        image,
        id,
    })
}

/// The id of a local image, or image_not_found.
pub async fn image_id(engine: &Engine, image: &str) -> Result<String> {
    let inspect = engine.inspect_image(image).await?;
    inspect
        .and_then(|i| i.id)
        .ok_or_else(|| Error::ImageNotFound {
            image: image.to_string(),
            detail: "not present after pulling".into(),
        })
}

/// Adds ":latest" to a reference with neither tag nor digest, so a pull fetches one tag.
pub fn normalize_reference(reference: &str) -> Result<String> {
    if reference
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(Error::invalid(
            "image",
            format!("{reference:?} is not a valid image reference (whitespace)"),
        ));
    }
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
            ("repo@sha256:abcd", "repo@sha256:abcd"),
        ];
        for (given, want) in cases {
            assert_eq!(normalize_reference(given).unwrap(), want);
        }
        assert!(normalize_reference("bad name").is_err());
    }
}
