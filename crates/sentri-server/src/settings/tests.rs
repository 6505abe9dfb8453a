//! Tests of settings parsing and validation.

use super::*;

const SECRET: &str = "0123456789abcdef0123456789abcdef";
/// 64 bytes: long enough for HS512.
const SECRET_512: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn load(env: &[(&str, &str)]) -> Result<Settings, SettingsError> {
    Settings::from_sources(env.iter().copied(), None)
}

fn err_name(env: &[(&str, &str)]) -> String {
    load(env).unwrap_err().name().to_owned()
}

#[test]
fn defaults() {
    let s = load(&[]).unwrap();
    assert_eq!(s.bind.to_string(), "127.0.0.1:3000");
    assert_eq!(s.database_url.expose(), DEFAULT_DATABASE_URL);
    assert_eq!(s.roles, ["user", "admin"]);
    assert_eq!(s.cookies, CookieMode::Off);
    assert!(s.cookie_secure);
    assert_eq!(s.framework, Framework::Axum);
    let c = s.core_config().unwrap();
    assert_eq!(c.algorithm(), Algorithm::EdDSA);
    assert_eq!(c.default_role(), "user");
    assert_eq!(c.admin_role(), "admin");
}

#[test]
fn env_values_are_parsed() {
    let s = load(&[
        ("SENTRI_BIND", "0.0.0.0:8080"),
        ("SENTRI_ROLES", "member, admin ,auditor"),
        ("SENTRI_DEFAULT_ROLE", "member"),
        ("SENTRI_SECRET", SECRET_512),
        ("SENTRI_ALGORITHM", "HS512"),
        ("SENTRI_ACCESS_TTL", "5m"),
        ("SENTRI_REFRESH_TTL", "3600"),
        ("SENTRI_REUSE_GRACE", "1s"),
        ("SENTRI_COOKIES", "both"),
        ("SENTRI_COOKIE_SECURE", "false"),
        ("SENTRI_LOGIN_MAX_FAILURES", "3"),
        ("SENTRI_LOG", "sentri=debug,info"),
        ("SENTRI_API_KEY", "an-api-key-of-some-length"),
        ("SENTRI_TRUSTED_PROXIES", "10.0.0.1, ::1"),
        ("SENTRI_ISSUER", " https://auth.example.com "),
        ("SENTRI_AUDIENCE", "api.example.com"),
    ])
    .unwrap();
    assert_eq!(s.roles, ["member", "admin", "auditor"]);
    assert_eq!(s.cookies, CookieMode::Both);
    assert!(!s.cookie_secure);
    let c = s.core_config().unwrap();
    assert_eq!(c.algorithm(), Algorithm::HS512);
    assert_eq!(c.default_role(), "member");
    assert_eq!(c.access_ttl(), Duration::from_secs(300));
    assert_eq!(c.refresh_ttl(), Duration::from_secs(3600));
    assert_eq!(c.throttle().max_failures_per_identifier, 3);
    assert_eq!(c.cookies().transport, CookieTransport::Both);
    assert!(!c.cookies().secure);
    assert!(c.has_api_key());
    assert_eq!(c.trusted_proxies().len(), 2);
    assert_eq!(c.issuer(), Some("https://auth.example.com"));
    assert_eq!(c.audience(), Some("api.example.com"));
}

#[test]
fn issuer_and_audience_are_unset_by_default() {
    let c = load(&[]).unwrap().core_config().unwrap();
    assert_eq!(c.issuer(), None);
    assert_eq!(c.audience(), None);
}

