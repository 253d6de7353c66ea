//! Connections to a remote engine made ahead of the adde calls that use them: over TLS, each
//! a connection through its handshake; over SSH, each an `ssh … docker system dial-stdio`
//! already started.
//!
//! Each CLI call is a process of its own, so each paid for its connection before its first
//! request (execute of `echo 42` over TLS: 14.9 ms against 6.5 on the socket; over SSH, 150 ms
//! with ssh's master connection kept, most of it the remote docker CLI starting), and no TLS
//! session can be carried from one process to the next (connect.rs says why). The first call
//! to a remote engine starts a keeper: a detached adde that makes connections ahead of need,
//! exactly as the call would make them (the same connector), and lends each, once, to the next
//! call that asks on a unix socket in a folder only this user can enter. A call that finds no
//! keeper, or one that cannot lend, connects on its own as before.
//!
//! A connection is never lent twice: the keeper cannot tell where the HTTP exchange stopped (an
//! attach takes a connection over for good), so it closes it after the call and makes its
//! successor. The keeper holds nothing a process of this user could not have made itself (it
//! can read key.pem, use the ssh keys), answers only this user (its socket's folder, and the
//! peer's credentials), and exits once no call has come for ADDE_CONNECTION_PERSIST (30 s), or
//! as soon as a connection fails (the next call starts another once it has connected on its
//! own).

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{oneshot, Notify};
use tokio_util::task::TaskTracker;
use tower_service::Service;

use super::connect::{self, Remote};

/// The hidden first argument that makes adde a keeper.
pub const KEEPER_FLAG: &str = "__keep_connections";
/// What the keeper writes once a connection is the caller's.
const LENT: u8 = 1;
/// What the keeper writes as soon as it takes a call (the connection may take longer).
const TAKEN: u8 = 2;
/// How long a caller waits for TAKEN: a keeper answers in microseconds, unless stopped.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(1);
/// Connections kept ready: an execute uses one.
const SPARES: usize = 2;
/// How long a connection, or a keeper's answer, may take (as the direct connector's connect).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a lent connection checks that its caller is still there.
const HANG_UP_CHECK: Duration = Duration::from_secs(1);
/// A connection the engine closes sooner than this after its handshake is a failure, not an
/// idle connection timed out: making another at once would only spin.
const SHORTEST_IDLE: Duration = Duration::from_secs(1);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A connector whose connections a keeper can make and lend: hyper's connectors over TLS and
/// SSH.
pub(super) trait Dial:
    Service<
        Uri,
        Response: hyper::rt::Read + hyper::rt::Write + Connection + Unpin + Send + 'static,
        Error: Into<BoxError>,
        Future: Send + Unpin + 'static,
    > + Clone
    + Send
    + Sync
    + 'static
{
}

impl<C> Dial for C where
    C: Service<
            Uri,
            Response: hyper::rt::Read + hyper::rt::Write + Connection + Unpin + Send + 'static,
            Error: Into<BoxError>,
            Future: Send + Unpin + 'static,
        > + Clone
        + Send
        + Sync
        + 'static
{
}

/// Where the keeper of one remote engine (its fingerprint) listens, and its lock.
struct Place {
    socket: PathBuf,
    lock: PathBuf,
}

impl Place {
    fn of(fingerprint: &str) -> io::Result<Place> {
        let dir = connect::private_dir("keep")?;
        let name = fingerprint;
        Ok(Place {
            socket: dir.join(format!("{name}.sock")),
            lock: dir.join(format!("{name}.lock")),
        })
    }

    /// A connection lent by the keeper. NotFound or ConnectionRefused: no keeper listens.
    async fn borrow(&self) -> io::Result<UnixStream> {
        let mut stream = UnixStream::connect(&self.socket).await?;
        let refused = || io::Error::other("the keeper lent no connection");
        // Only this user's keeper gets the call: a folder checked a moment ago may have been
        // swapped since (a TMPDIR others can write) for one where anyone listens.
        if stream.peer_cred()?.uid() != connect::current_uid() {
            return Err(refused());
        }
        let mut answer = [0u8];
        match tokio::time::timeout(ANSWER_TIMEOUT, stream.read(&mut answer)).await {
            Ok(Ok(1)) if answer[0] == TAKEN => {}
            Err(_) => {
                // A keeper that does not answer (stopped): its socket goes, so the calls that
                // follow neither wait for it nor ask it.
                let _ = std::fs::remove_file(&self.socket);
                return Err(refused());
            }
            _ => return Err(refused()),
        }
        match tokio::time::timeout(CONNECT_TIMEOUT, stream.read(&mut answer)).await {
            Ok(Ok(1)) if answer[0] == LENT => Ok(stream),
            _ => Err(refused()),
        }
    }
}

/// The CLI's connector for a remote engine: a connection lent by the keeper when one runs,
/// else its own (and then it starts a keeper for the calls that follow).
#[derive(Clone)]
pub(super) struct Connector<C> {
    direct: C,
    place: Option<Arc<Place>>,
    keeper_started: Arc<AtomicBool>,
}

