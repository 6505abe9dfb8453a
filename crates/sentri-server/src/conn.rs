//! The connection layer both frameworks are served through: one accept
//! loop on hyper's HTTP/1.1 server with a connection limit and the
//! header-read, body-read, idle and whole-request timeouts
//! ([`Limits`]), so a slow or silent client can hold a connection only as
//! long as the operator allows, on axum and on poem alike.
//!
//! - A connection that has not sent a complete request head within
//!   `header_read_timeout` of its start (or of the first byte of its next
//!   request) is closed.
//! - A request body not received in full within `body_read_timeout` of the
//!   request head ends the request with `408 REQUEST_TIMEOUT`.
//! - A request not answered within `request_timeout` of its head is
//!   abandoned with `408 REQUEST_TIMEOUT` (shorter than the idempotency
//!   lock, so a hold never lapses under a live request).
//! - A keep-alive connection with no request for `idle_timeout` is closed.
//! - Beyond `max_connections` open connections, a new one is answered
//!   `503 SERVICE_UNAVAILABLE` and closed.
//!
//! Every response gets sentri's security headers
//! ([`sentri_core::http::security_headers`]).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use sentri_core::config::CookieConfig;
use sentri_core::http::{error_response, security_headers};
use sentri_core::{Error, ErrorCode};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::time::Instant;

/// The error type of bodies crossing the connection layer.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A response body of any framework.
pub type ResponseBody = UnsyncBoxBody<Bytes, BoxError>;

/// The default `SENTRI_HEADER_READ_TIMEOUT`.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The default `SENTRI_BODY_READ_TIMEOUT`.
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The default `SENTRI_IDLE_TIMEOUT`.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// The default `SENTRI_REQUEST_TIMEOUT`.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The default `SENTRI_MAX_CONNECTIONS`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;

/// How long a refused connection (over the limit) may take to receive its
/// 503.
const REFUSE_TIMEOUT: Duration = Duration::from_secs(1);
/// At most this many over-the-limit connections are answered at once; the
/// others are closed without an answer.
const MAX_REFUSING: usize = 64;

/// The connection limits and timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Time to receive a complete request head.
    pub header_read_timeout: Duration,
    /// Time to receive a request body, from the end of its head.
    pub body_read_timeout: Duration,
    /// Time a keep-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// Time to answer a request, from the end of its head.
    pub request_timeout: Duration,
    /// Open connections at most.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// The application behind the connection layer: a framework's service.
pub trait Handler: Send + Sync + 'static {
    /// Answer one request from `peer`.
    fn handle(
        &self,
        req: http::Request<TimedBody>,
        peer: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = http::Response<ResponseBody>> + Send>>;
}

/// The axum application.
#[derive(Clone)]
pub struct AxumHandler(pub axum::Router);

impl Handler for AxumHandler {
    fn handle(
        &self,
        mut req: http::Request<TimedBody>,
        peer: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = http::Response<ResponseBody>> + Send>> {
        use tower::ServiceExt;
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        let router = self.0.clone();
        Box::pin(async move {
            let res = match router.oneshot(req.map(axum::body::Body::new)).await {
                Ok(res) => res,
                Err(never) => match never {},
            };
            res.map(|b| b.map_err(BoxError::from).boxed_unsync())
        })
    }
}

/// The poem application.
pub struct PoemHandler {
    endpoint: Arc<poem::endpoint::BoxEndpoint<'static, poem::Response>>,
    local: SocketAddr,
}

impl PoemHandler {
    /// `endpoint`, served on `local`.
    pub fn new(
        endpoint: poem::endpoint::BoxEndpoint<'static, poem::Response>,
        local: SocketAddr,
    ) -> Self {
        Self {
            endpoint: Arc::new(endpoint),
            local,
        }
    }
}

impl Handler for PoemHandler {
    fn handle(
        &self,
        req: http::Request<TimedBody>,
        peer: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = http::Response<ResponseBody>> + Send>> {
        use poem::Endpoint;
        let endpoint = self.endpoint.clone();
        let local = self.local;
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let parts = poem::RequestParts::from((
                parts,
                poem::web::LocalAddr(poem::Addr::SocketAddr(local)),
                poem::web::RemoteAddr(poem::Addr::SocketAddr(peer)),
                http::uri::Scheme::HTTP,
            ));
            let body = poem::Body::from(body.map_err(std::io::Error::other).boxed());
            let res = endpoint
                .get_response(poem::Request::from_parts(parts, body))
                .await;
            let res: http::Response<_> = res.into();
            res.map(|b| b.map_err(BoxError::from).boxed_unsync())
        })
    }
}

