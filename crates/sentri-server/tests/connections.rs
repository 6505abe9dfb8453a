//! The connection layer (`sentri_server::conn::serve`) on real sockets with
//! a handler the test controls: a handler slower than the request timeout
//! is answered `408 REQUEST_TIMEOUT`, connections beyond the limit get
//! `503 SERVICE_UNAVAILABLE`, and every answer carries the security
//! headers.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use sentri_core::config::{CookieConfig, CookieTransport};
use sentri_server::conn::{self, Handler, Limits, ResponseBody, TimedBody};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Answers `/slow` after a minute and anything else at once.
struct Slow;

impl Handler for Slow {
    fn handle(
        &self,
        req: http::Request<TimedBody>,
        _peer: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = http::Response<ResponseBody>> + Send>> {
        Box::pin(async move {
            if req.uri().path() == "/slow" {
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
            http::Response::new(
                http_body_util::Full::new(Bytes::from_static(b"fast"))
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            )
        })
    }
}

async fn start(
    limits: Limits,
    cookies: CookieConfig,
) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(conn::serve(
        listener,
        Arc::new(Slow),
        limits,
        cookies,
        async move {
            let _ = stopped.await;
        },
    ));
    (addr, stop)
}

/// Send `path` and read the whole answer (the server closes after it, or
/// the test gives up after 10 s).
async fn exchange(stream: &mut TcpStream, path: &str) -> String {
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out))
        .await
        .expect("answered and closed within 10 s")
        .unwrap();
    String::from_utf8(out).unwrap()
}

fn envelope(answer: &str) -> serde_json::Value {
    let body = &answer[answer.find("\r\n\r\n").expect("a head") + 4..];
    serde_json::from_str(body).expect("an envelope")
}

#[tokio::test]
async fn a_slow_handler_is_answered_408_within_the_request_timeout() {
    let limits = Limits {
        request_timeout: Duration::from_secs(1),
        ..Limits::default()
    };
    let (addr, _stop) = start(limits, CookieConfig::default()).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let answer = exchange(&mut stream, "/slow").await;
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    let lower = answer.to_ascii_lowercase();
    assert!(lower.contains("\r\nconnection: close\r\n"), "{answer}");
    assert!(
        lower.contains("\r\ncontent-type: application/json\r\n"),
        "{answer}"
    );
    assert_eq!(
        envelope(&answer),
        serde_json::json!({"error": true, "statusCode": 408, "code": "REQUEST_TIMEOUT", "message": "request not completed in time", "data": null})
    );
    // A fast request on the same server is unaffected.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let answer = exchange(&mut stream, "/fast").await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert!(answer.ends_with("fast"), "{answer}");
}

#[tokio::test]
async fn connections_beyond_the_limit_get_503() {
    let limits = Limits {
        max_connections: 2,
        ..Limits::default()
    };
    let (addr, _stop) = start(limits, CookieConfig::default()).await;
    // Two connections held open (each has sent a request that is running).
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        held.push(s);
    }
    // Let the server accept both before the third arrives.
    let mut probe = TcpStream::connect(addr).await.unwrap();
    let mut answer = exchange(&mut probe, "/fast").await;
    for _ in 0..50 {
        if answer.starts_with("HTTP/1.1 503 ") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        probe = TcpStream::connect(addr).await.unwrap();
        answer = exchange(&mut probe, "/fast").await;
    }
    assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
    let lower = answer.to_ascii_lowercase();
    assert!(lower.contains("\r\nretry-after: 1\r\n"), "{answer}");
    assert!(
        lower.contains("\r\nx-content-type-options: nosniff\r\n"),
        "{answer}"
    );
    assert_eq!(envelope(&answer)["code"], "SERVICE_UNAVAILABLE");
    assert_eq!(envelope(&answer)["message"], "too many connections");
    // Closing one frees a slot.
    drop(held.pop());
    let mut answer = String::new();
    for _ in 0..50 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        answer = exchange(&mut s, "/fast").await;
        if answer.starts_with("HTTP/1.1 200 ") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let secure_cookies = CookieConfig {
        transport: CookieTransport::Refresh,
        ..CookieConfig::default()
    };
    for (cookies, hsts) in [(CookieConfig::default(), false), (secure_cookies, true)] {
        let (addr, stop) = start(Limits::default(), cookies).await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let answer = exchange(&mut stream, "/fast").await.to_ascii_lowercase();
        assert!(
            answer.contains("\r\nx-content-type-options: nosniff\r\n"),
            "{answer}"
        );
        assert!(
            answer.contains("\r\nreferrer-policy: no-referrer\r\n"),
            "{answer}"
        );
        assert!(answer.contains("\r\nx-frame-options: deny\r\n"), "{answer}");
        assert_eq!(
            answer.contains("\r\nstrict-transport-security: max-age=31536000\r\n"),
            hsts,
            "{answer}"
        );
        let _ = stop.send(());
    }
}