#[test]
fn hmac_secrets_must_fit_the_algorithm() {
    // 32 bytes: enough for HS256, not for HS384 or HS512.
    assert!(load(&[("SENTRI_SECRET", SECRET)]).is_ok());
    for alg in ["HS384", "HS512"] {
        let e = load(&[("SENTRI_SECRET", SECRET), ("SENTRI_ALGORITHM", alg)]).unwrap_err();
        assert_eq!(e.name(), "SENTRI_SECRET", "{alg}");
        assert!(e.problem().contains(&format!("bytes for {alg}")), "{e}");
    }
    assert!(
        load(&[
            ("SENTRI_SECRET", &SECRET_512[..48]),
            ("SENTRI_ALGORITHM", "HS384")
        ])
        .is_ok()
    );
    assert!(load(&[("SENTRI_SECRET", SECRET_512), ("SENTRI_ALGORITHM", "HS512")]).is_ok());
    let e = load(&[("SENTRI_ALGORITHM", "HS512")]).unwrap_err();
    assert_eq!(e.name(), "SENTRI_ALGORITHM");
    assert!(e.problem().contains("at least 64 bytes"), "{e}");
}

#[test]
fn every_bad_value_names_its_variable() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("SENTRI_BIND", "localhost")], "SENTRI_BIND"),
        (
            &[("SENTRI_DATABASE_URL", "oracle://x")],
            "SENTRI_DATABASE_URL",
        ),
        (
            &[("SENTRI_REDIS_URL", "http://127.0.0.1")],
            "SENTRI_REDIS_URL",
        ),
        (
            &[("SENTRI_REDIS_PREFIX", "has space:")],
            "SENTRI_REDIS_PREFIX",
        ),
        (&[("SENTRI_SESSION_CHECK", "never")], "SENTRI_SESSION_CHECK"),
        (
            &[("SENTRI_REGISTER_MAX_PER_HOUR", "ten")],
            "SENTRI_REGISTER_MAX_PER_HOUR",
        ),
        (&[("SENTRI_HASH_MAX_WAIT", "soon")], "SENTRI_HASH_MAX_WAIT"),
        (&[("SENTRI_HASH_MAX_WAIT", "11m")], "SENTRI_HASH_MAX_WAIT"),
        (
            &[("SENTRI_SESSION_CHECK", "cached:soon")],
            "SENTRI_SESSION_CHECK",
        ),
        (
            &[("SENTRI_SESSION_CHECK", "cached:2h")],
            "SENTRI_SESSION_CHECK",
        ),
        (
            &[("SENTRI_SESSION_CHECK", "cached:0s")],
            "SENTRI_SESSION_CHECK",
        ),
        (&[("SENTRI_ROLES", " , ")], "SENTRI_ROLES"),
        (&[("SENTRI_ROLES", "has space")], "SENTRI_ROLES"),
        (&[("SENTRI_DEFAULT_ROLE", "root")], "SENTRI_DEFAULT_ROLE"),
        (&[("SENTRI_API_KEY", "short")], "SENTRI_API_KEY"),
        (&[("SENTRI_SECRET", "short")], "SENTRI_SECRET"),
        (
            &[("SENTRI_SECRET", SECRET), ("SENTRI_ALGORITHM", "EdDSA")],
            "SENTRI_SECRET",
        ),
        (&[("SENTRI_ALGORITHM", "HS256")], "SENTRI_ALGORITHM"),
        (&[("SENTRI_ALGORITHM", "none")], "SENTRI_ALGORITHM"),
        (&[("SENTRI_ACCESS_TTL", "soon")], "SENTRI_ACCESS_TTL"),
        (&[("SENTRI_ACCESS_TTL", "2d")], "SENTRI_ACCESS_TTL"),
        (&[("SENTRI_REFRESH_TTL", "1m")], "SENTRI_REFRESH_TTL"),
        (&[("SENTRI_REUSE_GRACE", "1h")], "SENTRI_REUSE_GRACE"),
        (&[("SENTRI_COOKIES", "yes")], "SENTRI_COOKIES"),
        (&[("SENTRI_COOKIE_SECURE", "maybe")], "SENTRI_COOKIE_SECURE"),
        (
            &[("SENTRI_LOGIN_MAX_FAILURES", "-1")],
            "SENTRI_LOGIN_MAX_FAILURES",
        ),
        (&[("SENTRI_LOG", "a=b=c")], "SENTRI_LOG"),
        (
            &[("SENTRI_TRUSTED_PROXIES", "10.0.0.0/33")],
            "SENTRI_TRUSTED_PROXIES",
        ),
        (
            &[("SENTRI_TRUSTED_PROXIES", "10.0.0.1, proxy.internal")],
            "SENTRI_TRUSTED_PROXIES",
        ),
        (
            &[("SENTRI_IDEMPOTENCY_LOCK_TTL", "soon")],
            "SENTRI_IDEMPOTENCY_LOCK_TTL",
        ),
        (
            &[("SENTRI_IDEMPOTENCY_LOCK_TTL", "0s")],
            "SENTRI_IDEMPOTENCY_LOCK_TTL",
        ),
        (&[("SENTRI_FRAMEWORK", "actix")], "SENTRI_FRAMEWORK"),
        (&[("SENTRI_ISSUER", "a\u{7}b")], "SENTRI_ISSUER"),
        (&[("SENTRI_AUDIENCE", " ")], "SENTRI_AUDIENCE"),
        (&[("SENTRI_SECRET", "")], "SENTRI_SECRET"),
    ];
    for (env, name) in cases {
        assert_eq!(err_name(env), *name, "{env:?}");
    }
}

