//! `bench-run`: run every scenario, print the table, write
//! `<target>/bench/summary.json` and `requests.svg`.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sentri_sea_orm::sea_orm::ConnectionTrait;

use super::load::{self, Load, Script, Stats};

/// The `GET /me` scenarios, in the order they run.
const HTTP: &[&str] = &[
    "bare",
    "peer_jwt",
    "sentri_stateless_hs256",
    "sentri_stateless_eddsa",
    "peer_axum_login",
    "peer_jwt_pg",
    "sentri_always_pg",
    "sentri_cached",
    "sentri_always_sqlite",
    "poem_bare",
    "poem_stateless_hs256",
    "poem_always_pg",
];
/// The login scenarios, measured together one request at a time in turn:
/// `login_bare` is a hand-written handler doing only the argon2id verify,
/// the floor every login pays.
const LOGINS: &[&str] = &["login_bare", "login_memory", "login"];
/// Concurrent keep-alive connections of the `GET /me` and refresh loads.
const CONNECTIONS: usize = 32;
/// How long a child may take to get ready (`memory_1m` fills its store).
const READY_TIMEOUT: Duration = Duration::from_secs(180);
const ARGON2_PASSWORD: &[u8] = b"correct horse battery staple";

/// The durations of one run.
#[derive(Debug, Clone, Copy)]
struct Plan {
    warmup: Duration,
    duration: Duration,
    /// Rounds of the `GET /me` scenarios (see [`http_in_slices`]).
    slices: u32,
    /// Warm-up before every slice but a scenario's first.
    slice_warmup: Duration,
}

pub fn run(args: super::Args) -> crate::Result {
    let plan = if args.quick {
        Plan {
            warmup: Duration::from_millis(500),
            duration: Duration::from_secs(3),
            slices: 3,
            slice_warmup: Duration::from_millis(100),
        }
    } else {
        Plan {
            warmup: Duration::from_secs(2),
            duration: Duration::from_secs(12),
            slices: 6,
            slice_warmup: Duration::from_millis(250),
        }
    };
    let out_dir = bench_dir();
    std::fs::create_dir_all(&out_dir)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let db_name = format!("sentri_bench_{}", std::process::id());
    let admin_url = args.database_url.clone();
    let bench_url = database_url_with_name(&admin_url, &db_name)?;
    runtime.block_on(create_database(&admin_url, &db_name, &bench_url))?;
    let sqlite_path = out_dir.join(format!("sqlite-{}.db", std::process::id()));

    let started = Instant::now();
    let ctx = Ctx {
        plan,
        bench_url,
        sqlite_path: sqlite_path.clone(),
        only: args.only.clone(),
    };
    let result = runtime.block_on(all(&ctx));

    // Clean up whatever happened.
    let dropped = runtime.block_on(drop_database(&admin_url, &db_name));
    for suffix in ["", "-wal", "-shm"] {
        let mut p = sqlite_path.clone().into_os_string();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
    let results = result?;
    dropped?;

    let summary = summary(&results);
    print_table(&results, &summary);
    let json_path = out_dir.join("summary.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&summary)?)?;
    let svg_path = out_dir.join("requests.svg");
    super::chart::draw(&svg_path, &results, args.quick)?;
    println!();
    println!(
        "{} run in {:.0} s",
        if args.quick { "quick" } else { "full" },
        started.elapsed().as_secs_f64()
    );
    println!("summary: {}", json_path.display());
    println!("chart:   {}", svg_path.display());
    Ok(())
}

struct Ctx {
    plan: Plan,
    bench_url: String,
    sqlite_path: PathBuf,
    only: Vec<String>,
}

impl Ctx {
    fn wants(&self, name: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| o == name)
    }
}

/// Every figure of one run.
#[derive(Debug, Default)]
pub struct Results {
    /// Name → stats, in run order.
    pub scenarios: Vec<(String, Stats)>,
    pub memory_1m_mib: Option<f64>,
}

impl Results {
    fn get(&self, name: &str) -> Option<&Stats> {
        self.scenarios
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s)
    }
}

