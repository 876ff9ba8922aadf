//! Target `secrets`: the secret decoders. The first byte of an input picks what the rest is:
//!
//! - 0: text given to `Vault::decrypt_secret` (base64 RSA-OAEP-SHA256 from OIAnalytics);
//! - 1: text given to `LocalCipher::open_secret` (a value sealed at rest);
//! - 2: `[len][plaintext][edits]`: the plaintext is sealed, the edits flip bytes of the sealed
//!   value, and the result is opened;
//! - 3: the same with RSA: encrypted with the vault's public key, edited, decrypted;
//! - 4: a JSON settings tree walked as the KeyVault's `DecryptSettings` does, with the secret
//!   paths of every known connector type and those the unknown-type heuristic finds.
//!
//! The vault holds a fixed RSA-1024 pair (generated from a fixed seed) and a fixed local key, so
//! an input behaves the same in every run. 1024 bits, not the 4096 OIAnalytics uses: the code
//! does not depend on the size, and a private-key operation of the instrumented build is the cost
//! of an execution. Invariants: no panic; every RSA failure is the one
//! generic error (no padding oracle); an untouched value opens to its plaintext and an edited one
//! never does; blanked secrets are never decrypted; every path the heuristic records addresses
//! the value it found.

use std::collections::{BTreeSet, HashMap};
use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::sync::OnceLock;

use crate::key_vault::{
    encrypt_for, DecryptError, KeySize, KeyVaultError, LocalCipher, SealError, Vault,
    LOCAL_KEY_FILE, PRIVATE_KEY_FILE,
};
use crate::secrets_paths::{self, ConnectorKind, SecretPathError};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use rand::SeedableRng;
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use serde_json::Value;

fn vault() -> &'static Vault {
    static VAULT: OnceLock<Vault> = OnceLock::new();
    VAULT.get_or_init(|| {
        // Setup failures are a broken environment, not findings.
        let dir = super::scratch_dir("secrets").join("vault");
        DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .expect("vault folder");
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x01b5);
        let key = rsa::RsaPrivateKey::new(&mut rng, 1024).expect("RSA key");
        let pem = key.to_pkcs8_pem(LineEnding::LF).expect("PKCS#8 PEM");
        write_private(&dir.join(PRIVATE_KEY_FILE), pem.as_bytes());
        write_private(&dir.join(LOCAL_KEY_FILE), &[0x5a; 32]);
        // The size applies to the next generation only: the loaded pair keeps its own.
        Vault::open(&dir, KeySize::Bits2048).expect("fuzzing vault")
    })
}

fn write_private(path: &std::path::Path, bytes: &[u8]) {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .expect("vault file");
    file.write_all(bytes).expect("vault file contents");
}

pub fn run(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let vault = vault();
    match mode % 5 {
        0 => decrypt(vault, &String::from_utf8_lossy(rest)),
        1 => open(&vault.cipher(), &String::from_utf8_lossy(rest)),
        2 => seal_and_tamper(&vault.cipher(), rest),
        3 => encrypt_and_tamper(vault, rest),
        _ => walk_settings(vault, rest),
    }
}

fn is_generic(e: &KeyVaultError) -> bool {
    matches!(e, KeyVaultError::Decrypt(DecryptError::Undecryptable))
}

fn decrypt(vault: &Vault, text: &str) {
    match vault.decrypt_secret(text) {
        Ok(plain) => assert!(text.is_empty() && plain.expose().is_empty()),
        Err(e) => assert!(is_generic(&e), "not the generic error: {e:?}"),
    }
}

fn open(cipher: &LocalCipher, text: &str) {
    let raw = cipher.open(text);
    match cipher.open_secret(text) {
        Ok(plain) => assert_eq!(raw.ok(), Some(plain.expose().as_bytes().to_vec())),
        Err(SealError::NotUtf8) => assert!(raw.is_ok()),
        Err(e) => assert_eq!(raw.err(), Some(e)),
    }
}

/// `[len][plaintext: len bytes][edits: (offset u16 LE, xor)...]`.
fn split_edits(data: &[u8]) -> (&[u8], Vec<(usize, u8)>) {
    let Some((&len, rest)) = data.split_first() else {
        return (&[], Vec::new());
    };
    let (plain, edits) = rest.split_at(usize::from(len).min(rest.len()));
    let edits = edits
        .chunks_exact(3)
        .map(|e| (usize::from(u16::from_le_bytes([e[0], e[1]])), e[2]))
        .collect();
    (plain, edits)
}