#[test]
fn poem_is_a_framework() {
    assert_eq!(
        load(&[("SENTRI_FRAMEWORK", "poem")]).unwrap().framework,
        Framework::Poem
    );
    assert_eq!(
        load(&[("SENTRI_FRAMEWORK", "axum")]).unwrap().framework,
        Framework::Axum
    );
}

#[test]
fn redis_and_session_check() {
    let s = load(&[]).unwrap();
    assert!(s.redis_url.is_none());
    assert_eq!(s.redis_prefix, "sentri:");
    assert_eq!(s.session_check, SessionCheck::Always);
    assert_eq!(
        s.core_config().unwrap().session_check(),
        SessionCheck::Always
    );

    let s = load(&[
        ("SENTRI_REDIS_URL", "redis://:pa55word@127.0.0.1:6379/2"),
        ("SENTRI_REDIS_PREFIX", "app:auth:"),
        ("SENTRI_SESSION_CHECK", "cached:30s"),
    ])
    .unwrap();
    assert_eq!(
        s.redis_url.as_ref().map(Secret::expose),
        Some("redis://:pa55word@127.0.0.1:6379/2")
    );
    assert_eq!(
        s.redis_url_redacted().as_deref(),
        Some("redis://:***@127.0.0.1:6379/2")
    );
    assert!(!format!("{s:?}").contains("pa55word"));
    assert_eq!(s.redis_prefix, "app:auth:");
    let cached = SessionCheck::Cached(Duration::from_secs(30));
    assert_eq!(s.session_check, cached);
    assert_eq!(s.core_config().unwrap().session_check(), cached);
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);

    let s = load(&[("SENTRI_SESSION_CHECK", "stateless")]).unwrap();
    assert_eq!(s.session_check, SessionCheck::Stateless);
    // Cached without Redis is allowed (local invalidation only).
    let s = load(&[("SENTRI_SESSION_CHECK", "cached:1m")]).unwrap();
    assert_eq!(
        s.session_check,
        SessionCheck::Cached(Duration::from_secs(60))
    );

    let s = load(&[("SENTRI_REDIS_PREFIX", "x:")]).unwrap();
    assert!(
        s.warnings[0].contains("SENTRI_REDIS_PREFIX"),
        "{:?}",
        s.warnings
    );

    let e = load(&[("SENTRI_REDIS_URL", "rediss://u:hunter2@h:6380")]);
    if cfg!(feature = "rustls") {
        assert!(e.is_ok());
    } else {
        let e = e.unwrap_err();
        assert_eq!(e.name(), "SENTRI_REDIS_URL");
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }
    let e = load(&[("SENTRI_REDIS_URL", "tcp://u:hunter2@h:6380")]).unwrap_err();
    assert!(!e.to_string().contains("hunter2"), "{e}");
}

