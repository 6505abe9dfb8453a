//! Slow clients against the real binary, on both frameworks: a client that
//! trickles its request head, one that trickles its body, a keep-alive
//! connection left idle and one that never sends anything are all
//! disconnected by the configured timeouts (1 s here; each test allows
//! 10 s), the slow body with the `408 REQUEST_TIMEOUT` envelope.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

/// How long a test waits for the server to close a connection (the
/// timeouts are 1 s; a loaded machine gets a wide margin).
const CLOSED_WITHIN: Duration = Duration::from_secs(10);

/// How often a trickling client sends one byte.
const TRICKLE: Duration = Duration::from_millis(200);

fn start(framework: &str) -> (TestDir, Server) {
    let dir = TestDir::new(&format!("slow-{framework}"));
    let server = Server::start(
        &dir,
        &[
            ("SENTRI_FRAMEWORK", framework),
            ("SENTRI_HEADER_READ_TIMEOUT", "1s"),
            ("SENTRI_BODY_READ_TIMEOUT", "1s"),
            ("SENTRI_IDLE_TIMEOUT", "1s"),
            ("SENTRI_REQUEST_TIMEOUT", "20s"),
            ("SENTRI_LOG", "sentri_server=debug,info"),
        ],
    );
    (dir, server)
}

fn connect(server: &Server) -> TcpStream {
    let addr = server.base.trim_start_matches("http://");
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_nodelay(true).unwrap();
    stream
}

/// What the server did while the client sent `bytes` one at a time every
/// [`TRICKLE`] (then nothing): everything it sent, and whether it closed
/// the connection within [`CLOSED_WITHIN`].
struct Seen {
    received: String,
    closed: bool,
    sent: usize,
}

fn trickle(stream: &mut TcpStream, bytes: &[u8]) -> Seen {
    stream.set_read_timeout(Some(TRICKLE)).unwrap();
    let started = Instant::now();
    let mut received = Vec::new();
    let mut sent = 0;
    let mut buf = [0u8; 4096];
    while started.elapsed() < CLOSED_WITHIN {
        if sent < bytes.len() {
            if stream.write_all(&bytes[sent..=sent]).is_err() {
                // Closed by the server (a write after its close).
                return Seen {
                    received: String::from_utf8_lossy(&received).into_owned(),
                    closed: true,
                    sent,
                };
            }
            sent += 1;
        }
        match stream.read(&mut buf) {
            Ok(0) => {
                return Seen {
                    received: String::from_utf8_lossy(&received).into_owned(),
                    closed: true,
                    sent,
                };
            }
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => {
                return Seen {
                    received: String::from_utf8_lossy(&received).into_owned(),
                    closed: true,
                    sent,
                };
            }
        }
    }
    Seen {
        received: String::from_utf8_lossy(&received).into_owned(),
        closed: false,
        sent,
    }
}

/// A request head longer than the test runs at one byte per trickle.
fn endless_head() -> Vec<u8> {
    let mut head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n".to_vec();
    while head.len() < 200 {
        head.extend_from_slice(b"X-Pad: aaaaaaaa\r\n");
    }
    head
}

fn trickled_head_is_cut_off(server: &Server) {
    let mut stream = connect(server);
    let seen = trickle(&mut stream, &endless_head());
    assert!(
        seen.closed,
        "a trickled head kept the connection open:\n{}",
        server.output()
    );
    // Still sending when it was cut off: one byte per 200 ms could have
    // gone on for 40 s.
    assert!(seen.sent < endless_head().len(), "{}", seen.sent);
    assert_eq!(seen.received, "", "no answer to half a head");
    server.wait_for_output("request head not received in time (SENTRI_HEADER_READ_TIMEOUT)");
}

fn silent_connection_is_cut_off(server: &Server) {
    let mut stream = connect(server);
    let seen = trickle(&mut stream, b"");
    assert!(seen.closed, "a silent connection stayed open");
}

fn trickled_body_gets_408(server: &Server) {
    let mut stream = connect(server);
    let body = format!(
        "{{\"identifier\":\"slow@example.com\",\"password\":\"{PASSWORD}\",\"pad\":\"{}\"}}",
        "a".repeat(200)
    );
    let head = format!(
        "POST /auth/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    let seen = trickle(&mut stream, body.as_bytes());
    assert!(
        seen.closed,
        "a trickled body kept the connection open: {}\n{}",
        seen.received,
        server.output()
    );
    assert!(seen.sent < body.len());
    assert!(
        seen.received.starts_with("HTTP/1.1 408 "),
        "{}",
        seen.received
    );
    let lower = seen.received.to_ascii_lowercase();
    assert!(lower.contains("\r\nconnection: close\r\n"), "{lower}");
    assert!(
        lower.contains("\r\nx-content-type-options: nosniff\r\n"),
        "{lower}"
    );
    let body = &seen.received[seen.received.find("\r\n\r\n").unwrap() + 4..];
    let body: serde_json::Value = serde_json::from_str(body).expect("an envelope");
    assert_eq!(body["error"], true);
    assert_eq!(body["statusCode"], 408);
    assert_eq!(body["code"], "REQUEST_TIMEOUT");
    server.wait_for_output("request body not received in time (SENTRI_BODY_READ_TIMEOUT)");
}

fn idle_keep_alive_is_closed(server: &Server) {
    let mut stream = connect(server);
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    // The answer, on a connection kept alive.
    stream.set_read_timeout(Some(CLOSED_WITHIN)).unwrap();
    let mut buf = [0u8; 4096];
    let n = stream.read(&mut buf).expect("an answer");
    let answer = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 200 "), "{answer}");
    assert!(!answer.contains("connection: close"), "{answer}");
    // Then nothing: the server closes it.
    let started = Instant::now();
    let closed = loop {
        match stream.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                break false;
            }
            Err(_) => break true,
        }
    };
    assert!(closed, "the idle connection stayed open");
    assert!(started.elapsed() < CLOSED_WITHIN);
    server.wait_for_output("closing idle connection (SENTRI_IDLE_TIMEOUT)");
}

fn slow_clients(framework: &str) {
    let (_dir, server) = start(framework);
    // Slow clients do not disturb the others.
    let threads = [
        trickled_head_is_cut_off as fn(&Server),
        silent_connection_is_cut_off,
        trickled_body_gets_408,
        idle_keep_alive_is_closed,
    ];
    std::thread::scope(|s| {
        for t in threads {
            let server = &server;
            s.spawn(move || t(server));
        }
    });
    // The server still answers.
    let mut stream = connect(&server);
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    stream.set_read_timeout(Some(CLOSED_WITHIN)).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    server.stop();
}

#[test]
fn slow_clients_are_disconnected_on_axum() {
    slow_clients("axum");
}

#[test]
fn slow_clients_are_disconnected_on_poem() {
    slow_clients("poem");
}