impl<C: Dial> Connector<C> {
    pub(super) fn new(remote: Remote<C>) -> Connector<C> {
        Connector {
            direct: remote.connector,
            // No private folder (an odd TMPDIR): every connection is the call's own.
            place: Place::of(&remote.fingerprint).ok().map(Arc::new),
            keeper_started: Arc::default(),
        }
    }
}

impl<C: Dial> Service<Uri> for Connector<C> {
    type Response = Link<C::Response>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.direct.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let mut direct = self.direct.clone();
        let place = self.place.clone();
        let keeper_started = self.keeper_started.clone();
        Box::pin(async move {
            let mut no_keeper = false;
            if let Some(place) = &place {
                match place.borrow().await {
                    Ok(stream) => return Ok(Link::Lent(TokioIo::new(stream))),
                    Err(e) => {
                        no_keeper = matches!(
                            e.kind(),
                            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
                        )
                    }
                }
            }
            let stream = direct.call(uri).await.map_err(Into::into)?;
            // Only once this call has connected: a keeper for an engine that cannot be
            // reached would only fail again.
            if no_keeper && !keeper_started.swap(true, Ordering::Relaxed) {
                crate::spawn_detached(&[KEEPER_FLAG]);
            }
            Ok(Link::Own(Box::new(stream)))
        })
    }
}

/// A connection to the engine: lent by the keeper (plain HTTP to it, the keeper's transport
/// from it on), or the call's own.
pub(super) enum Link<T> {
    Lent(TokioIo<UnixStream>),
    Own(Box<T>),
}

impl<T: hyper::rt::Read + Unpin> hyper::rt::Read for Link<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Link::Lent(s) => Pin::new(s).poll_read(cx, buf),
            Link::Own(s) => Pin::new(&mut **s).poll_read(cx, buf),
        }
    }
}

impl<T: hyper::rt::Write + Unpin> hyper::rt::Write for Link<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Link::Lent(s) => Pin::new(s).poll_write(cx, buf),
            Link::Own(s) => Pin::new(&mut **s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Link::Lent(s) => Pin::new(s).poll_flush(cx),
            Link::Own(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Link::Lent(s) => Pin::new(s).poll_shutdown(cx),
            Link::Own(s) => Pin::new(&mut **s).poll_shutdown(cx),
        }
    }
}

impl<T: Connection> Connection for Link<T> {
    fn connected(&self) -> Connected {
        match self {
            Link::Lent(_) => Connected::new(),
            Link::Own(s) => s.connected(),
        }
    }
}

/// The keeper: the detached process `Connector` starts, for the engine its environment names.
pub fn keeper_main() -> std::process::ExitCode {
    match keep() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(_) => std::process::ExitCode::FAILURE,
    }
}

fn keep() -> Result<(), BoxError> {
    let endpoint = super::context_store::from_env()
        .as_ref()
        .map_err(|e| e.reason.clone())?;
    let persist = connect::connection_persist()?.ok_or("connections are not kept")?;
    let addr = endpoint.host.as_str();
    match (addr.split_once("://"), &endpoint.tls) {
        (Some(("tcp" | "https", _)), Some(tls)) => run(Remote::tls(addr, tls)?, persist),
        (Some(("ssh", _)), _) => run(Remote::ssh(addr, Some(persist))?, persist),
        _ => Err("not an engine whose connections are kept".into()),
    }
}

fn run<C: Dial>(remote: Remote<C>, persist: Duration) -> Result<(), BoxError> {
    let place = Place::of(&remote.fingerprint)?;
    // One keeper per place: the lock is held for as long as the socket is this keeper's.
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&place.lock)?;
    // SAFETY: flock on an open file; the lock goes with the file.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let _ = std::fs::remove_file(&place.socket);
        let listener = UnixListener::bind(&place.socket)?;
        let lender = Arc::new(Lender {
            connector: remote.connector,
            uri: remote.uri,
            idle: Mutex::new(Some(VecDeque::new())),
            failed: Notify::new(),
            tasks: TaskTracker::new(),
        });
        for _ in 0..SPARES {
            lender.tasks.spawn(lender.clone().spare());
        }
        lender.serve(&listener, persist).await;
        // Another keeper may take the place while the connections lent run to their end.
        let _ = std::fs::remove_file(&place.socket);
        drop(lock);
        lender.close().await;
        Ok(())
    })
}

/// The keeper's connections: those ready (each waited on by its own task) and those lent.
struct Lender<C> {
    connector: C,
    uri: Uri,
    /// One sender per connection ready to lend, oldest first; `None` once the keeper closes.
    idle: Mutex<Option<VecDeque<oneshot::Sender<UnixStream>>>>,
    /// A connection failed: the engine, or what reaches it (TLS material, ssh), no longer
    /// serves.
    failed: Notify,
    tasks: TaskTracker,
}

