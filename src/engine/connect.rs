//! Reaching the engine an endpoint names (DOCKER_HOST or a docker context: context_store.rs),
//! as the docker CLI does: `unix://`, `tcp://` (TLS when DOCKER_TLS_VERIFY is set or the
//! context has TLS material, with ca.pem, cert.pem and key.pem), `https://`, and
//! `ssh://[user@]host[:port]` (the CLI's `ssh … docker system dial-stdio`).
//!
//! Over TCP and SSH adde keeps its connections: bollard 0.21's own clients open one per
//! request with Nagle's algorithm on, so every request over TLS paid a handshake resumption
//! that stalled ~40 ms on delayed ACKs (execute: 172 ms against 75 ms on the socket), and
//! bollard's ssh:// client started a new SSH master per request and passed the port to ssh as
//! part of the host name. Across CLI calls, a keeper makes the connections ahead (keeper.rs).

use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bollard::{BollardRequest, Docker, API_DEFAULT_VERSION};
use hyper::Uri;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::process::{Child, ChildStdin, ChildStdout};

use super::context_store::{Endpoint, TlsFiles};
use super::keeper;
use crate::error::{Error, Result};

/// bollard's default: how long a request may wait for the response headers.
const REQUEST_TIMEOUT_SECS: u64 = 120;
/// How long an unused connection is kept for the next request.
const IDLE_CONNECTION: Duration = Duration::from_secs(30);
/// How long kept connections outlive their last use unless ADDE_CONNECTION_PERSIST says.
const DEFAULT_PERSIST: Duration = Duration::from_secs(30);

/// The client for `endpoint`. `one_shot`: this process makes one call and exits (the CLI), so
/// a remote engine's connections come from a keeper that outlives it (keeper.rs).
pub fn client(endpoint: &Endpoint, one_shot: bool) -> Result<Docker> {
    let addr = endpoint.host.as_str();
    let unavailable = |reason: String| Error::DockerUnavailable {
        addr: addr.to_string(),
        reason,
    };
    let (scheme, rest) = addr.split_once("://").unwrap_or(("", addr));
    match (scheme, &endpoint.tls) {
        ("tcp" | "http", None) => Ok(pooled(format!("http://{rest}"), http_connector())),
        ("tcp" | "https", Some(tls)) => {
            let remote = Remote::tls(addr, tls).map_err(unavailable)?;
            let persist = connection_persist().map_err(unavailable)?;
            Ok(kept_or_own(remote, one_shot && persist.is_some()))
        }
        ("ssh", _) => {
            let persist = connection_persist().map_err(unavailable)?;
            let remote = Remote::ssh(addr, persist).map_err(unavailable)?;
            Ok(kept_or_own(remote, one_shot && persist.is_some()))
        }
        _ => Docker::connect_with_host(addr).map_err(|e| unavailable(super::transport_reason(&e))),
    }
}

/// A client over `remote`'s connections: lent by its keeper when `kept`, else its own.
fn kept_or_own<C: keeper::Dial>(remote: Remote<C>, kept: bool) -> Docker {
    let uri = remote.uri.to_string();
    if kept {
        pooled(uri, keeper::Connector::new(remote))
    } else {
        pooled(uri, remote.connector)
    }
}

/// A remote engine whose connections a keeper can make: how to connect, the URI the connector
/// takes, and the digest of everything that decides whom a connection reaches and as whom
/// (another digest, another keeper).
pub(super) struct Remote<C> {
    pub connector: C,
    pub uri: Uri,
    pub fingerprint: String,
}

impl Remote<HttpsConnector<HttpConnector>> {
    pub(super) fn tls(addr: &str, tls: &TlsFiles) -> std::result::Result<Self, String> {
        let (_, rest) = addr.split_once("://").unwrap_or(("", addr));
        let material = TlsMaterial::read(tls)?;
        Ok(Remote {
            connector: https_connector(material.config()?),
            uri: format!("https://{rest}")
                .parse()
                .map_err(|e| format!("{addr:?}: {e}"))?,
            fingerprint: material.fingerprint(addr),
        })
    }
}

