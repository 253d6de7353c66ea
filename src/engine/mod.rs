//! The engine edge: the only code that knows bollard. Tools speak adde's own types
//! (`ContainerSpec`, `ContainerInfo`, `ImageInfo`, `Labels`); this module turns them into
//! Engine API requests, turns bollard's errors into adde's, stamps adde's labels on everything
//! it creates, validates every id that goes into a request path, and bounds every stream.
//!
//! - `containers`: create, inspect, start, exec, files, logs, removal.
//! - `images`: inspect, pull, list, remove, prune.
//! - `build` and `build_log`: classic-builder builds and their log.
//! - `progress`: the pull progress bar.
//! - `labels`: adde's typed labels.
//! - `helper_volume`: the shared read-only volume holding adde's helper binary.

mod attach;
mod build;
mod build_log;
mod connect;
mod containers;
mod context_store;
pub mod helper_volume;
mod images;
mod keeper;
pub mod labels;
mod progress;
mod states;
mod watch;

use std::future::Future;
use std::sync::OnceLock;

use bollard::Docker;

use crate::error::{Error, Result};
use crate::refs;

pub use attach::ContextEvent;
pub use build::{BuildOutcome, BuildRequest};
pub use containers::{
    format_size, is_gvisor, ByteStream, ContainerInfo, ContainerSpec, DiskLimits, HelperTarget,
    Limits, Listed, MountInfo, MountKind, MountSpec, Network, OutputChunk, Transport,
    VolumeBacking,
};
use context_store::Endpoint;
pub use images::{About, EngineFacts};
pub use keeper::{keeper_main, KEEPER_FLAG};
pub use labels::{Kind, Label, Labels};

/// What a failed call was about, so a 404 can say what was missing.
#[derive(Clone, Copy)]
enum Subject<'a> {
    Container(&'a str),
    Image(&'a str),
    Other,
}

/// One engine for the whole process, handed to every tool by the dispatcher. Nothing is
/// contacted until a tool first needs the engine, and a bogus DOCKER_HOST or docker context is
/// an error only then, so tools that work without the engine are not disturbed by one.
pub struct Engine {
    /// The engine's address and TLS, or why the docker context named cannot be used.
    endpoint: &'static std::result::Result<Endpoint, context_store::ContextError>,
    docker: OnceLock<Docker>,
    podman: tokio::sync::OnceCell<bool>,
    /// Attachments to agents kept between calls (a long-lived process's); `None`: one per call.
    links: Option<attach::Links>,
    /// Environments known to be adde's and running, kept between calls by a long-lived
    /// process; `None`: the engine is asked every time.
    watch: Option<std::sync::Arc<watch::Watch>>,
}

impl Engine {
    /// The engine DOCKER_HOST names (unix://, tcp:// with TLS when DOCKER_TLS_VERIFY is set,
    /// https://, ssh://), else the docker context chosen as the docker CLI chooses it, else the
    /// local socket.
    pub fn from_env() -> Engine {
        Engine {
            endpoint: context_store::from_env(),
            docker: OnceLock::new(),
            podman: tokio::sync::OnceCell::new(),
            links: None,
            watch: None,
        }
    }

    /// Keeps each environment's agent attachment, and what the engine said of it, for the
    /// next calls: what a long-lived process (`adde serve`, `adde mcp`) does, so that a call
    /// costs no attach, no hello and no inspect.
    pub fn keeping_agent_links(mut self) -> Engine {
        self.links = Some(attach::Links::default());
        self.watch = Some(Default::default());
        self
    }

    /// The engine's address ("" when its docker context cannot be used).
    pub fn addr(&self) -> &str {
        self.endpoint.as_ref().map_or("", |e| e.host.as_str())
    }

    /// The docker context the engine comes from (`default`: DOCKER_HOST or the local socket).
    pub fn context(&self) -> &str {
        match self.endpoint {
            Ok(endpoint) => &endpoint.context,
            Err(e) => &e.context,
        }
    }

    /// The engine's address when it is a local unix socket: `None` for a remote engine, or
    /// when the docker context named cannot be used.
    pub fn local_socket() -> Option<&'static str> {
        let endpoint = context_store::from_env().as_ref().ok()?;
        endpoint.host.strip_prefix("unix://")
    }

    fn endpoint(&self) -> Result<&'static Endpoint> {
        self.endpoint
            .as_ref()
            .map_err(|e| Error::DockerUnavailable {
                addr: format!("docker context {:?}", e.context),
                reason: e.reason.clone(),
            })
    }

    /// The client, made on first use. An unreachable engine shows up as docker_unavailable
    /// on the first request.
    fn docker(&self) -> Result<&Docker> {
        if let Some(docker) = self.docker.get() {
            return Ok(docker);
        }
        let docker = connect::client(self.endpoint()?, self.links.is_none())?;
        // No API version negotiation: bollard 0.21 sends no version prefix (the engine answers
        // in its own version, which adde's requests fit from 1.41 on), and GET /version costs
        // dockerd ~6 ms of CPU per call, asking containerd too. Upgrading bollard to a release
        // that sends a version needs negotiate_version() back.
        Ok(self.docker.get_or_init(|| docker))
    }

    /// Whether the engine is Podman's Docker-compatible service, asked once (GET /version)
    /// by the calls that create something, where Podman differs.
    async fn is_podman(&self) -> Result<bool> {
        let docker = self.docker()?;
        let podman = self.podman.get_or_try_init(|| async {
            let version = self.ask(Subject::Other, docker.version()).await?;
            let components = version.components.unwrap_or_default();
            Ok::<_, Error>(components.iter().any(|c| c.name.contains("Podman")))
        });
        podman.await.copied()
    }

    /// Sends one request and classifies its failure by what it was about.
    async fn ask<T>(
        &self,
        subject: Subject<'_>,
        request: impl Future<Output = std::result::Result<T, bollard::errors::Error>>,
    ) -> Result<T> {
        request.await.map_err(|e| self.classify(e, subject))
    }

    /// Like `ask`, with "not found" (404) as `None`.
    async fn ask_optional<T>(
        &self,
        subject: Subject<'_>,
        request: impl Future<Output = std::result::Result<T, bollard::errors::Error>>,
    ) -> Result<Option<T>> {
        match request.await {
            Ok(value) => Ok(Some(value)),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(self.classify(e, subject)),
        }
    }

    fn classify(&self, err: bollard::errors::Error, subject: Subject) -> Error {
        match self.endpoint() {
            Ok(endpoint) => classify(err, endpoint, subject),
            Err(unusable) => unusable,
        }
    }
}

