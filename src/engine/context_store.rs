//! Which engine to use, chosen as the docker CLI chooses it, so that a user's `docker context
//! use` and DOCKER_CONTEXT choose adde's engine too.
//!
//! - DOCKER_HOST (not empty) wins and means the default context, even over DOCKER_CONTEXT
//!   (the CLI's `resolveContextName`);
//! - else DOCKER_CONTEXT; else `currentContext` in `$DOCKER_CONFIG/config.json` (`~/.docker`);
//! - the context `default` is DOCKER_HOST, else the local socket, with TLS from
//!   DOCKER_TLS_VERIFY and DOCKER_CERT_PATH;
//! - any other context is `contexts/meta/<sha256 of its name>/meta.json` in that folder
//!   (`Endpoints.docker.Host`, `SkipTLSVerify`), with its TLS material in
//!   `contexts/tls/<sha256>/docker/{ca,cert,key}.pem`; TLS is on when there is some, or when
//!   SkipTLSVerify is set.
//!
//! A context that is named but missing or unreadable is an error naming it and its file: never
//! a silent fall back to the local engine.

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub const DEFAULT_CONTEXT: &str = "default";
const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// Where the engine is and how to speak to it.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    /// The context it came from (`default`: DOCKER_HOST or the local socket).
    pub context: String,
    pub host: String,
    /// TLS for a tcp:// or https:// host; `None`: plain HTTP.
    pub tls: Option<TlsFiles>,
}

impl Endpoint {
    pub fn is_default(&self) -> bool {
        self.context == DEFAULT_CONTEXT
    }
}

/// A folder with ca.pem (else the system's roots verify the server), cert.pem and key.pem
/// (the client's identity), each optional.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsFiles {
    pub dir: PathBuf,
    /// The context's SkipTLSVerify: the server's certificate is not checked.
    pub skip_verify: bool,
}

/// A context that was asked for and cannot be used.
#[derive(Debug, Clone, PartialEq)]
pub struct ContextError {
    pub context: String,
    pub reason: String,
}

/// The endpoint this process's environment names, read once.
pub fn from_env() -> &'static Result<Endpoint, ContextError> {
    static ENDPOINT: std::sync::OnceLock<Result<Endpoint, ContextError>> =
        std::sync::OnceLock::new();
    ENDPOINT.get_or_init(|| resolve(&|key| std::env::var(key).ok()))
}

/// The endpoint the variables `var` gives name, as the docker CLI resolves it.
fn resolve(var: &dyn Fn(&str) -> Option<String>) -> Result<Endpoint, ContextError> {
    let var = |key: &str| var(key).filter(|v| !v.is_empty());
    if let Some(host) = var("DOCKER_HOST") {
        return Ok(default_endpoint(host, &var));
    }
    let config_dir = var("DOCKER_CONFIG").map_or_else(
        || PathBuf::from(var("HOME").unwrap_or_default()).join(".docker"),
        PathBuf::from,
    );
    let (name, chosen_by) = match var("DOCKER_CONTEXT") {
        Some(name) => (name, "DOCKER_CONTEXT".to_string()),
        None => {
            let config = config_dir.join("config.json");
            match current_context(&config)? {
                Some(name) => (name, format!("currentContext in {}", config.display())),
                None => return Ok(default_endpoint(DEFAULT_HOST.into(), &var)),
            }
        }
    };
    if name == DEFAULT_CONTEXT {
        return Ok(default_endpoint(DEFAULT_HOST.into(), &var));
    }
    load(&config_dir, &name).map_err(|reason| ContextError {
        reason: format!("{reason} (the context is named by {chosen_by}; `docker context ls` lists the contexts there are)"),
        context: name,
    })
}

/// The default context: `host`, with TLS as DOCKER_TLS_VERIFY and DOCKER_CERT_PATH say.
fn default_endpoint(host: String, var: &dyn Fn(&str) -> Option<String>) -> Endpoint {
    let tls =
        (var("DOCKER_TLS_VERIFY").is_some() || host.starts_with("https://")).then(|| TlsFiles {
            dir: var("DOCKER_CERT_PATH").map_or_else(
                || PathBuf::from(var("HOME").unwrap_or_default()).join(".docker"),
                PathBuf::from,
            ),
            skip_verify: false,
        });
    Endpoint {
        context: DEFAULT_CONTEXT.into(),
        host,
        tls,
    }
}

