//! adde's helper lives in a volume shared by every environment, mounted read-only at /.adde:
//! user code cannot alter its own supervisor, read-only root filesystems work (the archive
//! API cannot write into them), and an environment costs no 6 MB upload.
//!
//! The volume is named after this binary, so a new build gets a new volume. The first
//! environment to find it empty fills it through a short-lived, never-started container whose
//! name doubles as a lock; the others wait until the file has its full size.

use std::hash::{Hash, Hasher};
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType};

use crate::engine::{self, Engine, Fill};
use crate::error::{Error, Result};
use crate::protocol::{HELPER_DIR, HELPER_PATH};

/// A fill lock older than this was left by a crashed adde and is broken.
const STALE_LOCK: Duration = Duration::from_secs(120);
const WAIT_STEP: Duration = Duration::from_millis(100);
const WAIT_LIMIT: Duration = Duration::from_secs(180);

pub struct HelperVolume {
    pub name: String,
    size: u64,
}

impl HelperVolume {
    /// The volume for the running binary: its version and a fingerprint of the file.
    pub fn for_this_binary() -> Result<HelperVolume> {
        let meta = std::fs::metadata("/proc/self/exe")
            .map_err(|e| Error::Helper(format!("cannot read adde's own binary: {e}")))?;
        let mut hasher = std::hash::DefaultHasher::new();
        (meta.len(), meta.mtime(), meta.mtime_nsec(), meta.ino()).hash(&mut hasher);
        Ok(HelperVolume {
            name: format!(
                "adde-helper-{}-{:012x}",
                env!("CARGO_PKG_VERSION"),
                hasher.finish() & 0xffff_ffff_ffff
            ),
            size: meta.len(),
        })
    }

    pub fn mount(&self, read_only: bool) -> Mount {
        Mount {
            source: Some(self.name.clone()),
            target: Some(HELPER_DIR.to_string()),
            typ: Some(MountType::VOLUME),
            read_only: Some(read_only),
            ..Default::default()
        }
    }

    /// Makes sure the volume holds the helper, as seen from `container` (which mounts it),
    /// filling it with `image` (any image present will do) when nobody has.
    pub async fn ensure(&self, engine: &Engine, container: &str, image: &str) -> Result<()> {
        let waited = tokio::time::Instant::now();
        loop {
            if engine.path_size(container, HELPER_PATH).await? == Some(self.size) {
                return Ok(());
            }
            match self.fill(engine, image).await? {
                Fill::Done => continue,
                Fill::Busy if waited.elapsed() < WAIT_LIMIT => tokio::time::sleep(WAIT_STEP).await,
                Fill::Busy => {
                    return Err(Error::Helper(format!(
                        "another adde has been filling volume {} for over {WAIT_LIMIT:?}",
                        self.name
                    )))
                }
            }
        }
    }

    async fn fill(&self, engine: &Engine, image: &str) -> Result<Fill> {
        let lock = format!("{}-fill", self.name);
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            entrypoint: Some(vec![HELPER_PATH.to_string()]),
            labels: Some(engine::labels("helper-fill", &[])),
            network_disabled: Some(true),
            host_config: Some(HostConfig {
                mounts: Some(vec![self.mount(false)]),
                network_mode: Some("none".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let id = match engine.create_locked(&lock, body, STALE_LOCK).await? {
            Some(id) => id,
            None => return Ok(Fill::Busy),
        };
        let result = async {
            let exe = std::fs::read("/proc/self/exe")
                .map_err(|e| Error::Helper(format!("cannot read adde's own binary: {e}")))?;
            engine.upload(&id, HELPER_DIR, helper_tar(&exe)?).await
        }
        .await;
        engine.remove_container(&id).await?;
        result.map(|()| Fill::Done)
    }
}

/// The binary as a one-file tar, unpacked in /.adde.
fn helper_tar(exe: &[u8]) -> Result<Vec<u8>> {
    let name = HELPER_PATH.rsplit('/').next().unwrap_or("adde");
    let mut builder = tar::Builder::new(Vec::with_capacity(exe.len() + 1024));
    let mut header = tar::Header::new_gnu();
    header.set_mode(0o755);
    header.set_size(exe.len() as u64);
    builder
        .append_data(&mut header, name, exe)
        .and_then(|()| builder.into_inner())
        .map_err(|e| Error::Internal(format!("packing the helper: {e}")))
}
