//! The only module that talks to bollard. It connects to the engine, turns bollard's errors
//! into adde's, stamps adde's labels on everything it creates, and bounds every stream.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::pin::Pin;
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::exec::StartExecResults;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerSummary, ExecConfig, ImageInspect,
    VolumeCreateRequest,
};
use bollard::query_parameters::{
    BuildImageOptionsBuilder, ContainerArchiveInfoOptionsBuilder, CreateContainerOptionsBuilder,
    CreateImageOptionsBuilder, DownloadFromContainerOptionsBuilder, ListContainersOptionsBuilder,
    ListImagesOptionsBuilder, ListVolumesOptionsBuilder, LogsOptionsBuilder,
    PruneBuildOptionsBuilder, PruneImagesOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveImageOptionsBuilder, RemoveVolumeOptions, UploadToContainerOptionsBuilder,
    WaitContainerOptions,
};
use bollard::Docker;
use futures_util::{Stream, StreamExt};
use tokio::io::AsyncWriteExt;

use crate::error::{Error, Result};

/// Labels on everything adde creates; adde lists, cleans and touches nothing else.
pub const LABEL_MANAGED: &str = "io.adde.managed";
/// What the resource is: `env` (a runtime environment) or `installer` (a dependency install).
pub const LABEL_KIND: &str = "io.adde.kind";
pub const LABEL_VERSION: &str = "io.adde.version";
/// Named volumes that belong to an environment, comma-separated; removed with it.
pub const LABEL_VOLUMES: &str = "io.adde.volumes";
pub const LABEL_USE_IMAGE_CMD: &str = "io.adde.use_image_cmd";
/// When `reap` may remove an environment (unix seconds).
pub const LABEL_EXPIRES_AT: &str = "io.adde.expires_at";

const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a short helper role (reading, writing or listing files, killing) may take.
const HELPER_ROLE_LIMIT: Duration = Duration::from_secs(60);

