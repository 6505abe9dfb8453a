//! Tests of configuration validation.

use super::*;

const SECRET: &str = "0123456789abcdef0123456789abcdef";

fn base() -> ConfigBuilder {
    Config::builder()
        .hs256(SECRET)
        .valid_roles(["user", "admin"])
}

fn field_of(err: Error) -> String {
    assert_eq!(err.code().as_str(), "CONFIGURATION_ERROR");
    err.message().split(':').next().unwrap().to_owned()
}

#[test]
fn defaults_are_the_documented_ones() {
    let c = base().build().unwrap();
    assert_eq!(c.algorithm(), Algorithm::HS256);
    assert_eq!(c.access_ttl(), Duration::from_secs(900));
    assert_eq!(c.refresh_ttl(), Duration::from_secs(7 * 86_400));
    assert_eq!(c.reuse_grace(), Duration::from_secs(10));
    assert_eq!(c.default_role(), "user");
    assert_eq!(c.admin_role(), "admin");
    assert_eq!(c.session_check(), SessionCheck::Always);
    assert_eq!(c.throttle().max_failures_per_identifier, 10);
    assert_eq!(c.throttle().max_failures_per_ip, 100);
    assert_eq!(c.idempotency().ttl, Duration::from_secs(300));
    assert_eq!(c.idempotency().header, "X-Idempotency-Key");
}