impl Remote<SshConnector> {
    pub(super) fn ssh(addr: &str, persist: Option<Duration>) -> std::result::Result<Self, String> {
        let (_, rest) = addr.split_once("://").unwrap_or(("", addr));
        let target = SshTarget::parse(rest)?;
        // Absolute, so that a keeper started in another folder reads the same file; its bytes
        // name the keeper too, so that an edited configuration is another keeper.
        let config = match std::env::var_os("ADDE_SSH_CONFIG").filter(|c| !c.is_empty()) {
            Some(path) => Some(
                std::path::absolute(&path).map_err(|e| format!("ADDE_SSH_CONFIG={path:?}: {e}"))?,
            ),
            None => None,
        };
        let contents = config.as_ref().and_then(|path| std::fs::read(path).ok());
        let fingerprint = digest(&[
            Some(addr.as_bytes()),
            config
                .as_ref()
                .map(|path| path.as_os_str().as_encoded_bytes()),
            contents.as_deref(),
        ]);
        Ok(Remote {
            // The connector ignores the URI: every connection is one `ssh` to the target.
            connector: SshConnector(Arc::new(Ssh {
                target,
                persist,
                config,
            })),
            uri: Uri::from_static("http://docker.ssh"),
            fingerprint,
        })
    }
}

/// A SHA-256 digest (128 bits of it, in hex) of adde's version and `parts`, each
/// length-prefixed (absent ones too), so that no two lists of parts digest alike.
fn digest(parts: &[Option<&[u8]>]) -> String {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    context.update(env!("CARGO_PKG_VERSION").as_bytes());
    for part in parts {
        let (tag, part) = part.map_or((0u64, &[][..]), |p| (p.len() as u64 + 1, p));
        context.update(&tag.to_le_bytes());
        context.update(part);
    }
    let sum = context.finish();
    sum.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

const PERSIST_VALUES: &str = "a number of seconds up to 2147483647, 0 or off";

/// How long connections kept for the next adde calls (keeper.rs, and the SSH master
/// connection: ssh's ControlPersist) outlive their last use: ADDE_CONNECTION_PERSIST, in
/// seconds; `0` or `off`: none is kept.
pub(super) fn connection_persist() -> std::result::Result<Option<Duration>, String> {
    let Some(value) = std::env::var_os("ADDE_CONNECTION_PERSIST") else {
        return Ok(Some(DEFAULT_PERSIST));
    };
    match value.to_str() {
        Some("off" | "0") => Ok(None),
        // ssh's ControlPersist takes at most a C int of seconds.
        Some(secs) => secs
            .parse::<i32>()
            .ok()
            .filter(|secs| *secs > 0)
            .map(|secs| Some(Duration::from_secs(secs as u64)))
            .ok_or_else(|| format!("ADDE_CONNECTION_PERSIST={secs:?} is not {PERSIST_VALUES}")),
        None => Err(format!("ADDE_CONNECTION_PERSIST is not {PERSIST_VALUES}")),
    }
}

/// A client that keeps its connections for the next request.
fn pooled<C>(client_addr: String, connector: C) -> Docker
where
    C: tower_service::Service<Uri> + Clone + Send + Sync + 'static,
    C::Response: hyper::rt::Read + hyper::rt::Write + Connection + Unpin + Send + 'static,
    C::Future: Unpin + Send + 'static,
    C::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let client = Arc::new(
        Client::builder(TokioExecutor::new())
            .pool_idle_timeout(IDLE_CONNECTION)
            .build(connector),
    );
    let transport = move |request: BollardRequest| {
        let client = client.clone();
        async move {
            client
                .request(request)
                .await
                .map_err(bollard::errors::Error::from)
        }
    };
    // Only a custom transport with a URL that parses fails here, and this one cannot.
    Docker::connect_with_custom_transport(
        transport,
        Some(client_addr),
        REQUEST_TIMEOUT_SECS,
        API_DEFAULT_VERSION,
    )
    .expect("a custom transport always connects")
}

/// HTTPS over `http_connector()`'s TCP with `config`.
fn https_connector(config: rustls::ClientConfig) -> HttpsConnector<HttpConnector> {
    hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only()
        .enable_http1()
        .wrap_connector(http_connector())
}

fn http_connector() -> HttpConnector {
    let mut http = HttpConnector::new();
    // Requests are small writes answered at once: Nagle would hold them for delayed ACKs.
    http.set_nodelay(true);
    http.enforce_http(false);
    http.set_connect_timeout(Some(Duration::from_secs(10)));
    http
}

/// An endpoint's TLS files, read once, so that the configuration and the digest naming the
/// keeper of connections made with it (keeper.rs) come from the same bytes.
struct TlsMaterial {
    dir: PathBuf,
    trust: Trust,
    /// cert.pem and key.pem, when both are there.
    identity: Option<(Vec<u8>, Vec<u8>)>,
    skip_verify: bool,
}

