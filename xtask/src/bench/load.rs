//! The load generator: HTTP/1.1 over raw keep-alive TCP connections to a
//! loopback server, a warm-up, then a measured fixed duration.
//!
//! Every loop is bounded in count (`MAX_REQUESTS_PER_CONNECTION`) and in
//! time (the deadline, and a timeout on every read and write).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// No connection sends more than this many requests in one run.
const MAX_REQUESTS_PER_CONNECTION: u64 = 50_000_000;
/// A request or a response that takes longer than this fails the run.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Latency samples kept per connection (the rest are counted, not kept).
const MAX_SAMPLES_PER_CONNECTION: usize = 2_000_000;
/// The largest response accepted.
const MAX_RESPONSE: usize = 1 << 20;

/// How hard and how long to drive a server.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub connections: usize,
    pub warmup: Duration,
    pub duration: Duration,
}

/// What each connection sends.
#[derive(Debug, Clone)]
pub enum Script {
    /// The same request every time.
    Fixed(Vec<u8>),
    /// `POST {path}` with `{"refreshToken": …}`, each connection rotating its
    /// own session: the token of each response is sent with the next request.
    Refresh { path: String, tokens: Vec<String> },
}

/// What a run measured.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    pub requests: u64,
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// A `GET` request with one extra header line (may be empty).
pub fn get(path: &str, header: &str) -> Vec<u8> {
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    if !header.is_empty() {
        req.push_str(header);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    req.into_bytes()
}

/// A `POST` request with a JSON body.
pub fn post_json(path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Drive `addr` with `load` and `script`; fails on any non-2xx response.
pub async fn drive(addr: SocketAddr, load: Load, script: Script) -> crate::Result<Stats> {
    let (requests, samples) = drive_samples(addr, load, &script).await?;
    Ok(Stats::of(requests, samples, load.duration))
}

impl Stats {
    /// Requests/s and latency quantiles of `requests` measured over
    /// `duration`, from (unsorted) microsecond latency samples.
    pub fn of(requests: u64, mut samples: Vec<u32>, duration: Duration) -> Self {
        samples.sort_unstable();
        Self {
            requests,
            rps: requests as f64 / duration.as_secs_f64(),
            p50_ms: percentile(&samples, 0.50),
            p99_ms: percentile(&samples, 0.99),
        }
    }
}

/// As [`drive`], returning the measured request count and the raw
/// latency samples (microseconds), so that slices of a run can be merged.
pub async fn drive_samples(
    addr: SocketAddr,
    load: Load,
    script: &Script,
) -> crate::Result<(u64, Vec<u32>)> {
    let start = Instant::now();
    let measure_from = start + load.warmup;
    let end = measure_from + load.duration;
    let mut tasks = Vec::with_capacity(load.connections);
    for i in 0..load.connections {
        let script = match &script {
            Script::Fixed(req) => ConnScript::Fixed(req.clone()),
            Script::Refresh { path, tokens } => ConnScript::Refresh {
                path: path.clone(),
                token: tokens
                    .get(i)
                    .cloned()
                    .ok_or("fewer refresh tokens than connections")?,
            },
        };
        tasks.push(tokio::spawn(connection(addr, script, measure_from, end)));
    }
    let mut samples = Vec::new();
    let mut measured = 0u64;
    for task in tasks {
        let (count, mut lat) = task.await?.map_err(|e| e.to_string())?;
        measured += count;
        samples.append(&mut lat);
    }
    Ok((measured, samples))
}

/// One connection to each of `targets`, one request at a time, taking
/// turns: every target sees the same moments of the run, so the noise of a
/// shared machine falls on all of them alike and their latencies compare.
/// Requests/s of a target counts its own requests only.
pub async fn drive_in_turn(
    targets: &[(SocketAddr, Vec<u8>)],
    warmup: Duration,
    duration: Duration,
) -> crate::Result<Vec<Stats>> {
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + duration;
    let mut streams = Vec::with_capacity(targets.len());
    for (addr, _) in targets {
        let stream = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(addr)).await??;
        stream.set_nodelay(true)?;
        streams.push(stream);
    }
    let mut samples = vec![Vec::new(); targets.len()];
    let mut buf = Vec::with_capacity(8192);
    'run: for _ in 0..MAX_REQUESTS_PER_CONNECTION {
        for (i, ((_, request), stream)) in targets.iter().zip(&mut streams).enumerate() {
            let sent = Instant::now();
            if sent >= end {
                break 'run;
            }
            let body = exchange(stream, request, &mut buf)
                .await
                .map_err(|e| e.to_string())?;
            let done = Instant::now();
            buf.drain(..body.end);
            if sent >= measure_from && done <= end && samples[i].len() < MAX_SAMPLES_PER_CONNECTION
            {
                let us = done.duration_since(sent).as_micros();
                samples[i].push(u32::try_from(us).unwrap_or(u32::MAX));
            }
        }
    }
    let elapsed = duration.as_secs_f64();
    Ok(samples
        .into_iter()
        .map(|mut s| {
            s.sort_unstable();
            Stats {
                requests: s.len() as u64,
                rps: s.len() as f64 / elapsed,
                p50_ms: percentile(&s, 0.50),
                p99_ms: percentile(&s, 0.99),
            }
        })
        .collect())
}

