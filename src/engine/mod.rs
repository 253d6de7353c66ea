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
pub mod helper_volume;
mod images;
pub mod labels;
mod progress;
mod watch;

use std::future::Future;
use std::sync::OnceLock;

use bollard::Docker;

use crate::error::{Error, Result};
use crate::refs;

pub use attach::ContextEvent;
pub use build::{BuildOutcome, BuildRequest};
pub use containers::{
    is_gvisor, ByteStream, ContainerInfo, ContainerSpec, DiskLimits, HelperTarget, Limits, Listed,
    MountInfo, MountKind, MountSpec, Network, OutputChunk, Transport, VolumeBacking,
};
pub use images::{About, EngineFacts};
pub use labels::{Kind, Label, Labels};

const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// What a failed call was about, so a 404 can say what was missing.
#[derive(Clone, Copy)]
enum Subject<'a> {
    Container(&'a str),
    Image(&'a str),
    Other,
}

/// One engine for the whole process, handed to every tool by the dispatcher. Nothing is
/// contacted (or even parsed) until a tool first needs the engine, so tools that work without
/// it are not disturbed by a bogus DOCKER_HOST.
pub struct Engine {
    addr: String,
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
    /// https://, ssh://), else the local socket.
    pub fn from_env() -> Engine {
        let addr = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| DEFAULT_HOST.to_string());
        Engine {
            addr,
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

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The client, made on first use. An unreachable engine shows up as docker_unavailable
    /// on the first request.
    fn docker(&self) -> Result<&Docker> {
        if let Some(docker) = self.docker.get() {
            return Ok(docker);
        }
        let docker = connect::client(&self.addr)?;
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
        classify(err, &self.addr, subject)
    }
}

/// A bollard error as adde's: 404 by what was asked for, other statuses as the engine's
/// refusal, and anything else as an engine that cannot be reached at `addr`.
fn classify(err: bollard::errors::Error, addr: &str, subject: Subject) -> Error {
    use bollard::errors::Error as E;
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
        } if message.contains("HTTP request to an HTTPS server") => Error::DockerUnavailable {
            addr: addr.to_string(),
            reason: format!("{} ({})", message.trim(), tls_hint()),
        },
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
            let tls_off = std::env::var("DOCKER_TLS_VERIFY").map_or(true, |v| v.is_empty());
            if plain_tcp && tls_off && !reason.to_lowercase().contains("refused") {
                reason = format!("{reason}; if that port speaks TLS, {}", tls_hint());
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
                    "{reason}: the engine refused this client's certificate (cert.pem and key.pem in DOCKER_CERT_PATH are missing, or signed by a CA it does not trust)"
                );
            }
            Error::DockerUnavailable {
                addr: addr.to_string(),
                reason,
            }
        }
    }
}

fn tls_hint() -> &'static str {
    "set DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH to the folder with ca.pem, cert.pem and key.pem"
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