/// What verifies the server: ca.pem, or, without one, the system's roots as loaded when the
/// call started (SSL_CERT_FILE and SSL_CERT_DIR choose them).
enum Trust {
    CaFile(Vec<u8>),
    System(Vec<CertificateDer<'static>>),
}

impl TlsMaterial {
    fn read(tls: &TlsFiles) -> std::result::Result<TlsMaterial, String> {
        let dir = tls.dir.clone();
        let read = |name: &str| -> std::result::Result<Option<Vec<u8>>, String> {
            let path = dir.join(name);
            match std::fs::read(&path) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(format!("cannot read {}: {e}", path.display())),
            }
        };
        let trust = match read("ca.pem")? {
            Some(pem) => Trust::CaFile(pem),
            None => Trust::System(rustls_native_certs::load_native_certs().certs),
        };
        let identity = match (read("cert.pem")?, read("key.pem")?) {
            (Some(cert), Some(key)) => Some((cert, key)),
            _ => None,
        };
        Ok(TlsMaterial {
            trust,
            identity,
            skip_verify: tls.skip_verify,
            dir,
        })
    }

    /// A digest of `host` and everything that decides who the connection is with and as
    /// whom: another engine, CA (the system's roots too), certificate or key is another
    /// keeper.
    fn fingerprint(&self, host: &str) -> String {
        let (cert, key) = match &self.identity {
            Some((cert, key)) => (Some(cert.as_slice()), Some(key.as_slice())),
            None => (None, None),
        };
        let trust = match &self.trust {
            Trust::CaFile(pem) => [b"ca.pem\n".as_slice(), pem].concat(),
            Trust::System(roots) => {
                let mut all = b"system\n".to_vec();
                for root in roots {
                    all.extend_from_slice(&(root.len() as u64).to_le_bytes());
                    all.extend_from_slice(root);
                }
                all
            }
        };
        digest(&[
            Some(host.as_bytes()),
            Some(if self.skip_verify { b"skip" } else { b"verify" }),
            Some(&trust),
            cert,
            key,
        ])
    }

    /// TLS as the docker CLI sets it up: the server is verified against ca.pem alone when the
    /// folder has one (the system's roots otherwise), or not at all when a context says
    /// SkipTLSVerify; cert.pem with key.pem, when present, identify the client.
    fn config(&self) -> std::result::Result<rustls::ClientConfig, String> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::PrivateKeyDer;
        let named = |name: &str, e: &dyn std::fmt::Display| {
            format!("cannot read {}: {e}", self.dir.join(name).display())
        };
        let mut roots = rustls::RootCertStore::empty();
        match &self.trust {
            Trust::CaFile(ca) => {
                let certs = CertificateDer::pem_slice_iter(ca)
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|e| named("ca.pem", &e))?;
                roots.add_parsable_certificates(certs);
                if roots.is_empty() {
                    return Err(format!(
                        "{} holds no certificate",
                        self.dir.join("ca.pem").display()
                    ));
                }
            }
            Trust::System(system) => {
                roots.add_parsable_certificates(system.iter().cloned());
            }
        }
        // P-256 first: the one key share every engine's TLS accepts (Go's and OpenSSL's
        // defaults; socat's only), so no handshake needs a HelloRetryRequest round trip.
        let mut provider = rustls::crypto::ring::default_provider();
        provider
            .kx_groups
            .sort_by_key(|group| group.name() != rustls::NamedGroup::secp256r1);
        let provider = Arc::new(provider);
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let builder = if self.skip_verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyServer(provider)))
        } else {
            builder.with_root_certificates(roots)
        };
        let Some((cert, key)) = &self.identity else {
            return Ok(no_resumption(builder.with_no_client_auth()));
        };
        let chain = CertificateDer::pem_slice_iter(cert)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| named("cert.pem", &e))?;
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| named("key.pem", &e))?;
        builder
            .with_client_auth_cert(chain, key)
            .map(no_resumption)
            .map_err(|e| format!("the client certificate in {}: {e}", self.dir.display()))
    }
}

/// Every connection makes a full handshake, as the docker CLI's (Go's client keeps no
/// sessions): TLS front ends that verify client certificates without a session id context
/// (socat, OpenSSL's default) answer a resumption with an `InternalError` alert, which failed
/// every request after an attach (run_container, `adde serve`).
fn no_resumption(mut config: rustls::ClientConfig) -> rustls::ClientConfig {
    config.resumption = rustls::client::Resumption::disabled();
    config
}