async fn all(ctx: &Ctx) -> crate::Result<Results> {
    let mut results = Results::default();
    let wanted: Vec<&str> = HTTP
        .iter()
        .copied()
        .chain(LOGINS.iter().copied())
        .chain(["argon2id_verify", "refresh_pg", "memory_1m"])
        .filter(|n| ctx.wants(n))
        .collect();
    let total = wanted.len();
    for (i, name) in wanted.iter().enumerate() {
        let progress = format!("[{:>2}/{total}] {name:<24}", i + 1);
        if (LOGINS.contains(name) || HTTP.contains(name)) && results.get(name).is_some() {
            continue; // measured with the first of its group
        }
        eprint!("{progress} running…\r");
        let stats = match *name {
            "argon2id_verify" => argon2_verify(ctx.plan).await?,
            n if HTTP.contains(&n) => {
                let names: Vec<&str> = HTTP.iter().copied().filter(|n| ctx.wants(n)).collect();
                for (n, stats) in http_in_slices(ctx, &names).await? {
                    eprintln!(
                        "[{:>2}/{total}] {n:<24} {:>9.0} req/s   p50 {:>7.3} ms   p99 {:>7.3} ms",
                        wanted.iter().position(|w| *w == n).map_or(0, |p| p + 1),
                        stats.rps,
                        stats.p50_ms,
                        stats.p99_ms
                    );
                    results.scenarios.push((n.to_owned(), stats));
                }
                continue;
            }
            n if LOGINS.contains(&n) => {
                // The login scenarios run together, taking turns.
                let names: Vec<&str> = LOGINS.iter().copied().filter(|n| ctx.wants(n)).collect();
                let mut servers = Vec::with_capacity(names.len());
                for n in &names {
                    let server = Server::start(ctx, n)?;
                    let body = server.body.clone().ok_or("login gave no body")?;
                    servers.push((server, load::post_json("/auth/login", &body)));
                }
                let targets: Vec<_> = servers
                    .iter()
                    .map(|(server, request)| (server.addr, request.clone()))
                    .collect();
                let all = load::drive_in_turn(&targets, ctx.plan.warmup, ctx.plan.duration)
                    .await
                    .map_err(|e| format!("{name}: {e}"))?;
                drop(servers);
                for (n, stats) in names.iter().zip(all) {
                    eprintln!(
                        "[{:>2}/{total}] {n:<24} {:>9.0} req/s   p50 {:>7.3} ms   p99 {:>7.3} ms",
                        wanted.iter().position(|w| w == n).map_or(0, |p| p + 1),
                        stats.rps,
                        stats.p50_ms,
                        stats.p99_ms
                    );
                    results.scenarios.push(((*n).to_owned(), stats));
                }
                continue;
            }
            "memory_1m" => {
                let server = Server::start(ctx, name)?;
                let mib = server
                    .metrics
                    .get("memory_1m_mib")
                    .copied()
                    .ok_or("memory_1m reported no figure")?;
                results.memory_1m_mib = Some(mib);
                eprintln!("{progress} {mib:>9.1} MiB resident for 1 000 000 sessions");
                continue;
            }
            _ => {
                let server = Server::start(ctx, name)?;
                let (load, script) = match *name {
                    "refresh_pg" => (
                        Load {
                            connections: CONNECTIONS,
                            warmup: ctx.plan.warmup,
                            duration: ctx.plan.duration,
                        },
                        Script::Refresh {
                            path: "/auth/refresh".to_owned(),
                            tokens: server.tokens.clone(),
                        },
                    ),
                    other => return Err(format!("no load for scenario {other}").into()),
                };
                let stats = load::drive(server.addr, load, script)
                    .await
                    .map_err(|e| format!("{name}: {e}"))?;
                drop(server);
                stats
            }
        };
        eprintln!(
            "{progress} {:>9.0} req/s   p50 {:>7.3} ms   p99 {:>7.3} ms",
            stats.rps, stats.p50_ms, stats.p99_ms
        );
        results.scenarios.push(((*name).to_owned(), stats));
    }
    Ok(results)
}

