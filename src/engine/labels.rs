//! adde's labels, typed: everything adde creates carries `io.adde.managed=true`, its kind and
//! adde's version, and adde lists, cleans and touches nothing without them. A label key is a
//! variant here, so a mistyped label is a compile error.

use std::collections::HashMap;

/// Every key adde reads or writes. Callers may never set one (`is_reserved`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Label {
    Managed,
    Kind,
    Version,
    /// The environment a volume or short-lived container belongs to (its container name).
    Env,
    /// Named volumes that belong to an environment, comma-separated; removed with it.
    Volumes,
    UseImageCmd,
    /// When `reap` may remove an environment (unix seconds).
    ExpiresAt,
    /// The image reference an environment was created from.
    Image,
    Session,
    PackageManager,
    Dependencies,
    /// The build an image (or its intermediates) came from.
    Build,
    /// The version of the agent channel the environment's PID 1 serves, if any.
    Agent,
    /// Who made it: `ADDE_OWNER`, else the host user (`uid:<uid>`). `cleanup_env` with
    /// `all` and `reap` act on the caller's own resources unless told otherwise.
    Owner,
    /// An environment's disk bound, e.g. "1g".
    Disk,
    /// What backs an environment's workspace: "volume" or "tmpfs".
    Workspace,
    /// The names of the caller's `env_vars`, comma-separated (their values are in the
    /// container's config), so a session can be compared with a new request.
    EnvVars,
    /// The warm pool an environment was made for.
    Pool,
    /// Until when (unix seconds) a volume may be waiting for the container it was made for:
    /// a create in progress (installing dependencies, say). Sweeps leave it alone until then,
    /// and a crashed create's volumes are swept after.
    PendingUntil,
}

const PREFIX: &str = "io.adde.";

impl Label {
    pub fn key(self) -> &'static str {
        match self {
            Label::Managed => "io.adde.managed",
            Label::Kind => "io.adde.kind",
            Label::Version => "io.adde.version",
            Label::Env => "io.adde.env",
            Label::Volumes => "io.adde.volumes",
            Label::UseImageCmd => "io.adde.use_image_cmd",
            Label::ExpiresAt => "io.adde.expires_at",
            Label::Image => "io.adde.image",
            Label::Session => "io.adde.session",
            Label::PackageManager => "io.adde.package_manager",
            Label::Dependencies => "io.adde.dependencies",
            Label::Build => "io.adde.build",
            Label::Agent => "io.adde.agent",
            Label::Owner => "io.adde.owner",
            Label::Disk => "io.adde.disk",
            Label::Workspace => "io.adde.workspace",
            Label::EnvVars => "io.adde.env_vars",
            Label::Pool => "io.adde.pool",
            Label::PendingUntil => "io.adde.pending_until",
        }
    }

    /// The filter that selects what adde made.
    pub fn managed_filter() -> String {
        format!("{}=true", Label::Managed.key())
    }

    /// The filter that selects what this owner made.
    pub fn owner_filter() -> String {
        format!("{}={}", Label::Owner.key(), owner())
    }

    /// Whether a caller-given label key is adde's to set.
    pub fn is_reserved(key: &str) -> bool {
        key.starts_with(PREFIX)
    }
}

/// The owner recorded on everything this process creates: `ADDE_OWNER` (trimmed, at most
/// 128 characters), else the host user as `uid:<uid>`.
pub fn owner() -> &'static str {
    static OWNER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    OWNER.get_or_init(|| {
        std::env::var("ADDE_OWNER")
            .ok()
            .map(|o| o.trim().chars().take(128).collect::<String>())
            .filter(|o| !o.is_empty())
            // SAFETY: getuid has no preconditions and cannot fail.
            .unwrap_or_else(|| format!("uid:{}", unsafe { libc::getuid() }))
    })
}

/// What a resource adde made is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A runtime environment.
    Env,
    /// An environment's workspace or dependencies volume.
    Volume,
    /// A short-lived dependency install.
    Installer,
    /// A short-lived container that prepares the workspace for a user.
    Prep,
    /// The shared volume holding adde's helper binary.
    Helper,
    /// The never-started container that fills the helper volume.
    HelperFill,
    /// An image adde built.
    Image,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Env => "env",
            Kind::Volume => "volume",
            Kind::Installer => "installer",
            Kind::Prep => "prep",
            Kind::Helper => "helper",
            Kind::HelperFill => "helper-fill",
            Kind::Image => "image",
        }
    }
}

