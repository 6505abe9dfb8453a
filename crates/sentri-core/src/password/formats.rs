//! Stored hash formats: parsing, and the blocking hash/verify work.

use super::*;

/// A stored hash, parsed.
pub(super) enum Parsed<'a> {
    Argon2 {
        algorithm: argon2::Algorithm,
        version: argon2::Version,
        params: argon2::Params,
        salt: phc::Salt,
        expected: phc::Output,
    },
    Scrypt {
        params: scrypt::Params,
        salt: phc::Salt,
        expected: phc::Output,
    },
    Bcrypt(&'a str),
    NodeScrypt {
        salt: &'a [u8],
        expected: Vec<u8>,
    },
}

/// The family of a stored hash, for logs; never the hash itself.
pub(super) fn hash_format(stored: &str) -> &'static str {
    if stored.starts_with("$argon2") {
        "argon2"
    } else if stored.starts_with("$scrypt$") {
        "scrypt"
    } else if stored.starts_with("$2") {
        "bcrypt"
    } else if stored.contains(':') {
        "salt:key"
    } else {
        "unknown"
    }
}

/// Parse a stored hash. The error is a static reason, safe to log.
pub(super) fn parse(stored: &str) -> std::result::Result<Parsed<'_>, &'static str> {
    if stored.starts_with("$argon2") {
        parse_argon2(stored)
    } else if stored.starts_with("$scrypt$") {
        parse_scrypt(stored)
    } else if ["$2a$", "$2b$", "$2y$"]
        .iter()
        .any(|prefix| stored.starts_with(prefix))
    {
        Ok(Parsed::Bcrypt(stored))
    } else if let Some((salt, key)) = stored.split_once(':') {
        parse_node_scrypt(salt, key)
    } else {
        Err("unrecognised hash format")
    }
}

pub(super) fn parse_argon2(stored: &str) -> std::result::Result<Parsed<'_>, &'static str> {
    let phc = phc::PasswordHash::new(stored).map_err(|_| "malformed PHC string")?;
    let algorithm =
        argon2::Algorithm::new(phc.algorithm.as_str()).map_err(|_| "unknown argon2 variant")?;
    let version = match phc.version {
        Some(v) => argon2::Version::try_from(v).map_err(|_| "unsupported argon2 version")?,
        None => argon2::Version::V0x13,
    };
    let params = argon2::Params::try_from(&phc).map_err(|_| "invalid argon2 parameters")?;
    if u64::from(params.m_cost()) > MAX_MEMORY_KIB {
        return Err("argon2 memory cost above the 4 GiB limit");
    }
    let (Some(salt), Some(expected)) = (phc.salt, phc.hash) else {
        return Err("argon2 hash without salt or output");
    };
    Ok(Parsed::Argon2 {
        algorithm,
        version,
        params,
        salt,
        expected,
    })
}

pub(super) fn parse_scrypt(stored: &str) -> std::result::Result<Parsed<'_>, &'static str> {
    let phc = phc::PasswordHash::new(stored).map_err(|_| "malformed PHC string")?;
    if phc.version.is_some() {
        return Err("scrypt hash with a version");
    }
    let (mut log_n, mut r, mut p) = (None, None, None);
    for (name, value) in phc.params.iter() {
        let value = value
            .decimal()
            .map_err(|_| "invalid scrypt parameter value")?;
        match name.as_str() {
            "ln" => log_n = Some(u8::try_from(value).map_err(|_| "invalid scrypt ln")?),
            "r" => r = Some(value),
            "p" => p = Some(value),
            _ => return Err("unknown scrypt parameter"),
        }
    }
    let (Some(log_n), Some(r), Some(p)) = (log_n, r, p) else {
        return Err("missing scrypt parameter");
    };
    if scrypt_memory_kib(log_n, r).is_none_or(|kib| kib > MAX_MEMORY_KIB) {
        return Err("scrypt memory cost above the 4 GiB limit");
    }
    let params = scrypt::Params::new(log_n, r, p).map_err(|_| "invalid scrypt parameters")?;
    let (Some(salt), Some(expected)) = (phc.salt, phc.hash) else {
        return Err("scrypt hash without salt or output");
    };
    Ok(Parsed::Scrypt {
        params,
        salt,
        expected,
    })
}