/// Accepts any server certificate (a context's SkipTLSVerify, as the CLI's
/// InsecureSkipVerify), while still checking that the server holds its key.
#[derive(Debug)]
struct AnyServer(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Where `ssh://[user@]host[:port]` leads.
#[derive(Debug, PartialEq)]
struct SshTarget {
    user: Option<String>,
    host: String,
    port: Option<u16>,
}

impl SshTarget {
    fn parse(rest: &str) -> std::result::Result<SshTarget, String> {
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') {
            return Err("ssh:// takes no path: the engine is the remote user's default".into());
        }
        let (user, host_port) = match rest.rsplit_once('@') {
            Some((user, host)) => (Some(user.to_string()), host),
            None => (None, rest),
        };
        let (host, port) = match host_port.strip_prefix('[') {
            Some(bracketed) => {
                let (host, after) = bracketed
                    .split_once(']')
                    .ok_or_else(|| format!("{rest:?}: no closing ]"))?;
                (host, after.strip_prefix(':'))
            }
            None => match host_port.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (host_port, None),
            },
        };
        let port = port
            .map(|p| {
                p.parse::<u16>()
                    .map_err(|_| format!("{p:?} is not a port number"))
            })
            .transpose()?;
        // Nothing that ssh would read as an option.
        let plain =
            |s: &str| !s.is_empty() && !s.starts_with('-') && !s.chars().any(|c| c.is_whitespace());
        if !plain(host) || user.as_deref().is_some_and(|u| !plain(u)) {
            return Err(format!("{rest:?} is not [user@]host[:port]"));
        }
        Ok(SshTarget {
            user,
            host: host.to_string(),
            port,
        })
    }

    /// `ssh` running `docker system dial-stdio` on the target. Never interactive (adde has no
    /// terminal to ask on); one master connection shared by every connection (ControlMaster)
    /// in a private folder, kept `persist` after its last use; ADDE_SSH_CONFIG, when set, is the
    /// ssh configuration to use.
    fn command(
        &self,
        persist: Option<Duration>,
        config: Option<&std::path::Path>,
    ) -> io::Result<tokio::process::Command> {
        let mut ssh = tokio::process::Command::new("ssh");
        if let Some(config) = config {
            ssh.arg("-F").arg(config);
        }
        ssh.args(["-T", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]);
        let control = private_dir("ssh")?;
        // ssh binds `<folder>/<40 hex>.<16 random>`, and a socket's path holds 107 bytes: a
        // longer TMPDIR gets no master connection rather than none at all.
        let fits = control.as_os_str().len() + 1 + 40 + 17 <= 107;
        if let Some(persist) = persist.filter(|_| fits) {
            let control = control.join("%C");
            // At least a second: ssh reads ControlPersist=0 as "for ever".
            ssh.args(["-o", "ControlMaster=auto", "-o"])
                .arg(format!("ControlPath={}", control.display()))
                .arg("-o")
                .arg(format!("ControlPersist={}s", persist.as_secs().max(1)));
        }
        if let Some(user) = &self.user {
            ssh.args(["-l", user]);
        }
        if let Some(port) = self.port {
            ssh.args(["-p", &port.to_string()]);
        }
        ssh.args(["--", &self.host, "docker", "system", "dial-stdio"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        Ok(ssh)
    }
}

/// A folder only this user can enter, for the sockets of kept connections (`kind`: ssh's
/// control sockets, TLS keepers).
pub(super) fn private_dir(kind: &str) -> io::Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let uid = current_uid();
    let dir = std::env::temp_dir().join(format!("adde-{kind}-{uid}"));
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let meta = std::fs::symlink_metadata(&dir)?;
    if !meta.is_dir() || meta.uid() != uid || meta.mode() & 0o077 != 0 {
        return Err(io::Error::other(format!(
            "{} is not a private folder of this user",
            dir.display()
        )));
    }
    Ok(dir)
}

pub(super) fn current_uid() -> u32 {
    // SAFETY: getuid cannot fail.
    unsafe { libc::getuid() }
}

/// How adde runs ssh: the target, how long its master connection is kept, and the
/// configuration file (ADDE_SSH_CONFIG, made absolute).
pub(super) struct Ssh {
    target: SshTarget,
    persist: Option<Duration>,
    config: Option<PathBuf>,
}

#[derive(Clone)]
pub(super) struct SshConnector(Arc<Ssh>);

impl tower_service::Service<Uri> for SshConnector {
    type Response = TokioIo<SshStream>;
    type Error = io::Error;
    type Future = Pin<Box<dyn std::future::Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        let ssh = self.0.clone();
        Box::pin(async move {
            let mut child = ssh
                .target
                .command(ssh.persist, ssh.config.as_deref())?
                .spawn()
                .map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("cannot run ssh: {e} (is OpenSSH installed?)"),
                    )
                })?;
            let (Some(stdin), Some(stdout), Some(stderr)) =
                (child.stdin.take(), child.stdout.take(), child.stderr.take())
            else {
                return Err(io::Error::other("ssh started without pipes"));
            };
            Ok(TokioIo::new(SshStream {
                child,
                stdin,
                stdout,
                stderr: Some(stderr),
            }))
        })
    }
}