/// A resource's labels, read or about to be written.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Labels(HashMap<String, String>);

impl Labels {
    /// adde's own labels for a new resource of `kind`.
    pub fn new(kind: Kind) -> Labels {
        Labels(HashMap::from([
            (Label::Managed.key().to_string(), "true".to_string()),
            (Label::Kind.key().to_string(), kind.as_str().to_string()),
            (
                Label::Version.key().to_string(),
                env!("CARGO_PKG_VERSION").to_string(),
            ),
            (Label::Owner.key().to_string(), owner().to_string()),
        ]))
    }

    /// Whether this process's owner made it.
    pub fn is_mine(&self) -> bool {
        self.get(Label::Owner) == Some(owner())
    }

    /// Labels as the engine reported them.
    pub fn read(labels: Option<HashMap<String, String>>) -> Labels {
        Labels(labels.unwrap_or_default())
    }

    pub fn with(mut self, label: Label, value: impl Into<String>) -> Labels {
        self.set(label, value);
        self
    }

    pub fn set(&mut self, label: Label, value: impl Into<String>) {
        self.0.insert(label.key().to_string(), value.into());
    }

    /// The caller's own labels, which must not be adde's (the caller checks).
    pub fn extend_user(&mut self, labels: impl IntoIterator<Item = (String, String)>) {
        self.0
            .extend(labels.into_iter().filter(|(k, _)| !Label::is_reserved(k)));
    }

    pub fn get(&self, label: Label) -> Option<&str> {
        self.0.get(label.key()).map(String::as_str)
    }

    pub fn is_managed(&self) -> bool {
        self.get(Label::Managed) == Some("true")
    }

    pub fn kind(&self) -> Option<&str> {
        self.get(Label::Kind)
    }

    /// The named volumes an environment owns.
    pub fn volumes(&self) -> Vec<String> {
        self.get(Label::Volumes)
            .unwrap_or("")
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }

    pub fn use_image_cmd(&self) -> bool {
        self.get(Label::UseImageCmd) == Some("true")
    }

    pub fn expires_at(&self) -> Option<i64> {
        self.get(Label::ExpiresAt)?.parse().ok()
    }

    /// Whether, at `now` (unix seconds), the volume may still be waiting for its container.
    pub fn is_pending(&self, now: i64) -> bool {
        self.get(Label::PendingUntil)
            .and_then(|t| t.parse::<i64>().ok())
            .is_some_and(|until| now < until)
    }

    /// Whether every given key has the given value (a caller's filter).
    pub fn matches(&self, wanted: &std::collections::BTreeMap<String, String>) -> bool {
        wanted.iter().all(|(k, v)| self.0.get(k) == Some(v))
    }

    /// The labels that are not adde's.
    pub fn user_labels(&self) -> std::collections::BTreeMap<String, String> {
        self.0
            .iter()
            .filter(|(k, _)| !Label::is_reserved(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    pub fn without(mut self, label: Label) -> Labels {
        self.0.remove(label.key());
        self
    }

    pub fn into_map(self) -> HashMap<String, String> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_labels_mark_the_resource_as_adde_s() {
        let labels = Labels::new(Kind::Env).with(Label::Volumes, "a,b");
        assert!(labels.is_managed());
        assert!(labels.is_mine());
        assert_eq!(labels.kind(), Some("env"));
        assert_eq!(labels.volumes(), ["a", "b"]);
        assert!(!Labels::read(None).is_managed());
    }

    #[test]
    fn a_volume_is_pending_until_its_label_says() {
        let labels = Labels::new(Kind::Volume).with(Label::PendingUntil, "1000");
        assert!(labels.is_pending(999));
        assert!(!labels.is_pending(1000));
        assert!(!Labels::new(Kind::Volume).is_pending(0));
        assert!(!Labels::new(Kind::Volume)
            .with(Label::PendingUntil, "soon")
            .is_pending(0));
    }

    #[test]
    fn callers_cannot_set_adde_s_labels() {
        let mut labels = Labels::new(Kind::Env);
        labels.extend_user([
            ("io.adde.volumes".to_string(), "victim".to_string()),
            ("team".to_string(), "x".to_string()),
        ]);
        assert!(labels.volumes().is_empty());
        assert_eq!(labels.user_labels().len(), 1);
    }
}