/// The `q` quantile of sorted microsecond samples, in milliseconds.
pub fn percentile(sorted_us: &[u32], q: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted_us.len() as f64 - 1.0) * q).round() as usize;
    f64::from(sorted_us[idx.min(sorted_us.len() - 1)]) / 1000.0
}

enum ConnScript {
    Fixed(Vec<u8>),
    Refresh { path: String, token: String },
}

type ConnResult = crate::Result<(u64, Vec<u32>), Box<dyn std::error::Error + Send + Sync>>;

async fn connection(
    addr: SocketAddr,
    mut script: ConnScript,
    measure_from: Instant,
    end: Instant,
) -> ConnResult {
    let mut stream = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(addr)).await??;
    stream.set_nodelay(true)?;
    let mut buf = Vec::with_capacity(8192);
    let mut samples = Vec::with_capacity(1 << 16);
    let mut measured = 0u64;
    for _ in 0..MAX_REQUESTS_PER_CONNECTION {
        let sent = Instant::now();
        if sent >= end {
            break;
        }
        let request = match &script {
            ConnScript::Fixed(req) => std::borrow::Cow::Borrowed(req.as_slice()),
            ConnScript::Refresh { path, token } => std::borrow::Cow::Owned(post_json(
                path,
                &format!(r#"{{"refreshToken":"{token}"}}"#),
            )),
        };
        let body = exchange(&mut stream, &request, &mut buf).await?;
        let done = Instant::now();
        if let ConnScript::Refresh { token, .. } = &mut script {
            *token = refresh_token_of(&buf[body.clone()])?;
        }
        buf.drain(..body.end);
        if sent >= measure_from && done <= end {
            measured += 1;
            if samples.len() < MAX_SAMPLES_PER_CONNECTION {
                let us = done.duration_since(sent).as_micros();
                samples.push(u32::try_from(us).unwrap_or(u32::MAX));
            }
        }
    }
    Ok((measured, samples))
}

/// The new refresh token in a refresh response's envelope.
fn refresh_token_of(body: &[u8]) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    let value: serde_json::Value = serde_json::from_slice(body)?;
    value["data"]["refreshToken"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| "no refreshToken in the refresh response".into())
}

/// Send `request` and read its response into `buf`: the range of the body
/// in `buf`. A status other than 2xx is an error (the run fails).
async fn exchange(
    stream: &mut TcpStream,
    request: &[u8],
    buf: &mut Vec<u8>,
) -> Result<std::ops::Range<usize>, Box<dyn std::error::Error + Send + Sync>> {
    tokio::time::timeout(IO_TIMEOUT, stream.write_all(request)).await??;
    let (status, body) = read_response(stream, buf).await?;
    if !(200..300).contains(&status) {
        return Err(format!("HTTP {status}: {}", String::from_utf8_lossy(&buf[body])).into());
    }
    Ok(body)
}

/// Read one response into `buf` (which may hold leftovers); its status and
/// the range of its body in `buf`.
pub async fn read_response(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> Result<(u16, std::ops::Range<usize>), Box<dyn std::error::Error + Send + Sync>> {
    let mut head_end = None;
    let mut scanned = 0;
    for _ in 0..MAX_RESPONSE {
        if let Some(pos) = find(&buf[scanned..], b"\r\n\r\n") {
            head_end = Some(scanned + pos + 4);
            break;
        }
        scanned = buf.len().saturating_sub(3);
        fill(stream, buf).await?;
    }
    let head_end = head_end.ok_or("response head too long")?;
    let head = std::str::from_utf8(&buf[..head_end])?;
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("malformed status line")?;
    let length = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())
                .flatten()
        })
        .ok_or("response without Content-Length")?;
    if length > MAX_RESPONSE {
        return Err("response too large".into());
    }
    for _ in 0..MAX_RESPONSE {
        if buf.len() >= head_end + length {
            break;
        }
        fill(stream, buf).await?;
    }
    Ok((status, head_end..head_end + length))
}

/// The `Set-Cookie` name=value pair of a response head, if any.
pub fn set_cookie(head: &[u8]) -> Option<String> {
    let head = std::str::from_utf8(head).ok()?;
    head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("set-cookie")
            .then(|| value.trim().split(';').next().unwrap_or("").to_owned())
    })
}

async fn fill(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    if buf.len() > MAX_RESPONSE * 2 {
        return Err("response too large".into());
    }
    let mut chunk = [0u8; 8192];
    let n = tokio::time::timeout(IO_TIMEOUT, stream.read(&mut chunk)).await??;
    if n == 0 {
        return Err("connection closed by the server".into());
    }
    buf.extend_from_slice(&chunk[..n]);
    Ok(())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// One request on a fresh connection: status, head and body.
pub async fn once(
    addr: SocketAddr,
    request: &[u8],
) -> Result<(u16, Vec<u8>, Vec<u8>), Box<dyn std::error::Error + Send + Sync>> {
    let mut stream = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(addr)).await??;
    tokio::time::timeout(IO_TIMEOUT, stream.write_all(request)).await??;
    let mut buf = Vec::new();
    let (status, body) = read_response(&mut stream, &mut buf).await?;
    Ok((status, buf[..body.start].to_vec(), buf[body].to_vec()))
}