/// What a failed call was about, so a 404 can say what was missing.
#[derive(Clone, Copy)]
pub enum Subject<'a> {
    Container(&'a str),
    Image(&'a str),
    Other,
}

pub type OutputStream =
    Pin<Box<dyn Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>;

#[derive(Clone)]
pub struct Engine {
    docker: Docker,
    addr: String,
}

/// The labels every resource adde creates carries, plus `extra`.
pub fn labels(kind: &str, extra: &[(&str, String)]) -> HashMap<String, String> {
    let mut labels = HashMap::from([
        (LABEL_MANAGED.to_string(), "true".to_string()),
        (LABEL_KIND.to_string(), kind.to_string()),
        (
            LABEL_VERSION.to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        ),
    ]);
    labels.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
    labels
}

pub fn is_managed(labels: Option<&HashMap<String, String>>) -> bool {
    labels.is_some_and(|l| l.get(LABEL_MANAGED).is_some_and(|v| v == "true"))
}

impl Engine {
    /// Connects to DOCKER_HOST (unix://, tcp://, with TLS when DOCKER_TLS_VERIFY is set),
    /// else the local socket, and negotiates the API version. An unreachable engine shows up
    /// as docker_unavailable on the first request.
    ///
    /// One client serves the whole process (tools that call others, like run_container,
    /// reach the engine several times): the client is built and the version negotiated once.
    pub fn connect() -> Result<Engine> {
        static CONNECTED: std::sync::OnceLock<Engine> = std::sync::OnceLock::new();
        if let Some(engine) = CONNECTED.get() {
            return Ok(engine.clone());
        }
        let addr = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| DEFAULT_HOST.to_string());
        let docker = Docker::connect_with_host(&addr).map_err(|e| Error::DockerUnavailable {
            addr: addr.clone(),
            reason: transport_reason(&e),
        })?;
        // GET /version costs dockerd ~6 ms (it asks containerd too). bollard 0.21 shares the
        // negotiated version between clones (and sends no version prefix yet), so it runs
        // beside the first real request instead of before it.
        let negotiating = docker.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(CONNECT_TIMEOUT, negotiating.negotiate_version()).await;
        });
        Ok(CONNECTED.get_or_init(|| Engine { docker, addr }).clone())
    }

    fn classify(&self, err: bollard::errors::Error, subject: Subject) -> Error {
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
            other => Error::DockerUnavailable {
                addr: self.addr.clone(),
                reason: transport_reason(&other),
            },
        }
    }

    /// A call's result with "not found" (404) as `None`, other errors classified.
    fn absent_as_none<T>(
        &self,
        result: std::result::Result<T, bollard::errors::Error>,
        subject: Subject,
    ) -> Result<Option<T>> {
        match result {
            Ok(value) => Ok(Some(value)),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(self.classify(e, subject)),
        }
    }

    pub async fn inspect_image(&self, reference: &str) -> Result<Option<ImageInspect>> {
        let result = self.docker.inspect_image(reference).await;
        self.absent_as_none(result, Subject::Image(reference))
    }

    /// Pulls `reference` (which must name a tag or digest, never "all tags"). Progress goes
    /// to stderr as a bar when stderr is a terminal; errors inside the stream are errors.
    pub async fn pull(&self, reference: &str, platform: Option<&str>) -> Result<()> {
        let mut options = CreateImageOptionsBuilder::default().from_image(reference);
        if let Some(platform) = platform {
            options = options.platform(platform);
        }
        let mut stream = self.docker.create_image(Some(options.build()), None, None);
        let mut progress = PullProgress::new(reference);
        let failed = |message: String| Error::PullFailed {
            image: reference.to_string(),
            message,
        };
        while let Some(event) = stream.next().await {
            match event {
                Ok(info) => {
                    if let Some(detail) = info.error_detail.and_then(|d| d.message) {
                        return Err(failed(detail));
                    }
                    progress.update(info.id.as_deref(), info.progress_detail.as_ref());
                }
                Err(bollard::errors::Error::DockerStreamError { error }) => {
                    return Err(failed(error));
                }
                Err(e) => {
                    return Err(match self.classify(e, Subject::Image(reference)) {
                        Error::Engine { message, .. } => failed(message),
                        other => other,
                    })
                }
            }
        }
        progress.finish();
        Ok(())
    }

    pub async fn create_volume(&self, name: &str, labels: HashMap<String, String>) -> Result<()> {
        let request = VolumeCreateRequest {
            name: Some(name.to_string()),
            labels: Some(labels),
            ..Default::default()
        };
        self.docker
            .create_volume(request)
            .await
            .map(|_| ())
            .map_err(|e| self.classify(e, Subject::Other))
    }

    /// Removes a volume; one that is already gone is fine.
    pub async fn remove_volume(&self, name: &str) -> Result<()> {
        let result = self
            .docker
            .remove_volume(name, None::<RemoveVolumeOptions>)
            .await;
        self.absent_as_none(result, Subject::Other).map(drop)
    }

    /// Names of adde's volumes that no container uses.
    pub async fn unused_managed_volumes(&self) -> Result<Vec<String>> {
        let filters = HashMap::from([
            ("label", vec![format!("{LABEL_MANAGED}=true")]),
            ("dangling", vec!["true".to_string()]),
        ]);
        let options = ListVolumesOptionsBuilder::default()
            .filters(&filters)
            .build();
        let list = self
            .docker
            .list_volumes(Some(options))
            .await
            .map_err(|e| self.classify(e, Subject::Other))?;
        Ok(list
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.name)
            .collect())
    }

    /// Creates a container; returns its id and the engine's warnings (e.g. a limit the
    /// kernel cannot enforce).
    pub async fn create_container(
        &self,
        name: &str,
        body: ContainerCreateBody,
    ) -> Result<(String, Vec<String>)> {
        let options = CreateContainerOptionsBuilder::default().name(name).build();
        let image = body.image.clone().unwrap_or_default();
        self.docker
            .create_container(Some(options), body)
            .await
            .map(|created| (created.id, created.warnings))
            .map_err(|e| self.classify(e, Subject::Image(&image)))
    }

    /// Unpacks a tar archive at `path` in the container (works before it is started).
    pub async fn upload(&self, id: &str, path: &str, tar: Vec<u8>) -> Result<()> {
        let options = UploadToContainerOptionsBuilder::default()
            .path(path)
            .build();
        self.docker
            .upload_to_container(id, Some(options), bollard::body_full(tar.into()))
            .await
            .map_err(|e| self.classify(e, Subject::Container(id)))
    }

    /// Creates a container whose name is a lock: `None` when a container of that name exists
    /// and is younger than `stale` (someone holds the lock); an older one is removed first.
    pub async fn create_locked(
        &self,
        name: &str,
        body: ContainerCreateBody,
        stale: Duration,
    ) -> Result<Option<String>> {
        let options = CreateContainerOptionsBuilder::default().name(name).build();
        match self.docker.create_container(Some(options), body).await {
            Ok(created) => Ok(Some(created.id)),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409, ..
            }) => {
                let holder = self.inspect(name).await;
                let created = holder
                    .ok()
                    .and_then(|c| c.created)
                    .map(|t| chrono::Utc::now().signed_duration_since(t));
                if created.is_some_and(|age| age.to_std().unwrap_or_default() > stale) {
                    self.remove_container(name).await?;
                }
                Ok(None)
            }
            Err(e) => Err(self.classify(e, Subject::Other)),
        }
    }

    /// The size of a file in a container (started or not), or `None` when it is missing.
    pub async fn path_size(&self, id: &str, path: &str) -> Result<Option<u64>> {
        let options = ContainerArchiveInfoOptionsBuilder::default()
            .path(path)
            .build();
        let result = self
            .docker
            .get_container_archive_info(id, Some(options))
            .await;
        let stat = self.absent_as_none(result, Subject::Container(id))?;
        Ok(stat.map(|stat| stat.size.max(0) as u64))
    }

    /// A path in a container as a tar stream (entries rooted at its base name); a missing
    /// path is `Ok(None)`.
    pub async fn download(
        &self,
        id: &str,
        path: &str,
    ) -> Result<Option<Pin<Box<dyn Stream<Item = Result<bytes::Bytes>> + Send>>>> {
        let options = DownloadFromContainerOptionsBuilder::default()
            .path(path)
            .build();
        let mut stream = Box::pin(
            self.docker
                .download_from_container(id, Some(options))
                .peekable(),
        );
        // The first item tells a missing path (404) from a stream that has begun.
        if let Some(Err(_)) = stream.as_mut().peek().await {
            match stream.next().await {
                Some(Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404,
                    ..
                })) => return Ok(None),
                Some(Err(e)) => return Err(self.classify(e, Subject::Container(id))),
                _ => {}
            }
        }
        let engine = self.clone();
        let id = id.to_string();
        Ok(Some(Box::pin(stream.map(move |item| {
            item.map_err(|e| engine.classify(e, Subject::Container(&id)))
        }))))
    }

    pub async fn start(&self, id: &str) -> Result<()> {
        self.docker
            .start_container(id, None)
            .await
            .map_err(|e| self.classify(e, Subject::Container(id)))
    }

    pub async fn inspect(&self, id: &str) -> Result<ContainerInspectResponse> {
        self.docker
            .inspect_container(id, None)
            .await
            .map_err(|e| self.classify(e, Subject::Container(id)))
    }

    /// A container adde made; any other is `not_managed`, and adde leaves it alone.
    pub async fn inspect_managed(&self, id: &str) -> Result<ContainerInspectResponse> {
        let container = self.inspect(id).await?;
        let labels = container.config.as_ref().and_then(|c| c.labels.as_ref());
        if !is_managed(labels) {
            return Err(Error::NotManaged(id.to_string()));
        }
        Ok(container)
    }

    /// A container, or `None` when there is none of that name or id.
    pub async fn inspect_optional(&self, id: &str) -> Result<Option<ContainerInspectResponse>> {
        match self.inspect(id).await {
            Ok(c) => Ok(Some(c)),
            Err(Error::ContainerNotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// What the engine says about itself.
    pub async fn about(&self) -> Result<About> {
        let version = self
            .docker
            .version()
            .await
            .map_err(|e| self.classify(e, Subject::Other))?;
        let info = self
            .docker
            .info()
            .await
            .map_err(|e| self.classify(e, Subject::Other))?;
        let mut runtimes: Vec<String> = info.runtimes.unwrap_or_default().into_keys().collect();
        runtimes.sort();
        Ok(About {
            version: version.version.unwrap_or_default(),
            api_version: version.api_version.unwrap_or_default(),
            min_api_version: version.min_api_version.unwrap_or_default(),
            os: version.os.unwrap_or_default(),
            arch: version.arch.unwrap_or_default(),
            kernel: version.kernel_version.unwrap_or_default(),
            runtimes,
            default_runtime: info.default_runtime.unwrap_or_default(),
        })
    }

    /// The OCI runtimes the engine has registered.
    pub async fn runtimes(&self) -> Result<Vec<String>> {
        let info = self
            .docker
            .info()
            .await
            .map_err(|e| self.classify(e, Subject::Other))?;
        let mut names: Vec<String> = info.runtimes.unwrap_or_default().into_keys().collect();
        names.sort();
        Ok(names)
    }

    /// Force-removes a container with its anonymous volumes; one already gone is fine.
    pub async fn remove_container(&self, id: &str) -> Result<()> {
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        let result = self.docker.remove_container(id, Some(options)).await;
        self.absent_as_none(result, Subject::Container(id))
            .map(drop)
    }

    /// adde's containers (running or not), optionally of one kind.
    pub async fn list_managed(&self, kind: Option<&str>) -> Result<Vec<ContainerSummary>> {
        let mut label = vec![format!("{LABEL_MANAGED}=true")];
        if let Some(kind) = kind {
            label.push(format!("{LABEL_KIND}={kind}"));
        }
        let filters = HashMap::from([("label", label)]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        self.docker
            .list_containers(Some(options))
            .await
            .map_err(|e| self.classify(e, Subject::Other))
    }

    /// Waits for a container to stop and returns its exit code; `None` at the time limit.
    pub async fn wait(&self, id: &str, limit: Duration) -> Result<Option<i64>> {
        let mut stream = self.docker.wait_container(id, None::<WaitContainerOptions>);
        match tokio::time::timeout(limit, stream.next()).await {
            Err(_) => Ok(None),
            Ok(None) => Ok(Some(-1)),
            Ok(Some(Ok(response))) => Ok(Some(response.status_code)),
            Ok(Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. }))) => {
                Ok(Some(code))
            }
            Ok(Some(Err(e))) => Err(self.classify(e, Subject::Container(id))),
        }
    }

    /// The container's own stdout and stderr (`tail` lines of each, or all).
    pub async fn logs(&self, id: &str, tail: Option<usize>) -> Result<(Vec<u8>, Vec<u8>)> {
        let tail = tail.map_or_else(|| "all".to_string(), |n| n.to_string());
        let options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .tail(&tail)
            .build();
        let mut stream = self.docker.logs(id, Some(options));
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        while let Some(chunk) = stream.next().await {
            match chunk.map_err(|e| self.classify(e, Subject::Container(id)))? {
                LogOutput::StdErr { message } => stderr.extend_from_slice(&message),
                LogOutput::StdOut { message } | LogOutput::Console { message } => {
                    stdout.extend_from_slice(&message)
                }
                LogOutput::StdIn { .. } => {}
            }
        }
        Ok((stdout, stderr))
    }

    /// Starts `argv` in the container with `stdin` as its whole standard input and returns
    /// its demultiplexed output. Nothing here bounds the stream: the caller does.
    ///
    /// stdin is written by a task of its own while the caller reads the output: a program
    /// that does not read its input must not stop its output, and its deadline, from
    /// reaching adde. One that ends without reading it all is no error (EPIPE is ignored).
    pub async fn exec(
        &self,
        id: &str,
        argv: Vec<String>,
        env: Vec<String>,
        workdir: &str,
        stdin: &[u8],
    ) -> Result<OutputStream> {
        let config = ExecConfig {
            cmd: Some(argv),
            env: Some(env),
            working_dir: Some(workdir.to_string()),
            attach_stdin: Some(true),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(false),
            ..Default::default()
        };
        let exec = self
            .docker
            .create_exec(id, config)
            .await
            .map_err(|e| self.classify(e, Subject::Container(id)))?;
        let started = self
            .docker
            .start_exec(&exec.id, None)
            .await
            .map_err(|e| self.classify(e, Subject::Container(id)))?;
        let StartExecResults::Attached { output, mut input } = started else {
            return Err(Error::Internal("exec started detached".into()));
        };
        let stdin = stdin.to_vec();
        tokio::spawn(async move {
            if input.write_all(&stdin).await.is_ok() {
                // The half-close gives the helper EOF; without it the exec never ends.
                let _ = input.shutdown().await;
            }
        });
        Ok(output)
    }

    /// Runs `argv` in the container (as its user) with `stdin`, and returns its stdout and
    /// stderr (for the helper's short roles), within `HELPER_ROLE_LIMIT`.
    pub async fn exec_collect(
        &self,
        id: &str,
        argv: Vec<String>,
        stdin: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>)> {
        let what = argv.get(2).cloned().unwrap_or_default();
        let collect = async {
            let mut output = self.exec(id, argv, Vec::new(), "/", stdin).await?;
            let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
            while let Some(chunk) = output.next().await {
                match chunk {
                    Ok(LogOutput::StdOut { message }) => stdout.extend_from_slice(&message),
                    Ok(LogOutput::StdErr { message }) => stderr.extend_from_slice(&message),
                    _ => {}
                }
            }
            Ok((stdout, stderr))
        };
        tokio::time::timeout(HELPER_ROLE_LIMIT, collect)
            .await
            .map_err(|_| {
                Error::Helper(format!(
                    "its {what:?} role did not finish within {} s",
                    HELPER_ROLE_LIMIT.as_secs()
                ))
            })?
    }
}

