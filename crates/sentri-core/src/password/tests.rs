//! Tests of password hashing and verification.

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
    let passwords = Passwords::new(PasswordPolicy::argon2id(64, 1, 1).max_concurrent(1)).unwrap();
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
                    passwords.verify_dummy(PW).await
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
    let passwords = Passwords::new(
        PasswordPolicy::argon2id(64, 1, 1)
            .max_concurrent(2)
            .max_concurrent_hashes(2),
    )
    .unwrap();
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

/// Holds the first blocking task that enters until the returned sender
/// sends (or is dropped); later ones run freely.
fn hold_first(
    passwords: &Passwords,
) -> (std::sync::mpsc::Receiver<()>, std::sync::mpsc::Sender<()>) {
    let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let first = std::sync::atomic::AtomicBool::new(true);
    let release_rx = Mutex::new(release_rx);
    let started_tx = Mutex::new(started_tx);
    *passwords.inner.probe.hook.lock().unwrap() = Some(Arc::new(move || {
        if first.swap(false, Ordering::SeqCst) {
            started_tx.lock().unwrap().send(()).unwrap();
            let _ = release_rx.lock().unwrap().recv();
        }
    }));
    (started_rx, release_tx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wait_for_a_slot_is_bounded() {
    let passwords = Passwords::new(
        PasswordPolicy::argon2id(64, 1, 1)
            .max_concurrent(1)
            .max_wait(Duration::from_millis(100)),
    )
    .unwrap();
    let (started, release) = hold_first(&passwords);
    let busy = tokio::spawn({
        let passwords = passwords.clone();
        async move { passwords.hash(PW).await }
    });
    tokio::task::spawn_blocking(move || started.recv_timeout(Duration::from_secs(30)))
        .await
        .unwrap()
        .expect("the first hash started");
    // The only slot is taken: every kind of call gives up after max_wait.
    let hash = passwords.hash(PW).await.unwrap_err();
    let verify = passwords
        .verify(PW, &hash_of(BCRYPTJS_2A))
        .await
        .unwrap_err();
    let dummy = passwords.verify_dummy(PW).await.unwrap_err();
    for err in [hash, verify, dummy] {
        assert_eq!(err.code(), ErrorCode::ServiceUnavailable);
        assert_eq!(err.retry_after_secs(), Some(1));
        assert!(!err.message().contains(PW));
    }
    release.send(()).unwrap();
    busy.await.unwrap().unwrap();
    // Freed again: the next call runs.
    passwords.verify_dummy(PW).await.unwrap();
    assert_eq!(passwords.inner.permits.available_permits(), 1);
    assert_eq!(passwords.inner.hash_permits.available_permits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_hashes_leave_slots_to_verifications() {
    // Two slots, of which new hashes may hold one (the default half).
    let passwords = Passwords::new(
        PasswordPolicy::argon2id(64, 1, 1)
            .max_concurrent(2)
            .max_wait(Duration::from_millis(200)),
    )
    .unwrap();
    assert_eq!(passwords.policy().hash_slots(), 1);
    let (started, release) = hold_first(&passwords);
    let held = tokio::spawn({
        let passwords = passwords.clone();
        async move { passwords.hash(PW).await }
    });
    tokio::task::spawn_blocking(move || started.recv_timeout(Duration::from_secs(30)))
        .await
        .unwrap()
        .expect("the first hash started");
    // A second new hash finds the hash share taken, though a slot is free...
    let err = passwords.hash(PW).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::ServiceUnavailable);
    // ...which a verification (a login) still gets.
    assert_eq!(
        passwords
            .verify("wrong", &hash_of(BCRYPTJS_2A))
            .await
            .unwrap(),
        Verified::Invalid
    );
    release.send(()).unwrap();
    held.await.unwrap().unwrap();
}

#[test]
fn hash_share_and_wait_are_validated() {
    let policy = PasswordPolicy::argon2id(64, 1, 1).max_concurrent(4);
    assert_eq!(policy.hash_slots(), 2);
    assert_eq!(policy.wait_bound(), Duration::from_secs(5));
    assert_eq!(policy.clone().max_concurrent(1).hash_slots(), 1);
    assert_eq!(policy.clone().max_concurrent(5).hash_slots(), 3);
    for (bad, field) in [
        (
            policy.clone().max_concurrent_hashes(0),
            "password.max_concurrent_hashes",
        ),
        (
            policy.clone().max_concurrent_hashes(5),
            "password.max_concurrent_hashes",
        ),
        (policy.clone().max_wait(Duration::ZERO), "password.max_wait"),
        (
            policy.clone().max_wait(Duration::from_secs(601)),
            "password.max_wait",
        ),
    ] {
        let err = bad.validate().unwrap_err();
        assert!(err.message().starts_with(field), "{}", err.message());
    }
    policy.max_concurrent_hashes(4).validate().unwrap();
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
    passwords.verify_dummy(PW).await.unwrap();
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