/// A bollard error as adde's: 404 by what was asked for, other statuses as the engine's
/// refusal, and anything else as an engine that cannot be reached at `endpoint`.
fn classify(err: bollard::errors::Error, endpoint: &Endpoint, subject: Subject) -> Error {
    use bollard::errors::Error as E;
    let addr = endpoint.host.as_str();
    let unavailable = |reason: String| Error::DockerUnavailable {
        addr: addr.to_string(),
        reason: match endpoint.is_default() {
            true => reason,
            false => format!("{reason} (docker context {:?})", endpoint.context),
        },
    };
    match err {
        E::DockerResponseServerError {
            status_code: 404,
            message,
        } => match subject {
            Subject::Container(id) => Error::ContainerNotFound(id.to_string()),
            Subject::Image(image) => Error::ImageNotFound {
                image: image.to_string(),
                detail: message,
            },
            Subject::Other => Error::Engine {
                status: 404,
                message,
            },
        },
        // dockerd's answer to plain HTTP on its TLS port.
        E::DockerResponseServerError {
            status_code: 400,
            message,
        } if message.contains("HTTP request to an HTTPS server") => {
            unavailable(format!("{} ({})", message.trim(), tls_hint(endpoint)))
        }
        E::DockerResponseServerError {
            status_code,
            message,
        } => Error::Engine {
            status: status_code,
            message,
        },
        E::DockerStreamError { error } => Error::Engine {
            status: 500,
            message: error,
        },
        other => {
            let mut reason = transport_reason(&other);
            // A TLS port closes on a plain HTTP request: say what is missing.
            let plain_tcp = addr.starts_with("tcp://") || addr.starts_with("http://");
            if plain_tcp && endpoint.tls.is_none() && !reason.to_lowercase().contains("refused") {
                reason = format!("{reason}; if that port speaks TLS, {}", tls_hint(endpoint));
            }
            // rustls words the server's refusal of our certificate as the alert it received.
            const CLIENT_CERT_ALERTS: [&str; 4] = [
                "UnknownCA",
                "BadCertificate",
                "CertificateRequired",
                "CertificateUnknown",
            ];
            if reason.contains("received fatal alert")
                && CLIENT_CERT_ALERTS.iter().any(|a| reason.contains(a))
            {
                reason = format!(
                    "{reason}: the engine refused this client's certificate (cert.pem and key.pem in {} are missing, or signed by a CA it does not trust)",
                    match endpoint.is_default() {
                        true => "DOCKER_CERT_PATH".to_string(),
                        false => endpoint.tls.as_ref().map_or_else(String::new, |t| t.dir.display().to_string()),
                    }
                );
            }
            unavailable(reason)
        }
    }
}

fn tls_hint(endpoint: &Endpoint) -> String {
    match endpoint.is_default() {
        true => "set DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH to the folder with ca.pem, cert.pem and key.pem".into(),
        false => format!("give docker context {:?} its TLS material: `docker context update {} --docker host=…,ca=…,cert=…,key=…`", endpoint.context, endpoint.context),
    }
}

/// A container id or name, checked before it goes into a request path: bollard puts it
/// there unencoded, so "../images/x" or "x?all=1" would rewrite the request.
fn container_path_id(id: &str) -> Result<&str> {
    refs::container_id("container_id", id).map(|_| id)
}

/// An image reference or id, checked likewise.
fn image_path_ref(reference: &str) -> Result<&str> {
    refs::image_reference("image", reference).map(|_| reference)
}

/// The root cause of a transport failure, in words (e.g. "connection refused").
fn transport_reason(err: &bollard::errors::Error) -> String {
    use bollard::errors::Error as E;
    if let E::SocketNotFoundError(path) = err {
        return format!("socket {path} does not exist");
    }
    let mut reason = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            reason = match io.kind() {
                std::io::ErrorKind::PermissionDenied => {
                    format!("{io} (add this user to the docker group, or run as root)")
                }
                _ => io.to_string(),
            };
        }
        source = cause.source();
    }
    reason
}