impl Engine {
    /// Runs a classic-builder build of a streamed context. A failing step is not an `Err`:
    /// it comes back in the outcome with the log, so the caller can report where it failed.
    pub async fn build(
        &self,
        request: &BuildRequest,
        context: crate::context::TarStream,
    ) -> Result<BuildOutcome> {
        let mut options = BuildImageOptionsBuilder::default()
            .dockerfile(&request.dockerfile)
            .t(&request.tag)
            .rm(true)
            .forcerm(true)
            .nocache(request.no_cache)
            .buildargs(&request.build_args)
            .labels(&request.labels);
        if let Some(target) = &request.target {
            options = options.target(target);
        }
        if let Some(network) = &request.network_mode {
            options = options.networkmode(network);
        }
        let mut stream = self.docker.build_image(
            options.build(),
            None,
            Some(bollard::body_try_stream(context)),
        );
        let mut outcome = BuildOutcome::default();
        let mut log = BuildLog::new(std::io::stderr().is_terminal());
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(text) = info.stream.as_deref() {
                        log.push(text, &mut outcome);
                    }
                    if let Some(id) = info.aux.and_then(|aux| aux.id) {
                        outcome.image_id = Some(id);
                    }
                    if let Some(message) = info.error_detail.and_then(|d| d.message) {
                        outcome.error = Some(message);
                        break;
                    }
                }
                Err(bollard::errors::Error::DockerStreamError { error }) => {
                    outcome.error = Some(error);
                    break;
                }
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 400,
                    message,
                }) => {
                    outcome.error = Some(message);
                    break;
                }
                Err(e) => return Err(self.classify(e, Subject::Other)),
            }
        }
        log.finish(&mut outcome);
        Ok(outcome)
    }

    /// adde's images (by label), all of them or those whose tag starts with `prefix`.
    pub async fn list_managed_images(&self) -> Result<Vec<bollard::models::ImageSummary>> {
        let filters = HashMap::from([("label", vec![format!("{LABEL_MANAGED}=true")])]);
        let options = ListImagesOptionsBuilder::default()
            .filters(&filters)
            .build();
        self.docker
            .list_images(Some(options))
            .await
            .map_err(|e| self.classify(e, Subject::Other))
    }

    /// Every image, intermediates included: id to (size, parent id).
    pub async fn image_sizes(&self) -> Result<HashMap<String, (i64, String)>> {
        let options = ListImagesOptionsBuilder::default().all(true).build();
        let images = self
            .docker
            .list_images(Some(options))
            .await
            .map_err(|e| self.classify(e, Subject::Other))?;
        Ok(images
            .into_iter()
            .map(|i| (i.id, (i.size, i.parent_id)))
            .collect())
    }

    /// Removes an image (and its untagged parents); returns what was deleted or untagged.
    pub async fn remove_image(&self, image: &str, force: bool) -> Result<Vec<String>> {
        let options = RemoveImageOptionsBuilder::default().force(force).build();
        let items = self
            .docker
            .remove_image(image, Some(options), None)
            .await
            .map_err(|e| self.classify(e, Subject::Image(image)))?;
        Ok(items
            .into_iter()
            .filter_map(|i| i.deleted.or(i.untagged))
            .collect())
    }

    /// Removes an intermediate image if it is untagged and nothing depends on it; returns the
    /// ids deleted (it and its untagged parents), or none when it was kept.
    pub async fn remove_intermediate(&self, id: &str) -> Result<Vec<String>> {
        let Some(image) = self.inspect_image(id).await? else {
            return Ok(Vec::new());
        };
        let tagged = image
            .repo_tags
            .unwrap_or_default()
            .iter()
            .any(|t| t != "<none>:<none>");
        if tagged {
            return Ok(Vec::new());
        }
        let options = RemoveImageOptionsBuilder::default().force(false).build();
        match self.docker.remove_image(id, Some(options), None).await {
            Ok(items) => Ok(items.into_iter().filter_map(|i| i.deleted).collect()),
            // 409: a child image or a container still uses it; it stays.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404 | 409,
                ..
            }) => Ok(Vec::new()),
            Err(e) => Err(self.classify(e, Subject::Image(id))),
        }
    }

    /// Prunes adde's dangling images and, where the engine has one, the BuildKit cache
    /// older than `until` (a Go duration). Returns the bytes the engine reports reclaimed.
    pub async fn prune_caches(&self, until: &str) -> Result<u64> {
        let mut image_filters = HashMap::from([
            ("dangling", vec!["true".to_string()]),
            ("label", vec![format!("{LABEL_MANAGED}=true")]),
        ]);
        if until != "0s" {
            image_filters.insert("until", vec![until.to_string()]);
        }
        let options = PruneImagesOptionsBuilder::default()
            .filters(&image_filters)
            .build();
        let images = self
            .docker
            .prune_images(Some(options))
            .await
            .map_err(|e| self.classify(e, Subject::Other))?;
        let mut reclaimed = images.space_reclaimed.unwrap_or(0).max(0) as u64;
        let build_filters = HashMap::from([("until", vec![until.to_string()])]);
        let options = PruneBuildOptionsBuilder::default()
            .filters(&build_filters)
            .build();
        // Engines without BuildKit's cache answer with an error or with nothing to prune.
        if let Ok(build) = self.docker.prune_build(Some(options)).await {
            reclaimed += build.space_reclaimed.unwrap_or(0).max(0) as u64;
        }
        Ok(reclaimed)
    }
}

