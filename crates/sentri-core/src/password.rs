//! Password hashing and verification (F-05).
//!
//! [`Passwords`] hashes new passwords with the algorithm of its
//! [`PasswordPolicy`] (Argon2id with m=19456 KiB, t=2, p=1 by default, the
//! OWASP recommendation; scrypt as an option) and stores them as PHC strings.
//! It verifies every format sentri has ever stored or inherited:
//!
//! | stored format | example prefix | origin |
//! |---|---|---|
//! | Argon2 PHC (`argon2id`, `argon2i`, `argon2d`) | `$argon2id$v=19$m=19456,t=2,p=1$…` | sentri |
//! | scrypt PHC | `$scrypt$ln=17,r=8,p=1$…` | sentri, passlib |
//! | bcrypt (`$2a$`, `$2b$`, `$2y$`) | `$2b$12$…` | the TypeScript sentri (bcryptjs) |
//! | `salt:key` (hex) | `8b5c…:624c…` | `@justscale/auth` (Node `crypto.scrypt`) |
//!
//! Verification reads the cost parameters from the stored hash, so costs can
//! rise without breaking old hashes. A successful [`Passwords::verify`] says
//! whether the hash should be replaced ([`Verified::Valid`]`{ needs_rehash }`):
//! the caller re-hashes the password it just verified and stores the new hash.
//!
//! # Architecture invariants
//!
//! - Hashing never blocks the async executor: every hash and verification runs
//!   on [`tokio::task::spawn_blocking`], at most
//!   [`PasswordPolicy::max_concurrent`] at once (a [`tokio::sync::Semaphore`]).
//!   The permit is held by the blocking task itself, so the bound holds even
//!   when the caller's future is dropped mid-hash.
//! - The copy of the plaintext sent to the blocking task is zeroized on drop.
//! - New passwords are never truncated: a password is either accepted whole
//!   ([`Passwords::check_new`]) or rejected. Only legacy bcrypt hashes are
//!   verified with bcrypt's own 72-byte limit, as bcryptjs computed them, and
//!   they are always re-hashed.
//! - Hash outputs are compared in constant time.
//! - Neither passwords nor hashes appear in errors or logs.
//!
//! # Example
//!
//! ```
//! use sentri_core::password::{PasswordPolicy, Passwords, Verified};
//!
//! # fn main() -> sentri_core::Result<()> {
//! // Production code uses `PasswordPolicy::default()` (m=19456, t=2, p=1);
//! // small parameters keep this example fast.
//! let passwords = Passwords::new(PasswordPolicy::argon2id(1024, 1, 1))?;
//! let rt = tokio::runtime::Builder::new_current_thread()
//!     .build()
//!     .map_err(sentri_core::Error::internal)?;
//!
//! rt.block_on(async {
//!     passwords.check_new("password", "correct horse battery staple")?;
//!     let hash = passwords.hash("correct horse battery staple").await?;
//!     assert!(hash.as_str().starts_with("$argon2id$v=19$m=1024,t=1,p=1$"));
//!
//!     let ok = passwords.verify("correct horse battery staple", &hash).await?;
//!     assert_eq!(ok, Verified::Valid { needs_rehash: false });
//!     assert_eq!(passwords.verify("wrong", &hash).await?, Verified::Invalid);
//!
//!     // A hash made with other parameters still verifies, and asks to be replaced.
//!     let stronger = Passwords::new(PasswordPolicy::argon2id(2048, 1, 1))?;
//!     let ok = stronger.verify("correct horse battery staple", &hash).await?;
//!     assert_eq!(ok, Verified::Valid { needs_rehash: true });
//!     Ok(())
//! })
//! # }
//! ```

use std::fmt;
use std::sync::Arc;

use argon2::password_hash::phc;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use rand::RngCore as _;
use subtle::ConstantTimeEq as _;
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::model::PasswordHash;

/// Length in bytes of the salt of new hashes.
const SALT_LEN: usize = 16;

/// Length in bytes of the output of new hashes.
const OUTPUT_LEN: usize = 32;

/// Upper bound on the memory one hash may use, in KiB (4 GiB).
///
/// Applies to the policy and to stored hashes alike: an allocation failure
/// aborts the process, so a corrupt stored hash must not ask for more.
const MAX_MEMORY_KIB: u64 = 4 * 1024 * 1024;

/// Upper bound on [`PasswordPolicy::max_bytes`].
const MAX_PASSWORD_BYTES: usize = 4096;

/// Default OWASP Argon2id parameters.
const DEFAULT_ARGON2_M_KIB: u32 = 19_456;
const DEFAULT_ARGON2_T: u32 = 2;
const DEFAULT_ARGON2_P: u32 = 1;

/// Parameters of the `@justscale/auth` `salt:key` format: Node's
/// `crypto.scrypt` defaults (N=16384, r=8, p=1).
const NODE_SCRYPT_LOG_N: u8 = 14;
const NODE_SCRYPT_R: u32 = 8;
const NODE_SCRYPT_P: u32 = 1;

/// Algorithm and parameters for new hashes.
///
/// Stored hashes of any supported algorithm keep verifying whatever is chosen
/// here; a hash that differs from the choice is re-hashed on the next login.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PasswordAlgorithm {
    /// Argon2id, version 0x13 (RFC 9106). Default: m=19456 KiB, t=2, p=1.
    Argon2id {
        /// Memory cost in KiB; at least `8 * p`.
        m_kib: u32,
        /// Number of passes; at least 1.
        t: u32,
        /// Degree of parallelism (lanes); 1 to 2^24-1.
        p: u32,
    },
    /// scrypt (RFC 7914), e.g. `log_n = 17, r = 8, p = 1` (OWASP).
    Scrypt {
        /// log2 of the CPU/memory cost `N`; at least 1.
        log_n: u8,
        /// Block size; at least 1.
        r: u32,
        /// Parallelism; at least 1.
        p: u32,
    },
}