/// A request body that fails once `body_read_timeout` has passed since the
/// request head, marking its request as timed out (answered 408).
pub struct TimedBody {
    inner: Incoming,
    deadline: Pin<Box<tokio::time::Sleep>>,
    timed_out: Arc<AtomicBool>,
}

/// The error of a body that took too long.
#[derive(Debug)]
struct BodyTimedOut;

impl std::fmt::Display for BodyTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("request body not received in time")
    }
}

impl std::error::Error for BodyTimedOut {}

impl Body for TimedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.timed_out.load(Ordering::Relaxed) {
            return Poll::Ready(Some(Err(Box::new(BodyTimedOut))));
        }
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(BoxError::from)));
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            self.timed_out.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(Box::new(BodyTimedOut))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The `408 REQUEST_TIMEOUT` envelope; the connection is closed after it.
pub fn timeout_response() -> http::Response<Bytes> {
    let mut res = error_response(&Error::app(
        "REQUEST_TIMEOUT",
        408,
        "request not completed in time",
    ));
    res.headers_mut().insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("close"),
    );
    res
}

/// What a connection is doing, for its timeouts.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Reading a request head since then.
    Head(Instant),
    /// This many requests are being answered.
    Busy(usize),
    /// Waiting for the next request since then.
    Idle(Instant),
}

struct ConnState {
    phase: Mutex<Phase>,
    changed: Notify,
}

impl ConnState {
    fn update(&self, f: impl FnOnce(Phase) -> Phase) {
        let mut phase = self.phase.lock().unwrap_or_else(|e| e.into_inner());
        *phase = f(*phase);
        drop(phase);
        self.changed.notify_one();
    }