/// The engine's versions and runtimes.
#[derive(serde::Serialize)]
pub struct About {
    #[serde(rename = "engine_version")]
    pub version: String,
    pub api_version: String,
    pub min_api_version: String,
    pub os: String,
    pub arch: String,
    pub kernel: String,
    pub runtimes: Vec<String>,
    pub default_runtime: String,
}

/// How an attempt to fill a shared volume went.
pub enum Fill {
    Done,
    /// Someone else holds the lock.
    Busy,
}

/// What a build is asked to do.
pub struct BuildRequest {
    pub tag: String,
    pub dockerfile: String,
    pub build_args: HashMap<String, String>,
    pub labels: HashMap<String, String>,
    pub target: Option<String>,
    pub no_cache: bool,
    pub network_mode: Option<String>,
}

/// What a build did, whether it succeeded (`image_id`) or failed (`error`).
#[derive(Default, Debug)]
pub struct BuildOutcome {
    pub image_id: Option<String>,
    pub error: Option<String>,
    /// The last step header seen, e.g. "Step 3/5 : RUN make", and its number.
    pub step: Option<(u32, String)>,
    pub lines: Vec<String>,
    /// Images the steps produced (not the base images), for prune_build_cache.
    pub intermediates: Vec<String>,
}

/// Splits the build's stream fragments into lines, tracks steps and intermediate image ids,
/// and echoes lines to stderr when it is a terminal.
struct BuildLog {
    partial: String,
    echo: bool,
    after_from: bool,
}