impl PasswordAlgorithm {
    /// The configuration prefix of this algorithm's fields.
    fn config_name(&self) -> &'static str {
        match self {
            Self::Argon2id { .. } => "password.argon2id",
            Self::Scrypt { .. } => "password.scrypt",
        }
    }
}

/// How new passwords are hashed and which new passwords are accepted.
///
/// Built with chained setters and checked by [`PasswordPolicy::validate`]
/// (which [`Passwords::new`] calls).
///
/// ```
/// use sentri_core::password::PasswordPolicy;
///
/// let policy = PasswordPolicy::scrypt(17, 8, 1).min_length(12).max_concurrent(4);
/// policy.validate()?;
/// # Ok::<(), sentri_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct PasswordPolicy {
    algorithm: PasswordAlgorithm,
    min_length: usize,
    max_bytes: usize,
    max_concurrent: usize,
}

impl Default for PasswordPolicy {
    /// Argon2id with m=19456 KiB, t=2, p=1 (OWASP), passwords of at least 8
    /// characters and at most 1024 bytes, and at most as many concurrent
    /// hashes as the machine has CPUs ([`std::thread::available_parallelism`],
    /// at least 1).
    fn default() -> Self {
        Self {
            algorithm: PasswordAlgorithm::Argon2id {
                m_kib: DEFAULT_ARGON2_M_KIB,
                t: DEFAULT_ARGON2_T,
                p: DEFAULT_ARGON2_P,
            },
            min_length: 8,
            max_bytes: 1024,
            max_concurrent: std::thread::available_parallelism()
                .map(std::num::NonZeroUsize::get)
                .unwrap_or(1),
        }
    }
}

impl PasswordPolicy {
    /// Argon2id with the given memory (KiB), passes and parallelism; the
    /// other settings keep their defaults.
    pub fn argon2id(m_kib: u32, t: u32, p: u32) -> Self {
        Self {
            algorithm: PasswordAlgorithm::Argon2id { m_kib, t, p },
            ..Self::default()
        }
    }

    /// scrypt with `N = 2^log_n`, block size `r` and parallelism `p`; the
    /// other settings keep their defaults. OWASP suggests `(17, 8, 1)`.
    pub fn scrypt(log_n: u8, r: u32, p: u32) -> Self {
        Self {
            algorithm: PasswordAlgorithm::Scrypt { log_n, r, p },
            ..Self::default()
        }
    }

    /// The minimum length of a new password, in characters (Unicode scalar
    /// values). Default 8 (NIST SP 800-63B); must be at least 1.
    #[must_use]
    pub fn min_length(mut self, chars: usize) -> Self {
        self.min_length = chars;
        self
    }

    /// The maximum length of a new password, in bytes of UTF-8. Default 1024;
    /// at most 4096. Longer passwords are rejected, never truncated.
    #[must_use]
    pub fn max_bytes(mut self, bytes: usize) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// How many hashes or verifications may run at once. Default: the number
    /// of CPUs. Further requests wait for a slot (backpressure).
    #[must_use]
    pub fn max_concurrent(mut self, n: usize) -> Self {
        self.max_concurrent = n;
        self
    }

    /// The algorithm and parameters of new hashes.
    pub fn algorithm(&self) -> &PasswordAlgorithm {
        &self.algorithm
    }

    /// Check every setting.
    ///
    /// # Errors
    ///
    /// `CONFIGURATION_ERROR` naming the first bad setting, e.g.
    /// `password.argon2id.m_kib`:
    ///
    /// - Argon2id: `m_kib` below `8 * p` or above 4 GiB, `t` of 0, `p` of 0
    ///   or above 2^24-1;
    /// - scrypt: `log_n` of 0 or so large that `128 * r * 2^log_n` exceeds
    ///   4 GiB, `r` or `p` of 0, `r * p` of 2^30 or more;
    /// - `password.min_length` of 0, `password.max_bytes` below `min_length`
    ///   or above 4096, `password.max_concurrent` of 0.
    pub fn validate(&self) -> Result<()> {
        let prefix = self.algorithm.config_name();
        let bad = |field: &str, problem: &str| {
            Err(Error::configuration(&format!("{prefix}.{field}"), problem))
        };
        match self.algorithm {
            PasswordAlgorithm::Argon2id { m_kib, t, p } => {
                if !(argon2::Params::MIN_P_COST..=argon2::Params::MAX_P_COST).contains(&p) {
                    return bad("p", "must be between 1 and 16777215");
                }
                if u64::from(m_kib) < 8 * u64::from(p) {
                    return bad("m_kib", "must be at least 8 * p");
                }
                if u64::from(m_kib) > MAX_MEMORY_KIB {
                    return bad("m_kib", "must be at most 4194304 (4 GiB)");
                }
                if t < argon2::Params::MIN_T_COST {
                    return bad("t", "must be at least 1");
                }
                argon2::Params::new(m_kib, t, p, None)
                    .map_err(|_| Error::configuration(prefix, "parameters rejected by argon2"))?;
            }
            PasswordAlgorithm::Scrypt { log_n, r, p } => {
                if r == 0 {
                    return bad("r", "must be at least 1");
                }
                if p == 0 {
                    return bad("p", "must be at least 1");
                }
                if u64::from(r) * u64::from(p) >= 1 << 30 {
                    return bad("p", "r * p must be below 2^30");
                }
                if log_n == 0 {
                    return bad("log_n", "must be at least 1");
                }
                if scrypt_memory_kib(log_n, r).is_none_or(|kib| kib > MAX_MEMORY_KIB) {
                    return bad("log_n", "128 * r * 2^log_n must be at most 4 GiB");
                }
                scrypt::Params::new(log_n, r, p)
                    .map_err(|_| Error::configuration(prefix, "parameters rejected by scrypt"))?;
            }
        }
        if self.min_length == 0 {
            return Err(Error::configuration(
                "password.min_length",
                "must be at least 1",
            ));
        }
        if self.max_bytes < self.min_length {
            return Err(Error::configuration(
                "password.max_bytes",
                "must be at least min_length",
            ));
        }
        if self.max_bytes > MAX_PASSWORD_BYTES {
            return Err(Error::configuration(
                "password.max_bytes",
                "must be at most 4096",
            ));
        }
        if self.max_concurrent == 0 || self.max_concurrent > Semaphore::MAX_PERMITS {
            return Err(Error::configuration(
                "password.max_concurrent",
                &format!("must be between 1 and {}", Semaphore::MAX_PERMITS),
            ));
        }
        Ok(())
    }
}