#[test]
fn file_values_and_env_override() {
    let file = r#"
        bind = "127.0.0.1:4000"
        roles = ["reader", "admin"]
        access_ttl = 60
        cookie_secure = false
        cookies = "refresh"
    "#;
    let path = Path::new("/etc/sentri.toml");
    let s =
        Settings::from_sources([("SENTRI_BIND", "127.0.0.1:5000")], Some((path, file))).unwrap();
    assert_eq!(s.bind.to_string(), "127.0.0.1:5000");
    assert_eq!(s.roles, ["reader", "admin"]);
    assert_eq!(s.access_ttl, Some(Duration::from_secs(60)));
    assert!(!s.cookie_secure);
    assert_eq!(s.cookies, CookieMode::Refresh);

    let e = Settings::from_sources(
        Vec::<(&str, &str)>::new(),
        Some((path, "access_ttl = \"x\"")),
    )
    .unwrap_err();
    assert_eq!(
        e.name(),
        "SENTRI_ACCESS_TTL (`access_ttl` in /etc/sentri.toml)"
    );
    let e =
        Settings::from_sources(Vec::<(&str, &str)>::new(), Some((path, "colour = 1"))).unwrap_err();
    assert!(e.problem().contains("unknown key `colour`"), "{e}");
    let e =
        Settings::from_sources(Vec::<(&str, &str)>::new(), Some((path, "bind = "))).unwrap_err();
    assert!(e.name().starts_with("configuration file"), "{e}");
}

#[test]
fn unknown_sentri_variables_warn() {
    let s = load(&[("SENTRI_COOKIE", "both"), ("HOME", "/root")]).unwrap();
    assert_eq!(s.warnings.len(), 1);
    assert!(s.warnings[0].starts_with("SENTRI_COOKIE "));
}

#[test]
fn secrets_never_in_debug_or_errors() {
    let s = load(&[
        ("SENTRI_SECRET", SECRET),
        (
            "SENTRI_DATABASE_URL",
            "postgres://app:hunter2hunter2@db/auth",
        ),
    ])
    .unwrap();
    let dbg = format!("{s:?}");
    assert!(!dbg.contains(SECRET) && !dbg.contains("hunter2"), "{dbg}");
    assert_eq!(s.database_url_redacted(), "postgres://app:***@db/auth");
    let e = load(&[("SENTRI_SECRET", "a-secret-that-is-too-short")]).unwrap_err();
    assert!(!e.to_string().contains("a-secret-that-is-too-short"));
}

#[test]
fn redaction() {
    assert_eq!(
        redact_url("sqlite://sentri.db?mode=rwc"),
        "sqlite://sentri.db?mode=rwc"
    );
    assert_eq!(redact_url("mysql://root@h:3306/x"), "mysql://root@h:3306/x");
    assert_eq!(redact_url("postgres://u:p@ss@h/x"), "postgres://u:***@h/x");
}

#[test]
fn connection_limits_default_and_parse() {
    let s = load(&[]).unwrap();
    assert_eq!(s.limits, crate::conn::Limits::default());
    assert_eq!(s.limits.header_read_timeout, Duration::from_secs(10));
    assert_eq!(s.limits.body_read_timeout, Duration::from_secs(10));
    assert_eq!(s.limits.idle_timeout, Duration::from_secs(60));
    assert_eq!(s.limits.request_timeout, Duration::from_secs(30));
    assert_eq!(s.limits.max_connections, 512);
    // The default request timeout is below the default lock TTL.
    assert!(s.limits.request_timeout < s.core_config().unwrap().idempotency().lock_ttl);
    let s = load(&[
        ("SENTRI_HEADER_READ_TIMEOUT", "2s"),
        ("SENTRI_BODY_READ_TIMEOUT", "3"),
        ("SENTRI_IDLE_TIMEOUT", "5m"),
        ("SENTRI_REQUEST_TIMEOUT", "59s"),
        ("SENTRI_MAX_CONNECTIONS", " 64 "),
    ])
    .unwrap();
    assert_eq!(
        s.limits,
        crate::conn::Limits {
            header_read_timeout: Duration::from_secs(2),
            body_read_timeout: Duration::from_secs(3),
            idle_timeout: Duration::from_secs(300),
            request_timeout: Duration::from_secs(59),
            max_connections: 64,
        }
    );
    for (name, value) in [
        ("SENTRI_HEADER_READ_TIMEOUT", "0s"),
        ("SENTRI_BODY_READ_TIMEOUT", "soon"),
        ("SENTRI_IDLE_TIMEOUT", "0"),
        ("SENTRI_REQUEST_TIMEOUT", "60s"),
        ("SENTRI_REQUEST_TIMEOUT", "0s"),
        ("SENTRI_MAX_CONNECTIONS", "0"),
        ("SENTRI_MAX_CONNECTIONS", "many"),
    ] {
        assert_eq!(err_name(&[(name, value)]), name, "{name}={value}");
    }
    let err = load(&[("SENTRI_REQUEST_TIMEOUT", "60s")]).unwrap_err();
    assert!(
        err.problem().contains("idempotency lock TTL (60s)"),
        "{err}"
    );
}

