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
//! - The wait for a slot is bounded ([`PasswordPolicy::max_wait`], default
//!   5 s): beyond it the call fails with `SERVICE_UNAVAILABLE` and a
//!   `Retry-After`, so a flood never builds an unbounded queue.
//! - Hashing new passwords ([`Passwords::hash`]: registration, password
//!   change, re-hash) may hold only part of the slots
//!   ([`PasswordPolicy::max_concurrent_hashes`], default half, rounded up),
//!   so verifications (logins) always have slots of their own and a flood of
//!   registrations cannot starve them.
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
//! // Hashing needs tokio's blocking pool and timer (for `max_wait`).
//! let rt = tokio::runtime::Builder::new_current_thread()
//!     .enable_time()
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
use std::time::Duration;

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
    max_concurrent_hashes: Option<usize>,
    max_wait: Duration,
}

/// The default of [`PasswordPolicy::max_wait`].
const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(5);

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
            max_concurrent_hashes: None,
            max_wait: DEFAULT_MAX_WAIT,
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
    /// of CPUs. Further requests wait for a slot (backpressure), at most
    /// [`PasswordPolicy::max_wait`].
    #[must_use]
    pub fn max_concurrent(mut self, n: usize) -> Self {
        self.max_concurrent = n;
        self
    }

    /// How many of the `max_concurrent` slots may hash new passwords
    /// ([`Passwords::hash`]: registration, password change, re-hash after a
    /// login) at once; verifications (logins) may use every slot. Default:
    /// half of `max_concurrent`, rounded up; between 1 and `max_concurrent`.
    #[must_use]
    pub fn max_concurrent_hashes(mut self, n: usize) -> Self {
        self.max_concurrent_hashes = Some(n);
        self
    }

    /// The longest a hash or verification waits for a free slot before it
    /// fails with `SERVICE_UNAVAILABLE` (with a `Retry-After` of this
    /// duration, rounded up to a second). Default 5 s; between 1 ms and
    /// 10 min. The bound uses tokio's timer: the runtime must have time
    /// enabled (`#[tokio::main]` and `enable_all()` do).
    #[must_use]
    pub fn max_wait(mut self, wait: Duration) -> Self {
        self.max_wait = wait;
        self
    }

    /// The bound of [`PasswordPolicy::max_concurrent_hashes`] in force.
    pub fn hash_slots(&self) -> usize {
        self.max_concurrent_hashes
            .unwrap_or(self.max_concurrent.div_ceil(2))
            .max(1)
    }

    /// The minimum length of a new password in force, in characters
    /// ([`PasswordPolicy::min_length`]).
    pub fn new_password_min_chars(&self) -> usize {
        self.min_length
    }

    /// The maximum length of a new password in force, in bytes of UTF-8
    /// ([`PasswordPolicy::max_bytes`]).
    pub fn new_password_max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// The bound of [`PasswordPolicy::max_wait`].
    pub fn wait_bound(&self) -> Duration {
        self.max_wait
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
        if let Some(n) = self.max_concurrent_hashes
            && (n == 0 || n > self.max_concurrent)
        {
            return Err(Error::configuration(
                "password.max_concurrent_hashes",
                "must be between 1 and max_concurrent",
            ));
        }
        if self.max_wait < Duration::from_millis(1) || self.max_wait > Duration::from_secs(600) {
            return Err(Error::configuration(
                "password.max_wait",
                "must be between 1ms and 10m",
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
    /// Taken before `permits` by [`Passwords::hash`]: new hashes hold at
    /// most `hash_slots` of them.
    hash_permits: Arc<Semaphore>,
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
        let hash_permits = Arc::new(Semaphore::new(policy.hash_slots()));
        Ok(Self {
            inner: Arc::new(Inner {
                policy,
                permits,
                hash_permits,
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
    /// Waits for a free slot (one of the `max_concurrent_hashes` share of
    /// the `max_concurrent` slots), at most `max_wait`. Does not check the
    /// length policy: call [`Passwords::check_new`] first.
    ///
    /// # Errors
    ///
    /// `SERVICE_UNAVAILABLE` with a `Retry-After` when no slot was free
    /// within `max_wait`; `INTERNAL_ERROR` if the blocking task fails.
    pub async fn hash(&self, password: &str) -> Result<PasswordHash> {
        let password = Zeroizing::new(password.as_bytes().to_vec());
        let algorithm = self.inner.policy.algorithm.clone();
        let phc = self
            .run_blocking(true, move || hash_blocking(&algorithm, &password))
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
    /// `SERVICE_UNAVAILABLE` with a `Retry-After` when no slot was free
    /// within `max_wait`; `INTERNAL_ERROR` only for an internal failure,
    /// e.g. the blocking task panicked.
    pub async fn verify(&self, password: &str, hash: &PasswordHash) -> Result<Verified> {
        let password = Zeroizing::new(password.as_bytes().to_vec());
        let stored = Zeroizing::new(hash.as_str().to_owned());
        let outcome = self
            .run_blocking(false, move || verify_blocking(&password, &stored))
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
    /// and return nothing else.
    ///
    /// Call it when the identifier is unknown, so that an unknown identifier
    /// and a wrong password take the same time, and fail alike when the
    /// hashing slots are busy.
    ///
    /// # Errors
    ///
    /// As [`Passwords::verify`]: `SERVICE_UNAVAILABLE` when no slot was free
    /// within `max_wait`, `INTERNAL_ERROR` for an internal failure.
    pub async fn verify_dummy(&self, password: &str) -> Result<()> {
        let password = Zeroizing::new(password.as_bytes().to_vec());
        let stored = Zeroizing::new(self.inner.dummy.as_str().to_owned());
        self.run_blocking(false, move || verify_blocking(&password, &stored))
            .await
            .map(|_| ())
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

    /// Run `f` on the blocking pool once a concurrency permit is free (for
    /// a new hash, `new_hash`, first one of the hash share), waiting at most
    /// `max_wait` in all. The blocking task owns the permits, so they are
    /// released only when the work is done, even if this future is dropped.
    async fn run_blocking<T, F>(&self, new_hash: bool, f: F) -> Result<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let wait = self.inner.policy.max_wait;
        let acquire = async {
            let share = if new_hash {
                Some(Arc::clone(&self.inner.hash_permits).acquire_owned().await?)
            } else {
                None
            };
            let permit = Arc::clone(&self.inner.permits).acquire_owned().await?;
            Ok::<_, tokio::sync::AcquireError>((share, permit))
        };
        let permits = match tokio::time::timeout(wait, acquire).await {
            Ok(permits) => permits.map_err(Error::internal)?,
            Err(_) => {
                tracing::warn!(
                    waited_ms = wait.as_millis() as u64,
                    new_hash,
                    "no password hashing slot became free in time; refusing the request"
                );
                return Err(busy(wait));
            }
        };
        #[cfg(test)]
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let _permits = permits;
            #[cfg(test)]
            let _running = inner.probe.enter();
            f()
        })
        .await
        .map_err(Error::internal)
    }
}

/// `SERVICE_UNAVAILABLE` for a full queue (hashing slots, login turns),
/// retry after `wait`.
pub(crate) fn busy(wait: Duration) -> Error {
    Error::with_message(
        crate::error::ErrorCode::ServiceUnavailable,
        "the server is busy; try again shortly",
    )
    .with_retry_after(wait.max(Duration::from_secs(1)))
}

mod formats;
#[cfg(test)]
mod tests;

pub(crate) use formats::decode_hex;
use formats::*;