/// The memory scrypt needs for `N = 2^log_n` and block size `r`, in KiB.
fn scrypt_memory_kib(log_n: u8, r: u32) -> Option<u64> {
    let n = 1u64.checked_shl(u32::from(log_n)).filter(|_| log_n < 64)?;
    n.checked_mul(128)?
        .checked_mul(u64::from(r))
        .map(|b| b / 1024)
}

/// The outcome of [`Passwords::verify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    /// The password matches.
    Valid {
        /// The hash's algorithm or parameters differ from the policy: hash
        /// the password again and store the new hash.
        needs_rehash: bool,
    },
    /// The password does not match, or the stored hash is not one sentri
    /// can read.
    Invalid,
}

/// Hashes and verifies passwords off the async executor.
///
/// Cheap to clone: clones share the policy, the concurrency limit and the
/// dummy hash.
#[derive(Clone)]
pub struct Passwords {
    inner: Arc<Inner>,
}

struct Inner {
    policy: PasswordPolicy,
    permits: Arc<Semaphore>,
    dummy: PasswordHash,
    #[cfg(test)]
    probe: tests::Probe,
}

impl fmt::Debug for Passwords {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Passwords")
            .field("policy", &self.inner.policy)
            .finish_non_exhaustive()
    }
}

impl Passwords {
    /// Validate the policy and prepare a dummy hash with its parameters (for
    /// [`Passwords::verify_dummy`]).
    ///
    /// This computes one hash on the calling thread; call it at startup, not
    /// on a hot path.
    ///
    /// # Errors
    ///
    /// `CONFIGURATION_ERROR` from [`PasswordPolicy::validate`], or
    /// `INTERNAL_ERROR` if the dummy hash cannot be computed.
    pub fn new(policy: PasswordPolicy) -> Result<Self> {
        policy.validate()?;
        let mut secret = Zeroizing::new([0u8; 24]);
        rand::rng().fill_bytes(secret.as_mut());
        let dummy = PasswordHash::new(hash_blocking(&policy.algorithm, secret.as_ref())?);
        let permits = Arc::new(Semaphore::new(policy.max_concurrent));
        Ok(Self {
            inner: Arc::new(Inner {
                policy,
                permits,
                dummy,
                #[cfg(test)]
                probe: tests::Probe::default(),
            }),
        })
    }

    /// The policy in force.
    pub fn policy(&self) -> &PasswordPolicy {
        &self.inner.policy
    }

    /// Check a new password (registration, password change) against the
    /// length policy. Nothing is ever truncated.
    ///
    /// # Errors
    ///
    /// `VALIDATION_ERROR` naming `field` when the password has fewer than
    /// `min_length` characters or more than `max_bytes` bytes. The message
    /// never contains the password.
    pub fn check_new(&self, field: &str, password: &str) -> Result<()> {
        let policy = &self.inner.policy;
        if password.chars().count() < policy.min_length {
            return Err(Error::validation(
                field,
                &format!("must be at least {} characters", policy.min_length),
            ));
        }
        if password.len() > policy.max_bytes {
            return Err(Error::validation(
                field,
                &format!("must be at most {} bytes", policy.max_bytes),
            ));
        }
        Ok(())
    }

    /// Hash a password with the policy's algorithm, as a PHC string:
    /// `$argon2id$v=19$m=..,t=..,p=..$salt$hash` or
    /// `$scrypt$ln=..,r=..,p=..$salt$hash` (16-byte random salt, 32-byte
    /// output).
    ///
    /// Waits for a free slot when `max_concurrent` hashes are running. Does
    /// not check the length policy: call [`Passwords::check_new`] first.
    ///
    /// # Errors
    ///
    /// `INTERNAL_ERROR` if the blocking task fails.
    pub async fn hash(&self, password: &str) -> Result<PasswordHash> {
        let password = Zeroizing::new(password.as_bytes().to_vec());
        let algorithm = self.inner.policy.algorithm.clone();
        let phc = self
            .run_blocking(move || hash_blocking(&algorithm, &password))
            .await??;
        Ok(PasswordHash::new(phc))
    }

    /// Verify a password against a stored hash of any supported format,
    /// using the parameters stored in the hash.
    ///
    /// Returns [`Verified::Invalid`] for a wrong password and for a stored
    /// hash that cannot be parsed (the latter is logged as a warning, without
    /// the hash or the password). Length limits are not applied, so
    /// tightening them never locks anyone out.
    ///
    /// # Errors
    ///
    /// `INTERNAL_ERROR` only for an internal failure, e.g. the blocking task
    /// panicked.
    pub async fn verify(&self, password: &str, hash: &PasswordHash) -> Result<Verified> {
        let password = Zeroizing::new(password.as_bytes().to_vec());
        let stored = Zeroizing::new(hash.as_str().to_owned());
        let outcome = self
            .run_blocking(move || verify_blocking(&password, &stored))
            .await?;
        match outcome {
            Ok(true) => Ok(Verified::Valid {
                needs_rehash: self.needs_rehash(hash),
            }),
            Ok(false) => Ok(Verified::Invalid),
            Err(reason) => {
                tracing::warn!(
                    format = hash_format(hash.as_str()),
                    reason,
                    "stored password hash cannot be verified; treating it as a mismatch"
                );
                Ok(Verified::Invalid)
            }
        }
    }