    fn phase(&self) -> Phase {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn read_some(&self) {
        let idle = matches!(self.phase(), Phase::Idle(_));
        if idle {
            self.update(|p| match p {
                Phase::Idle(_) => Phase::Head(Instant::now()),
                other => other,
            });
        }
    }
}

/// Decrements the busy count when a request ends, however it ends.
struct BusyGuard(Arc<ConnState>);

impl BusyGuard {
    fn new(state: Arc<ConnState>) -> Self {
        state.update(|p| match p {
            Phase::Busy(n) => Phase::Busy(n + 1),
            _ => Phase::Busy(1),
        });
        Self(state)
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.update(|p| match p {
            Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
            _ => Phase::Idle(Instant::now()),
        });
    }
}

/// The socket, noting when the next request's first bytes arrive.
struct Watched {
    stream: TcpStream,
    state: Arc<ConnState>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(res, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.state.read_some();
        }
        res
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Answer one request: body deadline, request deadline, security headers.
async fn answer(
    handler: Arc<dyn Handler>,
    req: http::Request<Incoming>,
    peer: SocketAddr,
    limits: Limits,
    cookies: Arc<CookieConfig>,
    state: Arc<ConnState>,
) -> http::Response<ResponseBody> {
    let _busy = BusyGuard::new(state);
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let timed_out = Arc::new(AtomicBool::new(false));
    let req = req.map(|inner| TimedBody {
        inner,
        deadline: Box::pin(tokio::time::sleep(limits.body_read_timeout)),
        timed_out: timed_out.clone(),
    });
    let outcome = tokio::time::timeout(limits.request_timeout, handler.handle(req, peer)).await;
    let mut res = match outcome {
        Ok(res) if !timed_out.load(Ordering::Relaxed) => res,
        late => {
            if late.is_ok() {
                tracing::warn!(target: "sentri_server::access", %method, path = %path, timeout = ?limits.body_read_timeout, "request body not received in time (SENTRI_BODY_READ_TIMEOUT)");
            } else {
                tracing::warn!(target: "sentri_server::access", %method, path = %path, timeout = ?limits.request_timeout, "request not answered in time (SENTRI_REQUEST_TIMEOUT)");
            }
            timeout_response().map(|b| {
                http_body_util::Full::new(b)
                    .map_err(BoxError::from)
                    .boxed_unsync()
            })
        }
    };
    security_headers(res.headers_mut(), &cookies);
    res
}

/// Serve one connection until it ends, times out or the server stops.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    handler: Arc<dyn Handler>,
    limits: Limits,
    cookies: Arc<CookieConfig>,
    mut stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let state = Arc::new(ConnState {
        phase: Mutex::new(Phase::Head(Instant::now())),
        changed: Notify::new(),
    });
    let io = TokioIo::new(Watched {
        stream,
        state: state.clone(),
    });
    let service = {
        let state = state.clone();
        hyper::service::service_fn(move |req| {
            let fut = answer(
                handler.clone(),
                req,
                peer,
                limits,
                cookies.clone(),
                state.clone(),
            );
            async move { Ok::<_, Infallible>(fut.await) }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.keep_alive(true).header_read_timeout(None);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let mut stopping = false;
    loop {
        let deadline = match state.phase() {
            Phase::Head(since) => Some((since + limits.header_read_timeout, "header")),
            Phase::Idle(since) => Some((since + limits.idle_timeout, "idle")),
            Phase::Busy(_) => None,
        };
        let expired = async {
            match deadline {
                Some((at, _)) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            result = &mut conn => {
                if let Err(err) = result {
                    tracing::debug!(%peer, error = %err, "connection ended with an error");
                }
                return;
            }
            () = expired => {
                // The phase may have changed as the timer fired.
                let still = match (state.phase(), deadline) {
                    (Phase::Head(since), Some((_, "header"))) => Instant::now() >= since + limits.header_read_timeout,
                    (Phase::Idle(since), Some((_, "idle"))) => Instant::now() >= since + limits.idle_timeout,
                    _ => false,
                };
                if still {
                    match deadline {
                        Some((_, "header")) => tracing::debug!(%peer, timeout = ?limits.header_read_timeout, "closing connection: request head not received in time (SENTRI_HEADER_READ_TIMEOUT)"),
                        _ => tracing::debug!(%peer, timeout = ?limits.idle_timeout, "closing idle connection (SENTRI_IDLE_TIMEOUT)"),
                    }
                    return;
                }
            }
            () = state.changed.notified() => {}
            changed = stop.changed(), if !stopping => {
                stopping = true;
                if changed.is_err() || *stop.borrow() {
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// Answer a connection over the limit with a 503 envelope and close it.
async fn refuse(mut stream: TcpStream) {
    let res = error_response(&Error::with_message(
        ErrorCode::ServiceUnavailable,
        "too many connections",
    ));
    let mut head = format!(
        "HTTP/1.1 {} {}\r\n",
        res.status().as_u16(),
        res.status().canonical_reason().unwrap_or("")
    );
    for (name, value) in res.headers() {
        if let Ok(value) = value.to_str() {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str(&format!(
        "retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
        res.body().len()
    ));
    let write = async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(res.body()).await?;
        stream.shutdown().await?;
        // Read what the client sent, so closing does not reset the
        // connection before the client has read the answer.
        let mut sink = [0u8; 1024];
        loop {
            let n = tokio::io::AsyncReadExt::read(&mut stream, &mut sink).await?;
            if n == 0 {
                return Ok::<(), std::io::Error>(());
            }
        }
    };
    let _ = tokio::time::timeout(REFUSE_TIMEOUT, write).await;
}

/// Serve `handler` on `listener` with `limits` until `shutdown` resolves;
/// then stop accepting, let open connections finish their requests (idle
/// ones close at once) and return when all are closed.
pub async fn serve(
    listener: TcpListener,
    handler: Arc<dyn Handler>,
    limits: Limits,
    cookies: CookieConfig,
    shutdown: impl Future<Output = ()> + Send,
) {
    let cookies = Arc::new(cookies);
    let max = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let open = Arc::new(Semaphore::new(max));
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => match open.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let handler = handler.clone();
                        let cookies = cookies.clone();
                        let stop = stop_rx.clone();
                        tokio::spawn(async move {
                            connection(stream, peer, handler, limits, cookies, stop).await;
                            drop(permit);
                        });
                    }
                    Err(_) => {
                        tracing::warn!(%peer, max, "connection refused: SENTRI_MAX_CONNECTIONS reached");
                        if let Ok(permit) = refusing.clone().try_acquire_owned() {
                            tokio::spawn(async move {
                                refuse(stream).await;
                                drop(permit);
                            });
                        }
                    }
                },
                Err(err) => {
                    // Out of file descriptors and the like: back off a little.
                    tracing::warn!(error = %err, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let max = u32::try_from(max).unwrap_or(u32::MAX);
    let _ = open.acquire_many(max).await;
}