#[test]
fn duration_syntax() {
    assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
    assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
    assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
    assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
    assert_eq!(parse_duration("42"), Ok(Duration::from_secs(42)));
    for bad in [
        "",
        "m",
        "1.5h",
        "-1s",
        "10w",
        "1 h",
        "99999999999999999999d",
    ] {
        assert!(parse_duration(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn every_bad_value_names_its_field() {
    let cases: Vec<(ConfigBuilder, &str)> = vec![
        (
            Config::builder().hs256("short").valid_roles(["u"]),
            "secret",
        ),
        (
            Config::builder()
                .algorithm(Algorithm::HS512)
                .valid_roles(["u"]),
            "secret",
        ),
        (
            Config::builder()
                .algorithm(Algorithm::EdDSA)
                .secret(SECRET)
                .valid_roles(["u"]),
            "secret",
        ),
        (
            Config::builder()
                .algorithm(Algorithm::RS256)
                .private_key_pem("-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----")
                .valid_roles(["u"]),
            "private_key_pem",
        ),
        (
            Config::builder()
                .hs256(SECRET)
                .private_key_pem("x")
                .valid_roles(["u"]),
            "private_key_pem",
        ),
        (Config::builder().hs256(SECRET), "valid_roles"),
        (
            Config::builder()
                .hs256(SECRET)
                .valid_roles(Vec::<String>::new()),
            "valid_roles",
        ),
        (
            Config::builder().hs256(SECRET).valid_roles(["has space"]),
            "valid_roles",
        ),
        (base().default_role("root"), "default_role"),
        (base().admin_role("root"), "admin_role"),
        (base().access_ttl("fifteen"), "access_ttl"),
        (base().access_ttl(0u64), "access_ttl"),
        (base().access_ttl("2d"), "access_ttl"),
        (base().refresh_ttl("10m").access_ttl("15m"), "refresh_ttl"),
        (base().refresh_ttl("1000d"), "refresh_ttl"),
        (base().refresh_ttl("x"), "refresh_ttl"),
        (base().reuse_grace("5m"), "reuse_grace"),
        (base().touch_interval("soon"), "touch_interval"),
        (base().issuer(" "), "issuer"),
        (base().audience(""), "audience"),
        (base().api_key("short"), "api_key"),
        (
            base().throttle(ThrottleConfig {
                window: Duration::ZERO,
                ..Default::default()
            }),
            "throttle.window",
        ),
        (
            base().idempotency(IdempotencyConfig {
                header: "X Key".into(),
                ..Default::default()
            }),
            "idempotency.header",
        ),
        (
            base().idempotency(IdempotencyConfig {
                ttl: Duration::ZERO,
                ..Default::default()
            }),
            "idempotency.ttl",
        ),
        (
            base().idempotency(IdempotencyConfig {
                methods: vec!["GET".into()],
                ..Default::default()
            }),
            "idempotency.methods",
        ),
        (
            base().password_policy(PasswordPolicy::default().min_length(0)),
            "password",
        ),
    ];
    for (builder, field) in cases {
        let got = field_of(builder.build().unwrap_err());
        assert!(got.starts_with(field), "expected {field}, got {got}");
    }
}

#[test]
fn hmac_secrets_are_at_least_the_hash_size() {
    for (alg, min) in [
        (Algorithm::HS256, 32),
        (Algorithm::HS384, 48),
        (Algorithm::HS512, 64),
    ] {
        let with = |len: usize| {
            Config::builder()
                .algorithm(alg)
                .secret(vec![b'k'; len])
                .valid_roles(["user"])
                .build()
        };
        let err = with(min - 1).unwrap_err();
        assert_eq!(
            err.message(),
            format!("secret: must be at least {min} bytes for {alg}")
        );
        assert_eq!(with(min).unwrap().algorithm(), alg);
    }
}

#[test]
fn asymmetric_without_key_generates() {
    let c = Config::builder()
        .algorithm(Algorithm::EdDSA)
        .valid_roles(["user"])
        .build()
        .unwrap();
    assert!(matches!(c.key_source, KeySource::Generate));
    // No secret and no algorithm: EdDSA with a generated key.
    let c = Config::builder().valid_roles(["user"]).build().unwrap();
    assert_eq!(c.algorithm(), Algorithm::EdDSA);
}

#[test]
fn debug_output_redacts_the_api_key() {
    let c = base()
        .api_key("a-very-secret-api-key-value")
        .build()
        .unwrap();
    let dbg = format!("{c:?}");
    assert!(!dbg.contains("a-very-secret-api-key-value"));
    assert!(!dbg.contains(SECRET));
}

#[test]
fn cookie_defaults_are_secure() {
    let c = base().build().unwrap();
    let k = c.cookies();
    assert_eq!(k.transport, CookieTransport::Off);
    assert!(k.secure);
    assert_eq!(k.same_site, SameSite::Strict);
    assert_eq!(k.refresh_cookie_name(), "refresh_token");
    assert_eq!(k.access_cookie_name(), "access_token");
    assert_eq!(k.refresh_path, None);
    assert_eq!(k.access_path, "/");
    assert!(k.allowed_origins.is_empty());
    assert_eq!(c.body_limit(), 16 * 1024);
}

#[test]
fn host_prefix_names_both_cookies() {
    let c = base()
        .cookies(CookieConfig {
            transport: CookieTransport::Both,
            host_prefix: true,
            ..Default::default()
        })
        .build()
        .unwrap();
    assert_eq!(c.cookies().refresh_cookie_name(), "__Host-refresh_token");
    assert_eq!(c.cookies().access_cookie_name(), "__Host-access_token");
    assert!(c.cookies().refresh_in_cookie() && c.cookies().access_in_cookie());
}

#[test]
fn every_bad_cookie_value_names_its_field() {
    let k = CookieConfig::default;
    let cases: Vec<(CookieConfig, &str)> = vec![
        (
            CookieConfig {
                refresh_name: String::new(),
                ..k()
            },
            "cookies.refresh_name",
        ),
        (
            CookieConfig {
                refresh_name: "a b".into(),
                ..k()
            },
            "cookies.refresh_name",
        ),
        (
            CookieConfig {
                access_name: "x;y".into(),
                ..k()
            },
            "cookies.access_name",
        ),
        (
            CookieConfig {
                access_name: "refresh_token".into(),
                ..k()
            },
            "cookies.access_name",
        ),
        (
            CookieConfig {
                refresh_path: Some("auth".into()),
                ..k()
            },
            "cookies.refresh_path",
        ),
        (
            CookieConfig {
                access_path: "/a;b".into(),
                ..k()
            },
            "cookies.access_path",
        ),
        (
            CookieConfig {
                domain: Some("exa mple.com".into()),
                ..k()
            },
            "cookies.domain",
        ),
        (
            CookieConfig {
                host_prefix: true,
                secure: false,
                ..k()
            },
            "cookies.secure",
        ),
        (
            CookieConfig {
                host_prefix: true,
                domain: Some("example.com".into()),
                ..k()
            },
            "cookies.domain",
        ),
        (
            CookieConfig {
                host_prefix: true,
                refresh_path: Some("/auth".into()),
                ..k()
            },
            "cookies.refresh_path",
        ),
        (
            CookieConfig {
                host_prefix: true,
                access_path: "/app".into(),
                ..k()
            },
            "cookies.access_path",
        ),
        (
            CookieConfig {
                refresh_name: "__Host-rt".into(),
                secure: false,
                ..k()
            },
            "cookies.secure",
        ),
        (
            CookieConfig {
                access_name: "__Secure-at".into(),
                secure: false,
                ..k()
            },
            "cookies.secure",
        ),
        (
            CookieConfig {
                same_site: SameSite::None,
                secure: false,
                ..k()
            },
            "cookies.same_site",
        ),
        (
            CookieConfig {
                allowed_origins: vec!["app.example.com".into()],
                ..k()
            },
            "cookies.allowed_origins",
        ),
        (
            CookieConfig {
                allowed_origins: vec!["https://app.example.com/path".into()],
                ..k()
            },
            "cookies.allowed_origins",
        ),
        (
            CookieConfig {
                allowed_origins: vec!["ftp://example.com".into()],
                ..k()
            },
            "cookies.allowed_origins",
        ),
        (
            CookieConfig {
                allowed_origins: vec!["https://example.com:99999".into()],
                ..k()
            },
            "cookies.allowed_origins",
        ),
    ];
    for (cookies, field) in cases {
        let got = field_of(base().cookies(cookies).build().unwrap_err());
        assert_eq!(got, field);
    }
    assert_eq!(
        field_of(base().body_limit(10).build().unwrap_err()),
        "body_limit"
    );
    assert_eq!(
        field_of(base().body_limit(64 * 1024 * 1024).build().unwrap_err()),
        "body_limit"
    );
}

#[test]
fn good_cookie_values_build() {
    base()
        .cookies(CookieConfig {
            transport: CookieTransport::Refresh,
            same_site: SameSite::None,
            refresh_path: Some("/auth".into()),
            domain: Some("example.com".into()),
            allowed_origins: vec![
                "https://app.example.com".into(),
                "http://localhost:5173".into(),
                "http://[::1]:8080".into(),
            ],
            ..Default::default()
        })
        .body_limit(64 * 1024)
        .build()
        .unwrap();
}