impl BuildLog {
    fn new(echo: bool) -> Self {
        BuildLog {
            partial: String::new(),
            echo,
            after_from: false,
        }
    }

    fn push(&mut self, text: &str, outcome: &mut BuildOutcome) {
        self.partial.push_str(text);
        while let Some(pos) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=pos).collect();
            self.line(line.trim_end(), outcome);
        }
    }

    fn finish(&mut self, outcome: &mut BuildOutcome) {
        let rest = std::mem::take(&mut self.partial);
        if !rest.trim().is_empty() {
            self.line(rest.trim_end(), outcome);
        }
    }

    fn line(&mut self, line: &str, outcome: &mut BuildOutcome) {
        if line.is_empty() {
            return;
        }
        if self.echo {
            eprintln!("{line}");
        }
        if let Some((number, header)) = parse_step(line) {
            self.after_from = header
                .split_whitespace()
                .nth(3)
                .is_some_and(|k| k.eq_ignore_ascii_case("FROM"));
            outcome.step = Some((number, header));
        } else if let Some(id) = line.strip_prefix(" ---> ").filter(|id| is_short_id(id)) {
            if !std::mem::take(&mut self.after_from) {
                outcome.intermediates.push(id.to_string());
            }
        }
        outcome.lines.push(line.to_string());
    }
}