#[test]
fn cookie_attributes_and_origins_reach_the_library() {
    let s = load(&[]).unwrap();
    let c = s.core_config().unwrap();
    assert_eq!(c.cookies().same_site, SameSite::Strict);
    assert!(!c.cookies().host_prefix);
    assert!(!c.cookies().access_http_only);
    assert!(c.cookies().allowed_origins.is_empty());
    let s = load(&[
        ("SENTRI_COOKIES", "both"),
        ("SENTRI_COOKIE_SAMESITE", "Lax"),
        ("SENTRI_COOKIE_HOST_PREFIX", "yes"),
        ("SENTRI_ACCESS_COOKIE_HTTPONLY", "true"),
        (
            "SENTRI_ALLOWED_ORIGINS",
            "https://app.example.com, http://localhost:5173/ ,",
        ),
    ])
    .unwrap();
    let c = s.core_config().unwrap();
    let cookies = c.cookies();
    assert_eq!(cookies.same_site, SameSite::Lax);
    assert!(cookies.host_prefix);
    assert_eq!(cookies.refresh_cookie_name(), "__Host-refresh_token");
    assert!(cookies.access_http_only);
    assert_eq!(
        cookies.allowed_origins,
        ["https://app.example.com", "http://localhost:5173"]
    );
    assert_eq!(
        load(&[("SENTRI_COOKIE_SAMESITE", "none")])
            .unwrap()
            .core_config()
            .unwrap()
            .cookies()
            .same_site,
        SameSite::None
    );
    for (env, name) in [
        (
            &[("SENTRI_COOKIE_SAMESITE", "loose")][..],
            "SENTRI_COOKIE_SAMESITE",
        ),
        (
            &[
                ("SENTRI_COOKIE_SAMESITE", "none"),
                ("SENTRI_COOKIE_SECURE", "false"),
            ][..],
            "SENTRI_COOKIE_SAMESITE",
        ),
        (
            &[
                ("SENTRI_COOKIE_HOST_PREFIX", "true"),
                ("SENTRI_COOKIE_SECURE", "false"),
            ][..],
            "SENTRI_COOKIE_HOST_PREFIX",
        ),
        (
            &[("SENTRI_COOKIE_HOST_PREFIX", "sure")][..],
            "SENTRI_COOKIE_HOST_PREFIX",
        ),
        (
            &[("SENTRI_ACCESS_COOKIE_HTTPONLY", "2")][..],
            "SENTRI_ACCESS_COOKIE_HTTPONLY",
        ),
        (
            &[("SENTRI_ALLOWED_ORIGINS", "app.example.com")][..],
            "SENTRI_ALLOWED_ORIGINS",
        ),
        (
            &[("SENTRI_ALLOWED_ORIGINS", "ftp://app.example.com")][..],
            "SENTRI_ALLOWED_ORIGINS",
        ),
    ] {
        assert_eq!(err_name(env), name, "{env:?}");
    }
}

