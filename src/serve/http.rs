//! MCP over streamable HTTP at `/mcp`, with rmcp's server transport behind a bearer-token
//! check. Each MCP session gets the same `mcp::Server` (one engine, one gate on calls), so an
//! HTTP client sees exactly what `adde mcp` shows over stdio.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::Shared;
use crate::mcp::Server;

/// The path MCP is served on.
const MCP_PATH: &str = "/mcp";
/// The largest request body: a write_file of a few MiB.
const MAX_BODY: usize = 32 * 1024 * 1024;
/// How long a client may take to send a request's headers.
const HEADER_WAIT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct Endpoint {
    mcp: StreamableHttpService<Server, LocalSessionManager>,
    token: Option<Arc<str>>,
}

impl Endpoint {
    pub fn new(server: Server, token: Option<String>, stop: CancellationToken) -> Endpoint {
        let mut config = StreamableHttpServerConfig::default()
            .with_cancellation_token(stop)
            .with_max_request_body_bytes(MAX_BODY);
        // Without a token the endpoint is loopback only, and rmcp's default Host check keeps
        // web pages from reaching it by DNS rebinding. With one, the token is the check.
        if token.is_some() {
            config = config.disable_allowed_hosts();
        }
        let mcp =
            StreamableHttpService::new(move || Ok(server.clone()), Default::default(), config);
        Endpoint {
            mcp,
            token: token.map(Arc::from),
        }
    }

    async fn handle(&self, request: Request<Incoming>) -> Response<BoxBody<Bytes, Infallible>> {
        if let Some(token) = &self.token {
            let given = request
                .headers()
                .get(hyper::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or("");
            if !same(given.as_bytes(), token.as_bytes()) {
                let mut response = plain(
                    StatusCode::UNAUTHORIZED,
                    "adde serve: a bearer token is required (Authorization: Bearer <token>)\n",
                );
                response.headers_mut().insert(
                    hyper::header::WWW_AUTHENTICATE,
                    hyper::header::HeaderValue::from_static("Bearer"),
                );
                return response;
            }
        }
        if request.uri().path() != MCP_PATH {
            return plain(StatusCode::NOT_FOUND, "adde serve: MCP is served at /mcp\n");
        }
        self.mcp.handle(request).await
    }
}

/// Compares a token in constant time, so that timing does not tell how much of it matched.
fn same(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

fn plain(status: StatusCode, text: &'static str) -> Response<BoxBody<Bytes, Infallible>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())).boxed());
    *response.status_mut() = status;
    response
}

pub async fn accept(listener: TcpListener, endpoint: Endpoint, shared: Arc<Shared>) {
    loop {
        let stream = tokio::select! {
            _ = shared.stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let endpoint = endpoint.clone();
        let stop = shared.stop.clone();
        shared.tasks.spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let endpoint = endpoint.clone();
                async move { Ok::<_, Infallible>(endpoint.handle(request).await) }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_WAIT);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = stop.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(5), connection).await;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::same;

    #[test]
    fn tokens_match_only_when_equal() {
        assert!(same(b"0123456789abcdef", b"0123456789abcdef"));
        assert!(!same(b"0123456789abcdeX", b"0123456789abcdef"));
        assert!(!same(b"0123456789abcde", b"0123456789abcdef"));
        assert!(!same(b"", b"0123456789abcdef"));
    }
}