    /// Spend the same time as verifying against a hash made with the policy,
    /// and return nothing.
    ///
    /// Call it when the identifier is unknown, so that an unknown identifier
    /// and a wrong password take the same time.
    pub async fn verify_dummy(&self, password: &str) {
        let password = Zeroizing::new(password.as_bytes().to_vec());
        let stored = Zeroizing::new(self.inner.dummy.as_str().to_owned());
        if let Err(err) = self
            .run_blocking(move || verify_blocking(&password, &stored))
            .await
        {
            tracing::warn!(error = %err, "dummy password verification failed");
        }
    }

    /// Whether a stored hash should be replaced: its algorithm, version or
    /// parameters differ from the policy. bcrypt and `salt:key` scrypt hashes
    /// always need a rehash, and so does a hash that cannot be parsed.
    pub fn needs_rehash(&self, hash: &PasswordHash) -> bool {
        let Ok(parsed) = parse(hash.as_str()) else {
            return true;
        };
        match (&self.inner.policy.algorithm, parsed) {
            (
                &PasswordAlgorithm::Argon2id { m_kib, t, p },
                Parsed::Argon2 {
                    algorithm,
                    version,
                    params,
                    expected,
                    ..
                },
            ) => {
                !(algorithm == argon2::Algorithm::Argon2id
                    && version == argon2::Version::V0x13
                    && params.m_cost() == m_kib
                    && params.t_cost() == t
                    && params.p_cost() == p
                    && params.keyid().is_empty()
                    && params.data().is_empty()
                    && expected.len() == OUTPUT_LEN)
            }
            (
                &PasswordAlgorithm::Scrypt { log_n, r, p },
                Parsed::Scrypt {
                    params, expected, ..
                },
            ) => {
                !(params.log_n() == log_n
                    && params.r() == r
                    && params.p() == p
                    && expected.len() == OUTPUT_LEN)
            }
            _ => true,
        }
    }

    /// Run `f` on the blocking pool once a concurrency permit is free. The
    /// blocking task owns the permit, so it is released only when the work
    /// is done, even if this future is dropped.
    async fn run_blocking<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let permit = Arc::clone(&self.inner.permits)
            .acquire_owned()
            .await
            .map_err(Error::internal)?;
        #[cfg(test)]
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            #[cfg(test)]
            let _running = inner.probe.enter();
            f()
        })
        .await
        .map_err(Error::internal)
    }
}