/// `currentContext` in the CLI's config.json; none when the file does not exist.
fn current_context(config: &Path) -> Result<Option<String>, ContextError> {
    #[derive(Deserialize)]
    struct Config {
        #[serde(rename = "currentContext", default)]
        current_context: String,
    }
    let text = match std::fs::read(config) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(ContextError {
                context: "(from config.json)".into(),
                reason: format!("cannot read {}: {e}", config.display()),
            })
        }
    };
    // The CLI warns and goes on with the default; adde refuses rather than reach the local
    // engine when the user may have chosen another.
    let parsed: Config = serde_json::from_slice(&text).map_err(|e| ContextError {
        context: "(from config.json)".into(),
        reason: format!("{} is not valid JSON: {e}", config.display()),
    })?;
    Ok(Some(parsed.current_context).filter(|c| !c.is_empty()))
}

/// Context `name` from the store under `config_dir`.
fn load(config_dir: &Path, name: &str) -> Result<Endpoint, String> {
    #[derive(Deserialize)]
    struct Meta {
        #[serde(rename = "Endpoints", default)]
        endpoints: Endpoints,
    }
    #[derive(Deserialize, Default)]
    struct Endpoints {
        docker: Option<DockerEndpoint>,
    }
    #[derive(Deserialize)]
    struct DockerEndpoint {
        #[serde(rename = "Host", default)]
        host: String,
        #[serde(rename = "SkipTLSVerify", default)]
        skip_tls_verify: bool,
    }
    let id = hex(ring::digest::digest(&ring::digest::SHA256, name.as_bytes()).as_ref());
    let contexts = config_dir.join("contexts");
    let meta = contexts.join("meta").join(&id).join("meta.json");
    let text = std::fs::read(&meta).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            format!(
                "there is no such context: {} does not exist",
                meta.display()
            )
        }
        _ => format!("cannot read {}: {e}", meta.display()),
    })?;
    let parsed: Meta = serde_json::from_slice(&text)
        .map_err(|e| format!("{} is not a context's metadata: {e}", meta.display()))?;
    let docker = parsed
        .endpoints
        .docker
        .ok_or_else(|| format!("{} has no docker endpoint", meta.display()))?;
    // As the CLI's client: a context without a host is the local socket.
    let host = Some(docker.host)
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| DEFAULT_HOST.into());
    let dir = contexts.join("tls").join(&id).join("docker");
    let material = ["ca.pem", "cert.pem", "key.pem"]
        .iter()
        .any(|f| dir.join(f).exists());
    let tls =
        (material || docker.skip_tls_verify || host.starts_with("https://")).then_some(TlsFiles {
            dir,
            skip_verify: docker.skip_tls_verify,
        });
    Ok(Endpoint {
        context: name.to_string(),
        host,
        tls,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CLI config folder holding `contexts` (name, meta.json text, TLS files) and, when
    /// given, a config.json.
    fn store(config: Option<&str>, contexts: &[(&str, &str, &[&str])]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        if let Some(config) = config {
            std::fs::write(dir.path().join("config.json"), config).unwrap();
        }
        for (name, meta, tls) in contexts {
            let id = hex(ring::digest::digest(&ring::digest::SHA256, name.as_bytes()).as_ref());
            let meta_dir = dir.path().join("contexts/meta").join(&id);
            std::fs::create_dir_all(&meta_dir).unwrap();
            std::fs::write(meta_dir.join("meta.json"), meta).unwrap();
            let tls_dir = dir.path().join("contexts/tls").join(&id).join("docker");
            for file in *tls {
                std::fs::create_dir_all(&tls_dir).unwrap();
                std::fs::write(tls_dir.join(file), "pem").unwrap();
            }
        }
        dir
    }

    fn resolve_with(vars: &[(&str, &str)]) -> Result<Endpoint, ContextError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        resolve(&move |key| vars.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()))
    }

    const REMOTE: &str = r#"{"Name":"remote","Metadata":{},"Endpoints":{"docker":{"Host":"tcp://10.0.0.5:2376","SkipTLSVerify":false}}}"#;

    #[test]
    fn the_context_is_chosen_as_the_docker_cli_chooses_it() {
        let dir = store(
            Some(r#"{"auths": {}, "currentContext": "remote"}"#),
            &[("remote", REMOTE, &["ca.pem", "cert.pem", "key.pem"])],
        );
        let config = dir.path().to_str().unwrap();
        // config.json's currentContext, with its TLS material.
        let ep = resolve_with(&[("DOCKER_CONFIG", config)]).unwrap();
        assert_eq!(
            (ep.context.as_str(), ep.host.as_str()),
            ("remote", "tcp://10.0.0.5:2376")
        );
        let tls = ep.tls.unwrap();
        assert!(tls.dir.ends_with("docker") && !tls.skip_verify, "{tls:?}");
        // DOCKER_HOST wins over DOCKER_CONTEXT and config.json, and is the default context.
        let ep = resolve_with(&[
            ("DOCKER_CONFIG", config),
            ("DOCKER_CONTEXT", "remote"),
            ("DOCKER_HOST", "unix:///run/other.sock"),
        ])
        .unwrap();
        assert_eq!(
            (ep.context.as_str(), ep.host.as_str()),
            ("default", "unix:///run/other.sock")
        );
        // An empty DOCKER_HOST is not set; DOCKER_CONTEXT=default is the local socket.
        let ep = resolve_with(&[
            ("DOCKER_CONFIG", config),
            ("DOCKER_HOST", ""),
            ("DOCKER_CONTEXT", "default"),
        ])
        .unwrap();
        assert_eq!(
            (ep.context.as_str(), ep.host.as_str(), ep.tls),
            ("default", DEFAULT_HOST, None)
        );
        // The default context takes TLS from the environment.
        let ep = resolve_with(&[
            ("DOCKER_HOST", "tcp://h:2376"),
            ("DOCKER_TLS_VERIFY", "1"),
            ("DOCKER_CERT_PATH", "/certs"),
        ])
        .unwrap();
        assert_eq!(ep.tls.unwrap().dir, PathBuf::from("/certs"));
        // No config.json: the default.
        let empty = tempfile::tempdir().unwrap();
        let ep = resolve_with(&[("DOCKER_CONFIG", empty.path().to_str().unwrap())]).unwrap();
        assert_eq!(ep.host, DEFAULT_HOST);
    }

    #[test]
    fn tls_is_on_with_material_or_skip_verify_and_off_without() {
        let plain = r#"{"Name":"plain","Endpoints":{"docker":{"Host":"tcp://h:2375"}}}"#;
        let skip = r#"{"Name":"skip","Endpoints":{"docker":{"Host":"tcp://h:2376","SkipTLSVerify":true}}}"#;
        let dir = store(None, &[("plain", plain, &[]), ("skip", skip, &[])]);
        let config = dir.path().to_str().unwrap();
        let ep = resolve_with(&[("DOCKER_CONFIG", config), ("DOCKER_CONTEXT", "plain")]).unwrap();
        assert_eq!(ep.tls, None);
        let ep = resolve_with(&[("DOCKER_CONFIG", config), ("DOCKER_CONTEXT", "skip")]).unwrap();
        assert!(ep.tls.unwrap().skip_verify);
    }

    #[test]
    fn a_missing_or_malformed_context_names_the_context_and_the_file() {
        let broken = r#"{"Name":"broken","Endpoints":"#;
        let no_docker = r#"{"Name":"k8s","Endpoints":{"kubernetes":{}}}"#;
        let dir = store(
            Some(r#"{"currentContext": "gone"}"#),
            &[("broken", broken, &[]), ("k8s", no_docker, &[])],
        );
        let config = dir.path().to_str().unwrap();
        let err = resolve_with(&[("DOCKER_CONFIG", config)]).unwrap_err();
        assert_eq!(err.context, "gone");
        assert!(err.reason.contains("meta.json does not exist"), "{err:?}");
        assert!(err.reason.contains("currentContext in"), "{err:?}");
        for (name, says) in [
            ("broken", "is not a context's metadata"),
            ("k8s", "no docker endpoint"),
        ] {
            let err =
                resolve_with(&[("DOCKER_CONFIG", config), ("DOCKER_CONTEXT", name)]).unwrap_err();
            assert_eq!(err.context, name);
            assert!(
                err.reason.contains(says) && err.reason.contains("DOCKER_CONTEXT"),
                "{err:?}"
            );
        }
        std::fs::write(dir.path().join("config.json"), "{not json").unwrap();
        let err = resolve_with(&[("DOCKER_CONFIG", config)]).unwrap_err();
        assert!(
            err.reason.contains("config.json is not valid JSON"),
            "{err:?}"
        );
    }
}