/// "Step 3/5 : RUN make" (classic builder) or "STEP 3/5: RUN make" (buildah): the number
/// and the header in the classic form.
pub fn parse_step(line: &str) -> Option<(u32, String)> {
    let rest = line
        .strip_prefix("Step ")
        .or_else(|| line.strip_prefix("STEP "))?;
    let (numbers, instruction) = rest.split_once(':')?;
    let (n, m) = numbers.trim().split_once('/')?;
    let n: u32 = n.parse().ok()?;
    let m: u32 = m.parse().ok()?;
    Some((n, format!("Step {n}/{m} : {}", instruction.trim())))
}

fn is_short_id(text: &str) -> bool {
    text.len() == 12 && text.chars().all(|c| c.is_ascii_hexdigit())
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

/// A progress bar for pulls, drawn only when stderr is a terminal.
struct PullProgress {
    bar: Option<indicatif::ProgressBar>,
    layers: HashMap<String, (u64, u64)>,
}

impl PullProgress {
    fn new(reference: &str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {elapsed}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_message(format!("pulling {reference}"));
            bar
        });
        PullProgress {
            bar,
            layers: HashMap::new(),
        }
    }

    fn update(&mut self, layer: Option<&str>, detail: Option<&bollard::models::ProgressDetail>) {
        let (Some(bar), Some(layer), Some(detail)) = (&self.bar, layer, detail) else {
            return;
        };
        let current = detail.current.unwrap_or(0).max(0) as u64;
        let total = detail.total.unwrap_or(0).max(0) as u64;
        self.layers.insert(layer.to_string(), (current, total));
        bar.set_length(self.layers.values().map(|(_, t)| t).sum());
        bar.set_position(self.layers.values().map(|(c, _)| c).sum());
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_headers_parse_in_both_builders_forms() {
        assert_eq!(
            parse_step("Step 3/5 : RUN make"),
            Some((3, "Step 3/5 : RUN make".into()))
        );
        assert_eq!(
            parse_step("STEP 2/4: COPY . /app"),
            Some((2, "Step 2/4 : COPY . /app".into()))
        );
        assert_eq!(parse_step("Stepping out"), None);
    }

    #[test]
    fn the_build_log_tracks_steps_and_skips_base_images() {
        let mut outcome = BuildOutcome::default();
        let mut log = BuildLog::new(false);
        let stream = "Step 1/3 : FROM busybox\n ---> aaaaaaaaaaaa\nStep 2/3 : RUN echo hi\n ---> Running in 123\nhi\nRemoving intermediate container 123\n ---> bbbbbbbbbbbb\nStep 3/3 : RUN ex";
        for chunk in stream.as_bytes().chunks(7) {
            log.push(std::str::from_utf8(chunk).unwrap(), &mut outcome);
        }
        log.push("it 1\n", &mut outcome);
        log.finish(&mut outcome);
        assert_eq!(outcome.intermediates, vec!["bbbbbbbbbbbb".to_string()]);
        assert_eq!(outcome.step, Some((3, "Step 3/3 : RUN exit 1".into())));
        assert!(outcome.lines.contains(&"hi".to_string()));
    }
}