/// Apply the edits; whether the bytes changed.
fn tamper(bytes: &mut [u8], edits: &[(usize, u8)]) -> bool {
    if bytes.is_empty() {
        return false;
    }
    let original = bytes.to_vec();
    let len = bytes.len();
    for &(offset, xor) in edits {
        bytes[offset % len] ^= xor;
    }
    original != bytes
}

fn seal_and_tamper(cipher: &LocalCipher, data: &[u8]) {
    let (plain, edits) = split_edits(data);
    let sealed = cipher.seal(plain);
    let mut raw = BASE64.decode(&sealed).expect("a sealed value is base64");
    let changed = tamper(&mut raw, &edits);
    match cipher.open(&BASE64.encode(&raw)) {
        Ok(opened) => {
            assert!(!changed, "an altered sealed value opened");
            assert_eq!(opened, plain);
        }
        Err(e) => assert!(changed, "an untouched sealed value failed: {e}"),
    }
}

fn encrypt_and_tamper(vault: &Vault, data: &[u8]) {
    let (plain, edits) = split_edits(data);
    let plain = String::from_utf8_lossy(plain);
    let public = vault
        .public_key_pem()
        .expect("the fuzzing vault has a pair");
    let Ok(ciphertext) = encrypt_for(public, &plain) else {
        return; // longer than RSA-OAEP can carry: OIAnalytics could not send it either
    };
    let mut raw = BASE64.decode(&ciphertext).expect("ciphertext is base64");
    let changed = tamper(&mut raw, &edits);
    match vault.decrypt_secret(&BASE64.encode(&raw)) {
        Ok(opened) => {
            assert!(!changed, "an altered ciphertext decrypted");
            assert_eq!(opened.expose(), &plain);
        }
        Err(e) => {
            assert!(changed, "an untouched ciphertext failed: {e}");
            assert!(is_generic(&e), "not the generic error: {e:?}");
        }
    }
}

fn walk_settings(vault: &Vault, data: &[u8]) {
    let Ok(settings) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let modulus = vault
        .key_pair()
        .expect("the fuzzing vault has a pair")
        .modulus_bytes();
    // The heuristic for unknown types: each recorded path must reach what it found.
    let found = secrets_paths::ciphertext_paths(&settings, modulus);
    let mut blanked = settings.clone();
    secrets_paths::blank_paths(&found, &mut blanked);
    let left = secrets_paths::ciphertext_paths(&blanked, modulus);
    assert!(
        left.is_empty(),
        "recorded paths {found:?} do not reach the ciphertext at {left:?}"
    );
    // RSA decryption is the slow part: each distinct ciphertext is decrypted once per input.
    let mut decrypted = HashMap::new();
    check_paths(vault, &mut decrypted, &found, &settings);
    let known: BTreeSet<&[&str]> = [ConnectorKind::South, ConnectorKind::North]
        .into_iter()
        .flat_map(|kind| {
            secrets_paths::connector_types(kind)
                .map(move |connector_type| secrets_paths::secret_paths(kind, connector_type))
        })
        .collect();
    for paths in known {
        check_paths(vault, &mut decrypted, paths, &settings);
    }
}

/// Decrypt, keep and blank along `paths` as the agent does on the way in and out.
fn check_paths<P: AsRef<str>>(
    vault: &Vault,
    cache: &mut HashMap<String, Result<String, KeyVaultError>>,
    paths: &[P],
    settings: &Value,
) {
    let mut decrypted = settings.clone();
    let decrypt = |s: &str| {
        cache
            .entry(s.to_owned())
            .or_insert_with(|| vault.decrypt_secret(s).map(crate::Secret::into_inner))
            .clone()
    };
    match secrets_paths::decrypt_paths(paths, &mut decrypted, decrypt) {
        Ok(()) => {}
        Err(SecretPathError::Decrypt { source, .. }) => assert!(is_generic(&source)),
        Err(SecretPathError::NotAString { .. }) => {}
    }
    // "Empty keeps the previous value", then blank for the way out: nothing left to decrypt.
    let mut kept = Value::Object(Default::default());
    secrets_paths::keep_previous_paths(paths, &mut kept, settings);
    let mut outbound = settings.clone();
    secrets_paths::blank_paths(paths, &mut outbound);
    let never = |s: &str| -> Result<String, ()> { panic!("a blanked secret was decrypted: {s}") };
    let _ = secrets_paths::decrypt_paths(paths, &mut outbound, never);
}