/// One connection: HTTP over the stdin and stdout of `ssh … docker system dial-stdio`.
pub(super) struct SshStream {
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
    stderr: Option<tokio::process::ChildStderr>,
}

impl SshStream {
    /// Why ssh failed, from what it printed (e.g. "Permission denied (publickey)"), once its
    /// stream ended. ssh exits right after closing its output; a short wait lets it.
    fn failure(&mut self) -> Option<io::Error> {
        use std::io::Read;
        let mut status = None;
        for _ in 0..200 {
            status = self.child.try_wait().ok().flatten();
            if status.is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let status = status?;
        let stderr = self.stderr.take()?.into_owned_fd().ok()?;
        let mut text = String::new();
        let _ = std::fs::File::from(stderr)
            .take(4096)
            .read_to_string(&mut text);
        let text = text.trim();
        (!status.success() && !text.is_empty())
            .then(|| io::Error::new(io::ErrorKind::ConnectionRefused, format!("ssh: {text}")))
    }
}

impl AsyncRead for SshStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stdout).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() == before {
            // End of stream: if ssh failed, say why instead of a bare early EOF.
            if let Some(err) = self.failure() {
                return Poll::Ready(Err(err));
            }
        }
        polled
    }
}

impl AsyncWrite for SshStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.stdin).poll_write(cx, buf) {
            // ssh is gone: say why rather than "broken pipe".
            Poll::Ready(Err(e)) => Poll::Ready(Err(self.failure().unwrap_or(e))),
            other => other,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stdin).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stdin).poll_shutdown(cx)
    }
}

impl Connection for SshStream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_targets_keep_user_host_and_port_apart() {
        let t = SshTarget::parse("root@127.0.0.1:2222").unwrap();
        assert_eq!(
            t,
            SshTarget {
                user: Some("root".into()),
                host: "127.0.0.1".into(),
                port: Some(2222)
            }
        );
        let t = SshTarget::parse("build-box").unwrap();
        assert_eq!((t.user, t.host.as_str(), t.port), (None, "build-box", None));
        let t = SshTarget::parse("me@[::1]:22").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", Some(22)));
        assert!(SshTarget::parse("-oProxyCommand=x").is_err());
        assert!(SshTarget::parse("me@host:notaport").is_err());
        assert!(SshTarget::parse("host/var/run/docker.sock").is_err());
    }

    #[test]
    fn another_engine_certificate_or_key_is_another_keeper() {
        let material = |ca: &[u8], key: &[u8]| TlsMaterial {
            dir: PathBuf::from("/certs"),
            trust: Trust::CaFile(ca.to_vec()),
            identity: Some((b"cert".to_vec(), key.to_vec())),
            skip_verify: false,
        };
        let base = material(b"ca", b"key").fingerprint("tcp://a:2376");
        assert_eq!(base, material(b"ca", b"key").fingerprint("tcp://a:2376"));
        assert_eq!(base.len(), 32);
        assert_ne!(base, material(b"ca", b"key").fingerprint("tcp://b:2376"));
        assert_ne!(base, material(b"ca", b"other").fingerprint("tcp://a:2376"));
        assert_ne!(base, material(b"other", b"key").fingerprint("tcp://a:2376"));
        // The same bytes in other files are other files.
        assert_ne!(
            material(b"cakey", b"").fingerprint("tcp://a:2376"),
            material(b"ca", b"key").fingerprint("tcp://a:2376")
        );
        let mut skipping = material(b"ca", b"key");
        skipping.skip_verify = true;
        assert_ne!(base, skipping.fingerprint("tcp://a:2376"));
        let mut no_identity = material(b"ca", b"key");
        no_identity.identity = None;
        assert_ne!(base, no_identity.fingerprint("tcp://a:2376"));
        // Without ca.pem, the system's roots: others (SSL_CERT_FILE) are another keeper.
        let system = |roots: &[&[u8]]| {
            let mut m = material(b"", b"key");
            m.trust = Trust::System(
                roots
                    .iter()
                    .map(|r| CertificateDer::from(r.to_vec()))
                    .collect(),
            );
            m.fingerprint("tcp://a:2376")
        };
        assert_eq!(system(&[b"r1", b"r2"]), system(&[b"r1", b"r2"]));
        assert_ne!(system(&[b"r1", b"r2"]), system(&[b"r1"]));
        assert_ne!(system(&[b"r1r2"]), system(&[b"r1", b"r2"]));
    }
}