#[test]
fn trusted_proxies_take_addresses_and_networks() {
    let s = load(&[(
        "SENTRI_TRUSTED_PROXIES",
        "10.0.0.1, 172.16.0.0/12 ,fd00::/8,::1",
    )])
    .unwrap();
    let c = s.core_config().unwrap();
    let t = c.trusted_proxies();
    assert_eq!(t.len(), 4);
    let trusted = |ip: &str| t.iter().any(|n| n.contains(ip.parse().unwrap()));
    assert!(trusted("10.0.0.1"));
    assert!(!trusted("10.0.0.2"), "a plain address is only itself");
    assert!(trusted("172.31.255.255"));
    assert!(!trusted("172.32.0.1"));
    assert!(trusted("fd12::1"));
    assert!(trusted("::1"));
    // Each bad entry is named, with the reason, on one line.
    for (bad, says) in [
        ("10.0.0.0/33", "at most 32"),
        ("10.0.0.1/8", "host bits set (the network is 10.0.0.0/8)"),
        ("proxy.internal", "not an IP address or CIDR network"),
        ("10.0.0.0/x", "prefix length must be a number"),
    ] {
        let err = load(&[("SENTRI_TRUSTED_PROXIES", bad)]).unwrap_err();
        assert_eq!(err.name(), "SENTRI_TRUSTED_PROXIES");
        assert!(err.problem().contains(says), "{bad}: {err}");
        assert!(!err.to_string().contains('\n'), "{err}");
    }
}

#[test]
fn idempotency_lock_ttl_reaches_the_library() {
    let s = load(&[]).unwrap();
    assert_eq!(s.idempotency_lock_ttl, Duration::from_secs(60));
    assert_eq!(
        s.core_config().unwrap().idempotency().lock_ttl,
        Duration::from_secs(60)
    );
    let s = load(&[("SENTRI_IDEMPOTENCY_LOCK_TTL", "2m")]).unwrap();
    assert_eq!(s.idempotency_lock_ttl, Duration::from_secs(120));
    assert_eq!(
        s.core_config().unwrap().idempotency().lock_ttl,
        Duration::from_secs(120)
    );
}

#[test]
fn the_session_idle_timeout_is_off_by_default_and_validated() {
    assert_eq!(
        load(&[])
            .unwrap()
            .core_config()
            .unwrap()
            .session_idle_timeout(),
        None
    );
    let off = load(&[("SENTRI_SESSION_IDLE_TIMEOUT", "off")]).unwrap();
    assert_eq!(off.core_config().unwrap().session_idle_timeout(), None);
    let on = load(&[("SENTRI_SESSION_IDLE_TIMEOUT", "2h")]).unwrap();
    assert_eq!(
        on.core_config().unwrap().session_idle_timeout(),
        Some(Duration::from_secs(7200))
    );
    for bad in ["soon", "10m", "-1"] {
        assert_eq!(
            err_name(&[("SENTRI_SESSION_IDLE_TIMEOUT", bad)]),
            "SENTRI_SESSION_IDLE_TIMEOUT",
            "{bad}"
        );
    }
}

#[test]
fn registration_limit_and_hashing_wait() {
    let s = Settings::from_sources(Vec::<(&str, &str)>::new(), None).unwrap();
    let c = s.core_config().unwrap();
    assert_eq!(c.throttle().max_registrations_per_ip, 10);
    assert_eq!(c.throttle().registration_window, Duration::from_secs(3600));
    assert_eq!(c.password_policy().wait_bound(), Duration::from_secs(5));
    let s = Settings::from_sources(
        [
            ("SENTRI_REGISTER_MAX_PER_HOUR", "0"),
            ("SENTRI_HASH_MAX_WAIT", "2s"),
        ],
        None,
    )
    .unwrap();
    let c = s.core_config().unwrap();
    assert_eq!(c.throttle().max_registrations_per_ip, 0);
    assert_eq!(c.throttle().max_failures_per_identifier, 10);
    assert_eq!(c.password_policy().wait_bound(), Duration::from_secs(2));
}
