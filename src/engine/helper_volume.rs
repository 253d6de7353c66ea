//! adde's helper lives in a volume shared by every environment, mounted read-only at /.adde:
//! user code cannot alter its own supervisor, read-only root filesystems work (the archive
//! API cannot write into them), and an environment costs no 6 MB upload.
//!
//! The volume is named after this binary's content, so a new build gets a new volume and a
//! reinstall of the same binary reuses the old one. The first
//! environment to find it empty fills it through a short-lived, never-started container whose
//! name doubles as a lock; the others wait until the file has its full size.

use std::hash::Hasher;
use std::time::Duration;

use super::{ContainerSpec, Engine, Kind, Labels, Limits, MountSpec, Network};
use crate::error::{Error, Result};
use crate::protocol::{HELPER_DIR, HELPER_PATH};

/// A fill lock older than this was left by a crashed adde and is broken.
const STALE_LOCK: Duration = Duration::from_secs(120);
const WAIT_STEP: Duration = Duration::from_millis(100);
const WAIT_LIMIT: Duration = Duration::from_secs(180);

#[derive(Clone)]
pub struct HelperVolume {
    pub name: String,
    size: u64,
}

impl HelperVolume {
    /// The volume for the running binary: its version and a fingerprint of its bytes.
    pub fn for_this_binary() -> Result<HelperVolume> {
        static THIS: std::sync::OnceLock<HelperVolume> = std::sync::OnceLock::new();
        if let Some(volume) = THIS.get() {
            return Ok(volume.clone());
        }
        let exe = own_binary()?;
        // SipHash with fixed keys: the same bytes give the same name in every process.
        let mut hasher = std::hash::DefaultHasher::new();
        hasher.write(&exe);
        let volume = HelperVolume {
            name: format!(
                "adde-helper-{}-{:012x}",
                env!("CARGO_PKG_VERSION"),
                hasher.finish() & 0xffff_ffff_ffff
            ),
            size: exe.len() as u64,
        };
        Ok(THIS.get_or_init(|| volume).clone())
    }

    pub fn mount(&self, read_only: bool) -> MountSpec {
        MountSpec::volume(&self.name, HELPER_DIR, read_only)
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
        // Never started: it only gives the archive API a way into the volume.
        let spec = ContainerSpec {
            name: format!("{}-fill", self.name),
            image: image.to_string(),
            helper_args: Some(Vec::new()),
            env: Vec::new(),
            labels: Labels::new(Kind::HelperFill),
            mounts: vec![self.mount(false)],
            user: None,
            workdir: "/".into(),
            limits: Limits::minimal(),
            network: Network::None,
            ports: Default::default(),
            read_only_rootfs: false,
            cap_add: Vec::new(),
            runtime: None,
            init: false,
            agent: false,
        };
        let id = match engine.create_locked(spec, STALE_LOCK).await? {
            Some(id) => id,
            None => return Ok(Fill::Busy),
        };
        let result = async {
            let exe = own_binary()?;
            engine.upload(&id, HELPER_DIR, helper_tar(&exe)?).await
        }
        .await;
        engine.remove_container(&id).await?;
        result.map(|()| Fill::Done)
    }
}

/// How an attempt to fill the volume went.
enum Fill {
    Done,
    /// Someone else holds the lock.
    Busy,
}

fn own_binary() -> Result<Vec<u8>> {
    std::fs::read("/proc/self/exe")
        .map_err(|e| Error::Helper(format!("cannot read adde's own binary: {e}")))
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