/// The `GET /me` scenarios: every server up at once, then `plan.slices`
/// rounds in which each scenario in turn gets an equal slice of its
/// duration (after a short warm-up; the first slice gets the full one).
/// Slow drift of the machine (other tenants, frequency, the page cache)
/// then falls on every scenario alike instead of on whichever ran during
/// it, and the ratios between rows hold from run to run.
async fn http_in_slices<'a>(ctx: &Ctx, names: &[&'a str]) -> crate::Result<Vec<(&'a str, Stats)>> {
    let mut servers = Vec::with_capacity(names.len());
    for name in names {
        eprint!("starting {name:<24}\r");
        let server = Server::start(ctx, name)?;
        let script = Script::Fixed(load::get(
            "/me",
            server.header.as_deref().unwrap_or_default(),
        ));
        servers.push((server, script));
    }
    let plan = ctx.plan;
    let slice = plan.duration / plan.slices;
    let mut measured: Vec<(u64, Vec<u32>)> = vec![(0, Vec::new()); names.len()];
    for round in 0..plan.slices {
        for (i, (server, script)) in servers.iter().enumerate() {
            eprint!(
                "round {}/{} {:<24} running…\r",
                round + 1,
                plan.slices,
                names[i]
            );
            let load = Load {
                connections: CONNECTIONS,
                warmup: if round == 0 {
                    plan.warmup
                } else {
                    plan.slice_warmup
                },
                duration: slice,
            };
            let (count, mut samples) = load::drive_samples(server.addr, load, script)
                .await
                .map_err(|e| format!("{}: {e}", names[i]))?;
            measured[i].0 += count;
            measured[i].1.append(&mut samples);
        }
    }
    drop(servers);
    Ok(names
        .iter()
        .zip(measured)
        .map(|(name, (count, samples))| (*name, Stats::of(count, samples, slice * plan.slices)))
        .collect())
}

/// A bare argon2id verify (m=19456 KiB, t=2, p=1), one at a time, for the
/// same duration as the other loads.
async fn argon2_verify(plan: Plan) -> crate::Result<Stats> {
    let task = tokio::task::spawn_blocking(move || -> Result<Stats, String> {
        let params = argon2::Params::new(19_456, 2, 1, Some(32)).map_err(|e| e.to_string())?;
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let salt = *b"sentri-bench-salt";
        let mut expected = [0u8; 32];
        argon
            .hash_password_into(ARGON2_PASSWORD, &salt, &mut expected)
            .map_err(|e| e.to_string())?;
        let start = Instant::now();
        let measure_from = start + plan.warmup;
        let end = measure_from + plan.duration;
        let mut samples = Vec::new();
        for _ in 0..1_000_000 {
            let t = Instant::now();
            if t >= end {
                break;
            }
            let mut out = [0u8; 32];
            argon
                .hash_password_into(ARGON2_PASSWORD, &salt, &mut out)
                .map_err(|e| e.to_string())?;
            if out != expected {
                return Err("argon2 verify mismatch".to_owned());
            }
            if t >= measure_from {
                let us = t.elapsed().as_micros();
                samples.push(u32::try_from(us).unwrap_or(u32::MAX));
            }
        }
        samples.sort_unstable();
        Ok(Stats {
            requests: samples.len() as u64,
            rps: samples.len() as f64 / plan.duration.as_secs_f64(),
            p50_ms: load::percentile(&samples, 0.5),
            p99_ms: load::percentile(&samples, 0.99),
        })
    });
    Ok(task.await??)
}

/// A scenario's server: a child process of this binary.
struct Server {
    child: Child,
    addr: SocketAddr,
    header: Option<String>,
    body: Option<String>,
    tokens: Vec<String>,
    metrics: BTreeMap<String, f64>,
}