pub(super) fn parse_node_scrypt<'a>(
    salt: &'a str,
    key: &str,
) -> std::result::Result<Parsed<'a>, &'static str> {
    if salt.is_empty() || !salt.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("salt:key hash with a non-hex salt");
    }
    let expected = decode_hex(key).ok_or("salt:key hash with a non-hex key")?;
    if !(16..=1024).contains(&expected.len()) {
        return Err("salt:key hash with a key of unsupported length");
    }
    // Node's `scrypt(password, saltHex, keylen)` uses the hex string's bytes.
    Ok(Parsed::NodeScrypt {
        salt: salt.as_bytes(),
        expected,
    })
}

/// The bytes of a hex string (either case); `None` for an empty, odd or
/// non-hex one. Also decodes the hex form of a key-encryption key
/// (`cipher`).
pub(crate) fn decode_hex(s: &str) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    if s.is_empty() || !s.len().is_multiple_of(2) {
        return None;
    }
    // One allocation of the final size: no reallocation leaves a copy of
    // a secret behind.
    let mut out = Vec::with_capacity(s.len() / 2);
    for pair in s.as_bytes().chunks_exact(2) {
        out.push(nibble(pair[0])? << 4 | nibble(pair[1])?);
    }
    Some(out)
}

/// Hash `password` with `algorithm` and a fresh random salt; the PHC string.
pub(super) fn hash_blocking(algorithm: &PasswordAlgorithm, password: &[u8]) -> Result<String> {
    let mut salt = [0u8; SALT_LEN];
    rand::rng().fill_bytes(&mut salt);
    match *algorithm {
        PasswordAlgorithm::Argon2id { m_kib, t, p } => {
            use argon2::PasswordHasher as _;
            let params = argon2::Params::new(m_kib, t, p, None).map_err(Error::internal)?;
            let hasher =
                argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
            let phc = hasher
                .hash_password_with_salt(password, &salt)
                .map_err(Error::internal)?;
            Ok(phc.to_string())
        }
        PasswordAlgorithm::Scrypt { log_n, r, p } => {
            let params = scrypt::Params::new(log_n, r, p).map_err(Error::internal)?;
            let mut out = [0u8; OUTPUT_LEN];
            scrypt::scrypt(password, &salt, &params, &mut out).map_err(Error::internal)?;
            Ok(format!(
                "$scrypt$ln={log_n},r={r},p={p}${}${}",
                B64.encode(salt),
                B64.encode(out)
            ))
        }
    }
}

/// Verify `password` against `stored`: `Ok(matches)`, or `Err(reason)` when
/// the stored hash cannot be used (the reason is static and safe to log).
pub(super) fn verify_blocking(
    password: &[u8],
    stored: &str,
) -> std::result::Result<bool, &'static str> {
    match parse(stored)? {
        Parsed::Argon2 {
            algorithm,
            version,
            params,
            salt,
            expected,
        } => {
            let mut out = Zeroizing::new(vec![0u8; expected.len()]);
            argon2::Argon2::new(algorithm, version, params)
                .hash_password_into(password, &salt, &mut out)
                .map_err(|_| "argon2 rejected the stored parameters")?;
            Ok(bool::from(out.ct_eq(expected.as_bytes())))
        }
        Parsed::Scrypt {
            params,
            salt,
            expected,
        } => {
            let mut out = Zeroizing::new(vec![0u8; expected.len()]);
            scrypt::scrypt(password, &salt, &params, &mut out)
                .map_err(|_| "scrypt rejected the stored output length")?;
            Ok(bool::from(out.ct_eq(expected.as_bytes())))
        }
        // bcryptjs truncated passwords at 72 bytes; verify as it computed.
        // These hashes are always re-hashed, without truncation.
        Parsed::Bcrypt(stored) => {
            bcrypt::verify(password, stored).map_err(|_| "malformed bcrypt hash")
        }
        Parsed::NodeScrypt { salt, expected } => {
            let params = scrypt::Params::new(NODE_SCRYPT_LOG_N, NODE_SCRYPT_R, NODE_SCRYPT_P)
                .map_err(|_| "invalid scrypt parameters")?;
            let mut out = Zeroizing::new(vec![0u8; expected.len()]);
            scrypt::scrypt(password, salt, &params, &mut out)
                .map_err(|_| "scrypt rejected the stored key length")?;
            Ok(bool::from(out.ct_eq(&expected)))
        }
    }
}