impl<C: Dial> Lender<C> {
    /// Lends a connection to each caller of this user until none has come for `persist`.
    async fn serve(self: &Arc<Self>, listener: &UnixListener, persist: Duration) {
        let me = connect::current_uid();
        loop {
            let accepted = tokio::select! {
                accepted = tokio::time::timeout(persist, listener.accept()) => accepted,
                _ = self.failed.notified() => return,
            };
            let Ok(Ok((caller, _))) = accepted else {
                return;
            };
            // A new socket's buffer always has room for one byte.
            if caller.peer_cred().is_ok_and(|cred| cred.uid() == me)
                && caller.try_write(&[TAKEN]).is_ok()
            {
                self.lend(caller);
            }
        }
    }

    /// Hands the caller the oldest connection ready (whose task makes its successor once the
    /// caller is done); with none ready, makes one for it.
    fn lend(self: &Arc<Self>, mut caller: UnixStream) {
        loop {
            let ready = self
                .idle
                .lock()
                .unwrap()
                .as_mut()
                .and_then(VecDeque::pop_front);
            let Some(ready) = ready else { break };
            match ready.send(caller) {
                Ok(()) => return,
                // That connection was closed meanwhile.
                Err(back) => caller = back,
            }
        }
        let lender = self.clone();
        self.tasks.spawn(async move {
            match lender.connect().await {
                Ok(engine) => relay(caller, engine).await,
                Err(_) => lender.failed.notify_one(),
            }
        });
    }

    /// One connection made ahead and kept until a caller takes it; another in its place if the
    /// engine closes it first.
    async fn spare(self: Arc<Self>) {
        loop {
            let Ok(mut engine) = self.connect().await else {
                self.failed.notify_one();
                return;
            };
            let made = tokio::time::Instant::now();
            let (ready, taken) = oneshot::channel();
            match self.idle.lock().unwrap().as_mut() {
                Some(idle) => idle.push_back(ready),
                None => return,
            }
            // Reading also takes in what the server sends after the handshake (session
            // tickets); an idle HTTP server sends nothing else but its closing.
            let mut probe = [0u8];
            let taken = tokio::select! {
                taken = taken => taken.ok(),
                _ = engine.read(&mut probe) => {
                    if made.elapsed() < SHORTEST_IDLE {
                        self.failed.notify_one();
                        return;
                    }
                    continue;
                }
            };
            match taken {
                // Its successor is made once the caller is done, not while the caller runs.
                Some(caller) => relay(caller, engine).await,
                // The keeper closes.
                None => return,
            }
        }
    }

    /// A connection the engine has answered on: over SSH a started ssh may yet fail (a refused
    /// login, an engine down), and TLS 1.3 tells a client that its certificate was refused
    /// only at its first read. A connection that did not answer is never lent.
    async fn connect(&self) -> io::Result<TokioIo<C::Response>> {
        let made = async {
            let connecting = self.connector.clone().call(self.uri.clone());
            let mut engine =
                TokioIo::new(connecting.await.map_err(|e| io::Error::other(e.into()))?);
            answers_ping(&mut engine).await?;
            Ok(engine)
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, made).await {
            Ok(made) => made,
            Err(_) => Err(io::ErrorKind::TimedOut.into()),
        }
    }

    /// Drops the connections ready and waits for those lent.
    async fn close(&self) {
        self.idle.lock().unwrap().take();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// Asks `HEAD /_ping` and reads the answer's head (a HEAD answer has no body), which leaves the
/// connection between two requests, as a caller expects it.
async fn answers_ping<T>(engine: &mut T) -> io::Result<()>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    engine
        .write_all(b"HEAD /_ping HTTP/1.1\r\nHost: docker\r\n\r\n")
        .await?;
    engine.flush().await?;
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        // Byte by byte: nothing past the head may be taken from the caller.
        if head.len() > 16 * 1024 || engine.read(&mut byte).await? == 0 {
            return Err(io::Error::other("the engine did not answer a ping"));
        }
        head.push(byte[0]);
    }
    if head.starts_with(b"HTTP/1.1 200 ") {
        Ok(())
    } else {
        Err(io::Error::other("the engine refused a ping"))
    }
}

/// Carries the caller's bytes to the engine and back until either side ends, or the caller is
/// gone (a caller that only stopped writing, e.g. after an exec's stdin, still gets the rest).
async fn relay<T>(mut caller: UnixStream, mut engine: TokioIo<T>)
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin,
{
    if caller.write_all(&[LENT]).await.is_err() {
        return;
    }
    let fd = caller.as_raw_fd();
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut caller, &mut engine) => {}
        _ = hung_up(fd) => {}
    }
}

/// Returns once the caller has closed its end of the socket (both directions).
async fn hung_up(fd: RawFd) {
    loop {
        tokio::time::sleep(HANG_UP_CHECK).await;
        let mut entry = libc::pollfd {
            fd,
            events: 0,
            revents: 0,
        };
        // SAFETY: `fd` stays open while the relay that owns it runs this.
        let ready = unsafe { libc::poll(&mut entry, 1, 0) };
        if ready > 0 && entry.revents & libc::POLLHUP != 0 {
            return;
        }
    }
}