impl Server {
    fn start(ctx: &Ctx, scenario: &str) -> crate::Result<Self> {
        let exe = std::env::current_exe()?;
        let mut cmd = Command::new(exe);
        cmd.args(["bench-serve", scenario, "--port", "0"])
            .arg("--database-url")
            .arg(&ctx.bench_url)
            .arg("--sqlite-path")
            .arg(&ctx.sqlite_path)
            .arg("--sessions")
            .arg(CONNECTIONS.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout of the child")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Server {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            header: None,
            body: None,
            tokens: Vec::new(),
            metrics: BTreeMap::new(),
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(line) => line,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(format!("{scenario}: the server was not ready in time").into());
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = server.child.wait()?;
                    return Err(format!("{scenario}: the server exited ({status})").into());
                }
            };
            let (kind, rest) = line.split_once(' ').unwrap_or((line.as_str(), ""));
            match kind {
                "ready" => {
                    server.addr.set_port(rest.trim().parse()?);
                    return Ok(server);
                }
                "header" => server.header = Some(rest.to_owned()),
                "body" => server.body = Some(rest.to_owned()),
                "token" => server.tokens.push(rest.to_owned()),
                "metric" => {
                    let (name, value) = rest.split_once(' ').ok_or("malformed metric")?;
                    server.metrics.insert(name.to_owned(), value.parse()?);
                }
                _ => return Err(format!("{scenario}: unexpected line {line:?}").into()),
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Closing stdin asks the child to exit; kill it if it does not.
        drop(self.child.stdin.take());
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `<target>/bench`: `$CARGO_TARGET_DIR/bench`, else `<workspace>/target/bench`.
fn bench_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("bench"),
        _ => Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap_or(Path::new("."))
            .join("target")
            .join("bench"),
    }
}

/// `url` with its database name replaced by `name`.
fn database_url_with_name(url: &str, name: &str) -> crate::Result<String> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").ok_or("the database URL has no scheme")? + 3;
    let host_part = &base[scheme_end..];
    let root = match host_part.find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    Ok(match query {
        Some(q) => format!("{root}/{name}?{q}"),
        None => format!("{root}/{name}"),
    })
}

async fn create_database(admin_url: &str, name: &str, bench_url: &str) -> crate::Result {
    let admin = sentri_sea_orm::connect(admin_url)
        .await
        .map_err(|e| format!("PostgreSQL at {admin_url} is unreachable: {e}"))?;
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name}"))
        .await?;
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await?;
    let _ = admin.close().await;
    let db = sentri_sea_orm::connect(bench_url).await?;
    sentri_sea_orm::migrate(&db).await?;
    let _ = db.close().await;
    Ok(())
}

async fn drop_database(admin_url: &str, name: &str) -> crate::Result {
    let admin = sentri_sea_orm::connect(admin_url).await?;
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await?;
    let _ = admin.close().await;
    Ok(())
}

/// A ratio as targets in SPEC §9 read it.
struct Target {
    key: &'static str,
    what: &'static str,
    value: Option<f64>,
    goal: &'static str,
    /// `None`: shown for context, no target.
    met: Option<fn(f64) -> bool>,
}