/// A stored hash, parsed.
enum Parsed<'a> {
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
fn hash_format(stored: &str) -> &'static str {
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
fn parse(stored: &str) -> std::result::Result<Parsed<'_>, &'static str> {
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

fn parse_argon2(stored: &str) -> std::result::Result<Parsed<'_>, &'static str> {
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

fn parse_scrypt(stored: &str) -> std::result::Result<Parsed<'_>, &'static str> {
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

fn parse_node_scrypt<'a>(
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

fn decode_hex(s: &str) -> Option<Vec<u8>> {
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
    s.as_bytes()
        .chunks_exact(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

/// Hash `password` with `algorithm` and a fresh random salt; the PHC string.
fn hash_blocking(algorithm: &PasswordAlgorithm, password: &[u8]) -> Result<String> {
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
fn verify_blocking(password: &[u8], stored: &str) -> std::result::Result<bool, &'static str> {
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Barrier, Mutex};
    use std::time::Duration;

    use super::*;
    use crate::error::ErrorCode;

    /// Counts the blocking tasks running at once, under `cfg(test)` only.
    #[derive(Default)]
    pub(super) struct Probe {
        active: AtomicUsize,
        peak: AtomicUsize,
        runs: AtomicUsize,
        hook: Mutex<Option<Arc<dyn Fn() + Send + Sync>>>,
    }

    pub(super) struct Running<'a>(&'a Probe);

    impl Probe {
        pub(super) fn enter(&self) -> Running<'_> {
            let now = self.active.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(now, Ordering::SeqCst);
            self.runs.fetch_add(1, Ordering::SeqCst);
            let hook = self.hook.lock().unwrap().clone();
            if let Some(hook) = hook {
                hook();
            }
            Running(self)
        }
    }

    impl Drop for Running<'_> {
        fn drop(&mut self) {
            self.0.active.fetch_sub(1, Ordering::SeqCst);
        }
    }

    const PW: &str = "correct horse battery staple";

    /// Fixtures made by Node 20 `crypto.scryptSync(pw, saltHex, 64)` with
    /// `saltHex = randomBytes(16).toString('hex')`, as `@justscale/auth` did.
    const NODE_SCRYPT_ASCII: &str = "8b5c04fb687bb18ca17e87a9fe058a58:624cbbe19c4b3d47d6967d94151719a3c14351546d709ebaff1ae1f6528d2378a59bbb2da12490c251f532c8407915e54f083e1ffbc7036d0d455210fa984a08";
    const NODE_SCRYPT_UTF8_PW: &str = "pässwörd-✓-密码";
    const NODE_SCRYPT_UTF8: &str = "0267e62ec347c7ee23e3b117c6bb7036:235f08bdefe7e3df3bc162cd2ec472849b67cedfea76b108e37a85daa05897afd14ae0aa760d89ec6b5fc89c456800123f44dca3706d8e3aa5b0fd795fff9dda";

    /// bcryptjs 3.0.3 `hashSync(PW, 12)` (the TypeScript sentri's cost).
    const BCRYPTJS_12: &str = "$2b$12$lE7J8yW9awjeREQ1/2YWzubgzckW4/5y/7QYZajvuHsOrFbd5iy/e";
    /// bcryptjs 3.0.3 `hashSync(NODE_SCRYPT_UTF8_PW, 4)`.
    const BCRYPTJS_UTF8: &str = "$2b$04$WELk0GXz8OQ0U4lP3U3QUuz/OOhlfwWjWao1SerY5Nx77HwVwXRJG";
    /// bcryptjs 2.4.3 `hashSync("Tr0ub4dor&3", 4)`, and the same with `$2y$`
    /// (which bcryptjs also accepts).
    const BCRYPTJS_2A: &str = "$2a$04$2W0Al7zjR/J2xLaZhyr4wu1Jg9vuSxm2xQ3Q7Zk/GWS/yRRFsXKXm";
    const BCRYPTJS_2Y: &str = "$2y$04$2W0Al7zjR/J2xLaZhyr4wu1Jg9vuSxm2xQ3Q7Zk/GWS/yRRFsXKXm";
    /// bcryptjs 3.0.3 `hashSync("a".repeat(72) + "tail-one", 4)`.
    const BCRYPTJS_LONG: &str = "$2b$04$D5yTv0k4mNWQNt0ARScctuoMW.VdtkvFFUF7m65pdd63FVydORvtu";

    /// hash-wasm 4 (an independent Argon2 implementation) hashes of PW.
    const HASHWASM_ARGON2: &[&str] = &[
        "$argon2id$v=19$m=64,t=1,p=1$OAKp49oJMHG5dTGkzK17CQ$y7ROs2qZiahdaRN/4Z55MmnRkBJM+a/N7lXhriZhu1A",
        "$argon2id$v=19$m=256,t=3,p=2$+HTbfV9dk+o/oixATtblnw$UaICUsUT8mxO8cOWK8Veg3T8pPR3Py8QO2GPSMPVJhQ",
        "$argon2i$v=19$m=64,t=2,p=1$4xOQPCiUm3IcOhj4wCzQ0A$Q10RT8VfCVoPKRNEEzG1W6ANW5HZbN+3Y3ZkcnnJ18I",
        "$argon2d$v=19$m=64,t=2,p=1$ybUbMoaDBhc7aOaablc7Jw$dcRayA2qc84TccvFlDSkSGBKr4vksDWQVJAplTTOl+0",
    ];

    /// Node `scryptSync(PW, salt, 32, {N: 1024, r: 8, p: 1})` as a PHC string.
    const NODE_SCRYPT_PHC: &str =
        "$scrypt$ln=10,r=8,p=1$+uu0RtreFyTFbhdWe5ss1Q$GXilLLjq6Mi4Pl3JwBdkDCJ+JKxABI05huD6p+P1BSM";

    fn small_argon2() -> Passwords {
        Passwords::new(PasswordPolicy::argon2id(64, 1, 1)).unwrap()
    }

    fn small_scrypt() -> Passwords {
        Passwords::new(PasswordPolicy::scrypt(10, 8, 1)).unwrap()
    }

    fn hash_of(s: &str) -> PasswordHash {
        PasswordHash::new(s)
    }

    #[tokio::test]
    async fn default_policy_hashes_argon2id_with_owasp_parameters() {
        let policy = PasswordPolicy::default();
        assert_eq!(
            policy.algorithm(),
            &PasswordAlgorithm::Argon2id {
                m_kib: 19456,
                t: 2,
                p: 1
            }
        );
        let passwords = Passwords::new(policy).unwrap();
        let hash = passwords.hash(PW).await.unwrap();
        assert!(
            hash.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{}",
            hash.as_str()
        );
        assert!(!passwords.needs_rehash(&hash));
        assert!(!passwords.needs_rehash(&passwords.inner.dummy));
        assert!(passwords.policy().max_concurrent >= 1);
        assert_eq!(passwords.policy().min_length, 8);
        assert_eq!(passwords.policy().max_bytes, 1024);
    }

    #[tokio::test]
    async fn argon2id_round_trip_and_wrong_password() {
        let passwords = small_argon2();
        let hash = passwords.hash(PW).await.unwrap();
        assert!(hash.as_str().starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert_eq!(
            passwords.verify(PW, &hash).await.unwrap(),
            Verified::Valid {
                needs_rehash: false
            }
        );
        assert_eq!(
            passwords
                .verify("correct horse battery stapl", &hash)
                .await
                .unwrap(),
            Verified::Invalid
        );
        // Fresh salt every time.
        assert_ne!(passwords.hash(PW).await.unwrap().as_str(), hash.as_str());
    }

    #[tokio::test]
    async fn scrypt_round_trip_and_wrong_password() {
        let passwords = small_scrypt();
        let hash = passwords.hash(PW).await.unwrap();
        assert!(
            hash.as_str().starts_with("$scrypt$ln=10,r=8,p=1$"),
            "{}",
            hash.as_str()
        );
        // Our PHC string parses with the generic PHC parser: 16-byte salt, 32-byte output.
        let phc = phc::PasswordHash::new(hash.as_str()).unwrap();
        assert_eq!(phc.salt.unwrap().len(), SALT_LEN);
        assert_eq!(phc.hash.unwrap().len(), OUTPUT_LEN);
        assert_eq!(
            passwords.verify(PW, &hash).await.unwrap(),
            Verified::Valid {
                needs_rehash: false
            }
        );
        assert_eq!(
            passwords
                .verify("Correct horse battery staple", &hash)
                .await
                .unwrap(),
            Verified::Invalid
        );
    }

    #[tokio::test]
    async fn third_party_phc_hashes_verify() {
        let passwords = small_argon2();
        // passlib's documented scrypt example (password "password"): proves the
        // salt is used B64-decoded, as other PHC implementations do. (ln=16 is
        // slow in debug builds, so only the positive case runs here.)
        let passlib = hash_of(
            "$scrypt$ln=16,r=8,p=1$aM15713r3Xsvxbi31lqr1Q$nFNh2CVHVjNldFVKDHDlm4CbdRSCdEBsjjJxD+iCs5E",
        );
        assert_eq!(
            passwords.verify("password", &passlib).await.unwrap(),
            Verified::Valid { needs_rehash: true }
        );

        let node = hash_of(NODE_SCRYPT_PHC);
        assert_eq!(
            small_scrypt().verify(PW, &node).await.unwrap(),
            Verified::Valid {
                needs_rehash: false
            }
        );

        for stored in HASHWASM_ARGON2 {
            let stored = hash_of(stored);
            let expected_rehash = stored.as_str() != HASHWASM_ARGON2[0];
            assert_eq!(
                passwords.verify(PW, &stored).await.unwrap(),
                Verified::Valid {
                    needs_rehash: expected_rehash
                },
                "{}",
                stored.as_str()
            );
            assert_eq!(
                passwords.verify("wrong password", &stored).await.unwrap(),
                Verified::Invalid
            );
        }
    }

    #[tokio::test]
    async fn argon2_hash_with_other_parameters_verifies_and_needs_rehash() {
        let old = Passwords::new(PasswordPolicy::argon2id(32, 2, 1)).unwrap();
        let new = small_argon2();
        let hash = old.hash(PW).await.unwrap();
        assert!(!old.needs_rehash(&hash));
        assert!(new.needs_rehash(&hash));
        assert_eq!(
            new.verify(PW, &hash).await.unwrap(),
            Verified::Valid { needs_rehash: true }
        );
        // Switching algorithm also asks for a rehash, both ways.
        let scrypt_hash = small_scrypt().hash(PW).await.unwrap();
        assert_eq!(
            new.verify(PW, &scrypt_hash).await.unwrap(),
            Verified::Valid { needs_rehash: true }
        );
        assert!(small_scrypt().needs_rehash(&hash));
        assert!(
            Passwords::new(PasswordPolicy::scrypt(11, 8, 1))
                .unwrap()
                .needs_rehash(&scrypt_hash)
        );
    }

    #[tokio::test]
    async fn node_scrypt_salt_key_vectors_verify_and_need_rehash() {
        let passwords = small_argon2();
        let ascii = hash_of(NODE_SCRYPT_ASCII);
        let utf8 = hash_of(NODE_SCRYPT_UTF8);
        assert_eq!(
            passwords.verify(PW, &ascii).await.unwrap(),
            Verified::Valid { needs_rehash: true }
        );
        assert_eq!(
            passwords.verify(NODE_SCRYPT_UTF8_PW, &utf8).await.unwrap(),
            Verified::Valid { needs_rehash: true }
        );
        assert_eq!(
            passwords
                .verify("correct horse battery stapler", &ascii)
                .await
                .unwrap(),
            Verified::Invalid
        );
        assert!(passwords.needs_rehash(&ascii));
        // Upper-case hex is the same key (the salt is used as its string, so it stays).
        let (salt, key) = NODE_SCRYPT_ASCII.split_once(':').unwrap();
        let upper = hash_of(&format!("{salt}:{}", key.to_uppercase()));
        assert_eq!(
            passwords.verify(PW, &upper).await.unwrap(),
            Verified::Valid { needs_rehash: true }
        );
    }

    #[tokio::test]
    async fn bcryptjs_vectors_verify_and_need_rehash() {
        let passwords = small_argon2();
        let cost12 = hash_of(BCRYPTJS_12);
        assert_eq!(
            passwords.verify(PW, &cost12).await.unwrap(),
            Verified::Valid { needs_rehash: true }
        );
        assert_eq!(
            passwords.verify("wrong password", &cost12).await.unwrap(),
            Verified::Invalid
        );
        assert_eq!(
            passwords
                .verify(NODE_SCRYPT_UTF8_PW, &hash_of(BCRYPTJS_UTF8))
                .await
                .unwrap(),
            Verified::Valid { needs_rehash: true }
        );
        for stored in [BCRYPTJS_2A, BCRYPTJS_2Y] {
            assert_eq!(
                passwords
                    .verify("Tr0ub4dor&3", &hash_of(stored))
                    .await
                    .unwrap(),
                Verified::Valid { needs_rehash: true },
                "{stored}"
            );
            assert_eq!(
                passwords
                    .verify("Tr0ub4dor&4", &hash_of(stored))
                    .await
                    .unwrap(),
                Verified::Invalid
            );
        }
        // bcryptjs truncated at 72 bytes; legacy hashes verify the same way.
        let long = hash_of(BCRYPTJS_LONG);
        let other_tail = format!("{}other", "a".repeat(72));
        assert_eq!(
            passwords.verify(&other_tail, &long).await.unwrap(),
            Verified::Valid { needs_rehash: true }
        );
        assert!(passwords.needs_rehash(&cost12));
        // `$2x$` (the buggy-variant marker) is not accepted.
        let x = hash_of(&BCRYPTJS_2A.replace("$2a$", "$2x$"));
        assert_eq!(
            passwords.verify("Tr0ub4dor&3", &x).await.unwrap(),
            Verified::Invalid
        );
    }

    #[tokio::test]
    async fn unparseable_hashes_are_invalid_not_errors() {
        let passwords = small_argon2();
        let garbage = [
            "",
            "not a hash",
            "$argon2id$v=19$m=64,t=1,p=1$",
            "$argon2id$v=19$m=64,t=1,p=1$OAKp49oJMHG5dTGkzK17CQ",
            "$argon2id$v=42$m=64,t=1,p=1$OAKp49oJMHG5dTGkzK17CQ$y7ROs2qZiahdaRN/4Z55MmnRkBJM+a/N7lXhriZhu1A",
            "$argon2id$v=19$m=4294967295,t=1,p=1$OAKp49oJMHG5dTGkzK17CQ$y7ROs2qZiahdaRN/4Z55MmnRkBJM+a/N7lXhriZhu1A",
            "$argon2x$v=19$m=64,t=1,p=1$OAKp49oJMHG5dTGkzK17CQ$y7ROs2qZiahdaRN/4Z55MmnRkBJM+a/N7lXhriZhu1A",
            "$scrypt$ln=10,r=8$+uu0RtreFyTFbhdWe5ss1Q$GXilLLjq6Mi4Pl3JwBdkDCJ+JKxABI05huD6p+P1BSM",
            "$scrypt$ln=40,r=8,p=1$+uu0RtreFyTFbhdWe5ss1Q$GXilLLjq6Mi4Pl3JwBdkDCJ+JKxABI05huD6p+P1BSM",
            "$scrypt$ln=10,r=8,p=1,x=1$+uu0RtreFyTFbhdWe5ss1Q$GXilLLjq6Mi4Pl3JwBdkDCJ+JKxABI05huD6p+P1BSM",
            "$2b$04$short",
            "$2b$99$D5yTv0k4mNWQNt0ARScctuoMW.VdtkvFFUF7m65pdd63FVydORvtu",
            "zz:624cbbe19c4b3d47d6967d94151719a3",
            "8b5c04fb687bb18ca17e87a9fe058a58:abc",
            "8b5c04fb687bb18ca17e87a9fe058a58:00",
            "8b5c04fb687bb18ca17e87a9fe058a58:",
            ":624cbbe19c4b3d47d6967d94151719a3",
        ];
        for stored in garbage {
            let hash = hash_of(stored);
            assert_eq!(
                passwords.verify(PW, &hash).await.unwrap(),
                Verified::Invalid,
                "{stored:?}"
            );
            assert!(passwords.needs_rehash(&hash), "{stored:?}");
        }
    }

    #[tokio::test]
    async fn check_new_counts_characters_for_min_and_bytes_for_max() {
        let passwords = small_argon2();
        let short = passwords.check_new("password", "1234567").unwrap_err();
        assert_eq!(short.code(), ErrorCode::ValidationError);
        assert!(
            short.message().starts_with("password: "),
            "{}",
            short.message()
        );
        passwords.check_new("password", "12345678").unwrap();
        passwords.check_new("password", &"a".repeat(1024)).unwrap();
        let long = passwords
            .check_new("new_password", &"a".repeat(1025))
            .unwrap_err();
        assert_eq!(long.code(), ErrorCode::ValidationError);
        assert!(long.message().starts_with("new_password: "));
        passwords.check_new("password", "").unwrap_err();

        // 8 characters of 3 bytes each: long enough, though 24 bytes.
        passwords.check_new("password", "密码密码密码密码").unwrap();
        // 7 characters of 4 bytes each (28 bytes): too short.
        passwords
            .check_new("password", "😀😀😀😀😀😀😀")
            .unwrap_err();
        // 342 three-byte characters = 1026 bytes: too long though 342 chars.
        passwords
            .check_new("password", &"密".repeat(342))
            .unwrap_err();
        passwords.check_new("password", &"密".repeat(341)).unwrap();
    }

    #[tokio::test]
    async fn new_hashes_never_truncate() {
        let prefix = "x".repeat(72);
        let a = format!("{prefix}-first");
        let b = format!("{prefix}-second");
        for passwords in [small_argon2(), small_scrypt()] {
            passwords.check_new("password", &a).unwrap();
            let hash = passwords.hash(&a).await.unwrap();
            assert!(matches!(
                passwords.verify(&a, &hash).await.unwrap(),
                Verified::Valid { .. }
            ));
            assert_eq!(
                passwords.verify(&b, &hash).await.unwrap(),
                Verified::Invalid
            );
            assert_eq!(
                passwords.verify(&prefix, &hash).await.unwrap(),
                Verified::Invalid
            );
        }
        // Even at the 1024-byte limit only the whole password matches.
        let passwords = small_argon2();
        let max = "y".repeat(1024);
        let hash = passwords.hash(&max).await.unwrap();
        assert_eq!(
            passwords.verify(&max[..1023], &hash).await.unwrap(),
            Verified::Invalid
        );
        assert!(matches!(
            passwords.verify(&max, &hash).await.unwrap(),
            Verified::Valid { .. }
        ));
    }

    #[test]
    fn validate_rejects_each_bad_setting_naming_it() {
        let cases = [
            (PasswordPolicy::argon2id(7, 1, 1), "password.argon2id.m_kib"),
            (
                PasswordPolicy::argon2id(15, 1, 2),
                "password.argon2id.m_kib",
            ),
            (
                PasswordPolicy::argon2id(u32::MAX, 1, 1),
                "password.argon2id.m_kib",
            ),
            (PasswordPolicy::argon2id(64, 0, 1), "password.argon2id.t"),
            (PasswordPolicy::argon2id(64, 1, 0), "password.argon2id.p"),
            (
                PasswordPolicy::argon2id(u32::MAX, 1, 1 << 24),
                "password.argon2id.p",
            ),
            (PasswordPolicy::scrypt(0, 8, 1), "password.scrypt.log_n"),
            (PasswordPolicy::scrypt(64, 8, 1), "password.scrypt.log_n"),
            (PasswordPolicy::scrypt(30, 8, 1), "password.scrypt.log_n"),
            (PasswordPolicy::scrypt(10, 0, 1), "password.scrypt.r"),
            (PasswordPolicy::scrypt(10, 8, 0), "password.scrypt.p"),
            (
                PasswordPolicy::scrypt(10, 1 << 15, 1 << 15),
                "password.scrypt.p",
            ),
            (
                PasswordPolicy::default().min_length(0),
                "password.min_length",
            ),
            (
                PasswordPolicy::default().min_length(64).max_bytes(63),
                "password.max_bytes",
            ),
            (
                PasswordPolicy::default().max_bytes(4097),
                "password.max_bytes",
            ),
            (
                PasswordPolicy::default().max_concurrent(0),
                "password.max_concurrent",
            ),
        ];
        for (policy, field) in cases {
            let err = policy.validate().unwrap_err();
            assert_eq!(err.code(), ErrorCode::ConfigurationError, "{policy:?}");
            assert!(
                err.message().starts_with(&format!("{field}: ")),
                "{policy:?}: {}",
                err.message()
            );
            let err = Passwords::new(policy).unwrap_err();
            assert_eq!(err.code(), ErrorCode::ConfigurationError);
        }
        for ok in [
            PasswordPolicy::default(),
            PasswordPolicy::argon2id(8, 1, 1),
            PasswordPolicy::argon2id(47104, 1, 1),
            PasswordPolicy::scrypt(17, 8, 1),
            PasswordPolicy::default()
                .min_length(1)
                .max_bytes(4096)
                .max_concurrent(1),
            PasswordPolicy::default().min_length(64).max_bytes(64),
        ] {
            ok.validate().unwrap();
        }
    }

    #[tokio::test]
    async fn errors_and_debug_output_never_contain_the_password_or_hash() {
        let secret = "hunter2-secret";
        let passwords = small_argon2();
        let err = passwords.check_new("password", "hunter2").unwrap_err();
        assert!(!format!("{err} {err:?}").contains("hunter2"));
        let long = format!("{secret}{}", "z".repeat(1100));
        let err = passwords.check_new("password", &long).unwrap_err();
        let rendered = format!(
            "{err} {err:?} {}",
            String::from_utf8(err.to_json()).unwrap()
        );
        assert!(!rendered.contains(secret), "{rendered}");

        let hash = passwords.hash(secret).await.unwrap();
        let debug = format!("{passwords:?} {hash:?}");
        assert!(!debug.contains(secret));
        assert!(!debug.contains(hash.as_str()));
        // The reasons logged for unusable hashes are static strings.
        assert!(parse("$argon2id$hunter2-secret").is_err_and(|r| !r.contains(secret)));
        assert!(parse("hunter2:secret").is_err_and(|r| !r.contains("hunter2")));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrency_is_bounded_by_max_concurrent() {
        let passwords =
            Passwords::new(PasswordPolicy::argon2id(64, 1, 1).max_concurrent(1)).unwrap();
        // Hold each blocking task until the test releases it.
        let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let release_rx = Mutex::new(release_rx);
        let started_tx = Mutex::new(started_tx);
        *passwords.inner.probe.hook.lock().unwrap() = Some(Arc::new(move || {
            started_tx.lock().unwrap().send(()).unwrap();
            release_rx.lock().unwrap().recv().unwrap();
        }));

        let tasks: Vec<_> = (0..4)
            .map(|i| {
                let passwords = passwords.clone();
                tokio::spawn(async move {
                    if i % 2 == 0 {
                        passwords.hash(PW).await.map(|_| ())
                    } else {
                        passwords.verify_dummy(PW).await;
                        Ok(())
                    }
                })
            })
            .collect();

        for _ in 0..4 {
            // Exactly one task is inside the blocking section, holding the only permit.
            started_rx.recv_timeout(Duration::from_secs(10)).unwrap();
            assert_eq!(passwords.inner.permits.available_permits(), 0);
            assert_eq!(passwords.inner.probe.active.load(Ordering::SeqCst), 1);
            // No second task may start while this one is held.
            assert!(started_rx.recv_timeout(Duration::from_millis(50)).is_err());
            release_tx.send(()).unwrap();
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        assert_eq!(passwords.inner.probe.peak.load(Ordering::SeqCst), 1);
        assert_eq!(passwords.inner.probe.runs.load(Ordering::SeqCst), 4);
        assert_eq!(passwords.inner.permits.available_permits(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrency_allows_parallel_work_up_to_the_limit() {
        let passwords =
            Passwords::new(PasswordPolicy::argon2id(64, 1, 1).max_concurrent(2)).unwrap();
        // Both tasks must be inside the blocking section at once to pass the barrier.
        let barrier = Arc::new(Barrier::new(2));
        *passwords.inner.probe.hook.lock().unwrap() = Some(Arc::new(move || {
            barrier.wait();
        }));
        let a = tokio::spawn({
            let passwords = passwords.clone();
            async move { passwords.hash(PW).await }
        });
        let b = tokio::spawn({
            let passwords = passwords.clone();
            async move { passwords.hash(PW).await }
        });
        let (a, b) = tokio::time::timeout(Duration::from_secs(30), async { (a.await, b.await) })
            .await
            .expect("two hashes ran in parallel");
        a.unwrap().unwrap();
        b.unwrap().unwrap();
        assert_eq!(passwords.inner.probe.peak.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn verify_dummy_does_the_work_of_a_verification() {
        let passwords = small_scrypt();
        assert!(
            passwords
                .inner
                .dummy
                .as_str()
                .starts_with("$scrypt$ln=10,r=8,p=1$")
        );
        assert!(!passwords.needs_rehash(&passwords.inner.dummy));
        // The dummy hash is of a random secret: no password verifies against it.
        assert_eq!(
            passwords.verify(PW, &passwords.inner.dummy).await.unwrap(),
            Verified::Invalid
        );
        let before = passwords.inner.probe.runs.load(Ordering::SeqCst);
        passwords.verify_dummy(PW).await;
        assert_eq!(
            passwords.inner.probe.runs.load(Ordering::SeqCst),
            before + 1
        );
        assert_eq!(
            passwords.inner.permits.available_permits(),
            passwords.policy().max_concurrent
        );
    }

    #[tokio::test]
    async fn a_panicking_blocking_task_is_an_internal_error() {
        let passwords = small_argon2();
        *passwords.inner.probe.hook.lock().unwrap() = Some(Arc::new(|| panic!("boom")));
        let err = passwords
            .verify(PW, &hash_of(BCRYPTJS_2A))
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::InternalError);
        // The permit came back.
        assert_eq!(
            passwords.inner.permits.available_permits(),
            passwords.policy().max_concurrent
        );
    }

    #[test]
    fn passwords_is_cheap_to_clone_and_send() {
        fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}
        assert_send_sync::<Passwords>();
        let a = small_argon2();
        let b = a.clone();
        assert!(Arc::ptr_eq(&a.inner, &b.inner));
    }
}
