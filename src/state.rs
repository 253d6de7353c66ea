//! adde's state on the host, in one place: where it lives and how it is laid out.
//!
//! ```text
//! <state dir>/runs/<container id>/<run id>.json   the run history (history.rs)
//! <state dir>/contexts/ctx-<hex>/                 staged build contexts (prepare_build_context)
//! <state dir>/builds/<build id>.json              what each build left behind (prune_build_cache)
//! <state dir>/git/<hex>/                          clones being built (build_image_from_git)
//! <state dir>/envs/<container id>                 an environment's container name, so that
//!                                                 cleanup_env finds its volumes by id even
//!                                                 after the container was removed by hand
//! ```
//!
//! Every folder is private (0700): contexts and runs can hold secrets.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// adde's state directory: ADDE_STATE_DIR, else $XDG_STATE_HOME/adde, else
/// ~/.local/state/adde.
pub fn root() -> PathBuf {
    std::env::var_os("ADDE_STATE_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("XDG_STATE_HOME")
                .filter(|v| !v.is_empty())
                .map(|d| PathBuf::from(d).join("adde"))
        })
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into());
            PathBuf::from(home).join(".local/state/adde")
        })
}

/// Where `adde serve` listens by default, and where its clients look.
pub fn serve_socket() -> PathBuf {
    root().join("serve.sock")
}

pub fn runs() -> PathBuf {
    root().join("runs")
}

pub fn contexts() -> PathBuf {
    root().join("contexts")
}

pub fn builds() -> PathBuf {
    root().join("builds")
}

pub fn git_staging() -> PathBuf {
    root().join("git")
}

/// Creates a private (0700) folder and its parents.
pub fn private_dir(path: &Path) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|e| Error::state(path, e))
}

pub fn envs() -> PathBuf {
    root().join("envs")
}

/// Records an environment's container name under its id.
pub fn remember_env(id: &str, name: &str) -> Result<()> {
    let dir = envs();
    private_dir(&dir)?;
    let path = dir.join(id);
    std::fs::write(&path, name).map_err(|e| Error::state(&path, e))
}

/// The container name recorded for an id or a unique id prefix (at least 12 hex digits,
/// as `docker ps` shows them).
pub fn recalled_env(id: &str) -> Option<(String, String)> {
    if id.len() < 12 || !id.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let mut found = std::fs::read_dir(envs())
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| name.starts_with(id));
    let full = found.next()?;
    if found.next().is_some() {
        return None;
    }
    let name = std::fs::read_to_string(envs().join(&full)).ok()?;
    Some((full, name.trim().to_string()))
}

/// Forgets an environment's record; one already gone is fine.
pub fn forget_env(id: &str) {
    let _ = std::fs::remove_file(envs().join(id));
}