fn targets(r: &Results) -> Vec<Target> {
    let rps = |n: &str| r.get(n).map(|s| s.rps);
    let ratio = |a: &str, b: &str| Some(rps(a)? / rps(b)?);
    vec![
        Target {
            key: "stateless_vs_bare",
            what: "sentri_stateless_hs256 / bare",
            value: ratio("sentri_stateless_hs256", "bare"),
            goal: ">= 0.90",
            met: Some(|v| v >= 0.90),
        },
        Target {
            key: "always_pg_vs_peer_jwt_pg",
            what: "sentri_always_pg / peer_jwt_pg",
            value: ratio("sentri_always_pg", "peer_jwt_pg"),
            goal: ">= 1.00",
            met: Some(|v| v >= 1.0),
        },
        Target {
            key: "cached_vs_bare",
            what: "sentri_cached / bare",
            value: ratio("sentri_cached", "bare"),
            goal: ">= 0.80",
            met: Some(|v| v >= 0.80),
        },
        Target {
            key: "login_overhead_ms",
            what: "login p50 - login_bare p50",
            value: r
                .get("login")
                .zip(r.get("login_bare"))
                .map(|(l, a)| l.p50_ms - a.p50_ms),
            goal: "<= 1.0",
            met: Some(|v| v <= 1.0),
        },
        Target {
            key: "login_overhead_memory_ms",
            what: "the same on the memory store",
            value: r
                .get("login_memory")
                .zip(r.get("login_bare"))
                .map(|(l, a)| l.p50_ms - a.p50_ms),
            goal: "-",
            met: None,
        },
        Target {
            key: "refresh_pg_per_s",
            what: "refresh_pg req/s",
            value: rps("refresh_pg"),
            goal: ">= 1000",
            met: Some(|v| v >= 1000.0),
        },
        Target {
            key: "memory_1m_mib",
            what: "RSS of 1M sessions, MiB",
            value: r.memory_1m_mib,
            goal: "< 1024",
            met: Some(|v| v < 1024.0),
        },
    ]
}

fn round(v: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (v * f).round() / f
}

fn summary(r: &Results) -> serde_json::Value {
    let bare = r.get("bare").map(|s| s.rps);
    let mut scenarios = serde_json::Map::new();
    for (name, s) in &r.scenarios {
        let mut entry = serde_json::json!({
            "rps": round(s.rps, 1),
            "p50_ms": round(s.p50_ms, 3),
            "p99_ms": round(s.p99_ms, 3),
            "requests": s.requests,
        });
        if let Some(bare) = bare
            && HTTP.contains(&name.as_str())
        {
            entry["vs_bare"] = serde_json::json!(round(s.rps / bare, 3));
        }
        scenarios.insert(name.clone(), entry);
    }
    let mut ratios = serde_json::Map::new();
    for t in targets(r) {
        ratios.insert(
            t.key.to_owned(),
            t.value
                .map_or(serde_json::Value::Null, |v| serde_json::json!(round(v, 3))),
        );
    }
    serde_json::json!({ "scenarios": scenarios, "ratios": ratios })
}

fn print_table(r: &Results, _summary: &serde_json::Value) {
    let bare = r.get("bare").map(|s| s.rps);
    println!();
    println!(
        "| {:<24} | {:>10} | {:>9} | {:>9} | {:>7} |",
        "scenario", "req/s", "p50 ms", "p99 ms", "vs bare"
    );
    println!(
        "|{:-<26}|{:->12}|{:->11}|{:->11}|{:->9}|",
        "", "", "", "", ""
    );
    for (name, s) in &r.scenarios {
        let vs = match bare {
            Some(b) if HTTP.contains(&name.as_str()) => format!("{:.2}", s.rps / b),
            _ => String::new(),
        };
        println!(
            "| {:<24} | {:>10.0} | {:>9.3} | {:>9.3} | {:>7} |",
            name, s.rps, s.p50_ms, s.p99_ms, vs
        );
    }
    if let Some(mib) = r.memory_1m_mib {
        println!(
            "| {:<24} | {:>10} | {:>9} | {:>9} | {:>7} |",
            "memory_1m (MiB RSS)",
            format!("{mib:.1}"),
            "",
            "",
            ""
        );
    }
    println!();
    println!(
        "| {:<24} | {:<32} | {:>9} | {:>8} | {:<4} |",
        "ratio", "from", "value", "target", "met"
    );
    println!(
        "|{:-<26}|{:-<34}|{:->11}|{:->10}|{:-<6}|",
        "", "", "", "", ""
    );
    for t in targets(r) {
        let (value, met) = match t.value {
            Some(v) => (
                format!("{v:.3}"),
                match t.met {
                    Some(met) if met(v) => "yes",
                    Some(_) => "NO",
                    None => "",
                },
            ),
            None => ("-".to_owned(), "-"),
        };
        println!(
            "| {:<24} | {:<32} | {:>9} | {:>8} | {:<4} |",
            t.key, t.what, value, t.goal, met
        );
    }
}
