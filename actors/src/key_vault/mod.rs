//! KeyVault: the RSA key pair OIAnalytics encrypts secrets with, and the local key that seals
//! secrets at rest.
//!
//! This module is the pure part: key material, the vault files and the crypto, usable without
//! actix. [`actor`] holds the actix shell ([`KeyVault`]), which takes `DecryptSettings`,
//! `RegenerateKeys`, `GetPublicKey` and `GetLocalCipher`.
//!
//! Files in `<data_dir>/vault` (directory 0700, every file created 0600):
//! - `local.key`: 32 random bytes, the AES-256-GCM key for secrets at rest. Created once.
//! - `private.pem`: the RSA private key, PKCS#8 PEM. The single source of truth for the pair.
//! - `public.pem`: the matching SPKI PEM, for operators. It is derived from `private.pem` and
//!   rewritten on open if it is missing or stale.
//!
//! Every file is written to a temporary file in the same directory, synced, renamed over the
//! target, and the directory is synced. Because the pair lives in one file, replacing it is a
//! single rename: a crash leaves either the old pair or the new one, never a mix.

pub mod actor;

use std::fmt;
use std::fs::{self, DirBuilder, File};
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use rand::rngs::OsRng;
use rand::RngCore;
use rsa::pkcs8::der::zeroize::Zeroizing;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::traits::PublicKeyParts;
use rsa::{Oaep, RsaPrivateKey, RsaPublicKey};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::atomic_file::{self, TMP_PREFIX};
use crate::Secret;

pub use actor::{DecryptSettings, GetLocalCipher, GetPublicKey, KeyVault, RegenerateKeys};

/// File holding the 32-byte local AES key.
pub const LOCAL_KEY_FILE: &str = "local.key";
/// File holding the RSA private key (PKCS#8 PEM).
pub const PRIVATE_KEY_FILE: &str = "private.pem";
/// File holding the RSA public key (SPKI PEM), derived from [`PRIVATE_KEY_FILE`].
pub const PUBLIC_KEY_FILE: &str = "public.pem";

const DIR_MODE: u32 = 0o700;
const LOCAL_KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// First byte of every sealed value, so the format can evolve.
const SEAL_VERSION: u8 = 1;

/// RSA modulus size. OIAnalytics expects 4096; smaller sizes exist for tests and slow devices.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub enum KeySize {
    Bits2048,
    Bits3072,
    #[default]
    Bits4096,
}

impl KeySize {
    pub fn bits(self) -> usize {
        match self {
            KeySize::Bits2048 => 2048,
            KeySize::Bits3072 => 3072,
            KeySize::Bits4096 => 4096,
        }
    }
}

impl TryFrom<u32> for KeySize {
    type Error = String;

    fn try_from(bits: u32) -> Result<Self, Self::Error> {
        match bits {
            2048 => Ok(KeySize::Bits2048),
            3072 => Ok(KeySize::Bits3072),
            4096 => Ok(KeySize::Bits4096),
            other => Err(format!(
                "RSA key size {other} is not supported; use 2048, 3072 or 4096"
            )),
        }
    }
}

impl From<KeySize> for u32 {
    fn from(size: KeySize) -> u32 {
        // At most 4096: the conversion cannot truncate.
        size.bits() as u32
    }
}

/// What OIAnalytics does to send a secret: RSA-OAEP-SHA256 with `public_pem` (SPKI), base64.
/// The agent never needs it; the demo and the tests play OIAnalytics with it.
pub fn encrypt_for(public_pem: &str, plaintext: &str) -> Result<String, String> {
    use rsa::pkcs8::DecodePublicKey;
    let key = RsaPublicKey::from_public_key_pem(public_pem)
        .map_err(|e| format!("not an SPKI PEM public key: {e}"))?;
    let ciphertext = key
        .encrypt(&mut OsRng, Oaep::new::<Sha256>(), plaintext.as_bytes())
        .map_err(|e| format!("cannot encrypt: {e}"))?;
    Ok(BASE64.encode(ciphertext))
}

/// Why an RSA secret from OIAnalytics could not be decrypted.
///
/// Deliberately a single variant with a fixed message: telling bad base64, a wrong length, bad
/// padding and bad UTF-8 apart would turn the agent into a padding oracle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecryptError {
    #[error(
        "secret could not be decrypted: it is not RSA-OAEP-SHA256 ciphertext for this agent's \
         current public key (was it encrypted with an older key?)"
    )]
    Undecryptable,
}

/// Why a locally sealed value could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("sealed value is not valid base64")]
    NotBase64,
    #[error("sealed value is too short ({len} bytes) to hold a version, a nonce and a tag")]
    TooShort { len: usize },
    #[error("sealed value has format version {version}, this agent knows version {SEAL_VERSION}")]
    UnknownVersion { version: u8 },
    #[error(
        "sealed value failed authentication: it was altered, or sealed with another local key \
         (was {LOCAL_KEY_FILE} replaced?)"
    )]
    Tampered,
    #[error("sealed value opened but is not UTF-8 text")]
    NotUtf8,
}

/// Everything that can go wrong in the vault. Clone so one key generation result can be handed
/// to every caller waiting on it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KeyVaultError {
    #[error("key vault: cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: Arc<io::Error>,
    },
    #[error(
        "key vault: {} is not a directory; move it away so the vault can be created",
        path.display()
    )]
    NotADirectory { path: PathBuf },
    #[error(
        "key vault: {} is {len} bytes instead of {LOCAL_KEY_LEN}, so it is corrupt. Restore it \
         from a backup: replacing it makes every secret stored so far unreadable",
        path.display()
    )]
    LocalKeyCorrupt { path: PathBuf, len: usize },
    #[error(
        "key vault: {} is not a PKCS#8 PEM RSA private key ({reason}). Restore it from a \
         backup, or delete it and regenerate the cipher keys (OIAnalytics then needs the new \
         public key)",
        path.display()
    )]
    PrivateKeyCorrupt { path: PathBuf, reason: String },
    #[error("key vault: RSA key generation failed: {0}")]
    Generate(String),
    #[error("key vault: the key generation task stopped before finishing: {0}")]
    GenerationAborted(String),
    #[error("key vault: no RSA key pair yet; regenerate the cipher keys first")]
    NoKeyPair,
    #[error(transparent)]
    Decrypt(#[from] DecryptError),
}

impl KeyVaultError {
    fn io(action: &'static str, path: &Path, source: io::Error) -> Self {
        KeyVaultError::Io {
            action,
            path: path.to_path_buf(),
            source: Arc::new(source),
        }
    }
}

/// The RSA pair OIAnalytics encrypts secrets for.
pub struct KeyPair {
    private: RsaPrivateKey,
    public_pem: String,
}

impl KeyPair {
    /// Generates a fresh pair. CPU-heavy (seconds for 4096 bits): call it off the actor thread.
    pub fn generate(size: KeySize) -> Result<KeyPair, KeyVaultError> {
        let private = RsaPrivateKey::new(&mut OsRng, size.bits())
            .map_err(|e| KeyVaultError::Generate(e.to_string()))?;
        KeyPair::from_private(private).map_err(KeyVaultError::Generate)
    }

    fn from_private(private: RsaPrivateKey) -> Result<KeyPair, String> {
        let public_pem = RsaPublicKey::from(&private)
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| format!("cannot encode the public key: {e}"))?;
        Ok(KeyPair {
            private,
            public_pem,
        })
    }

    fn from_private_pem(pem: &str) -> Result<KeyPair, String> {
        let private = RsaPrivateKey::from_pkcs8_pem(pem).map_err(|e| e.to_string())?;
        KeyPair::from_private(private)
    }

    fn private_pem(&self) -> Result<Zeroizing<String>, KeyVaultError> {
        self.private
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| KeyVaultError::Generate(format!("cannot encode the private key: {e}")))
    }

    /// The public key as SPKI PEM (`-----BEGIN PUBLIC KEY-----`), as OIAnalytics expects it.
    pub fn public_pem(&self) -> &str {
        &self.public_pem
    }

    /// Modulus length in bytes, which is also the length of every ciphertext for this key.
    pub fn modulus_bytes(&self) -> usize {
        self.private.size()
    }

    /// Decrypts an OIAnalytics secret: standard base64 of RSA-OAEP (SHA-256 for the hash and
    /// MGF1, empty label) over UTF-8 text. An empty input means "keep the previous value" and
    /// yields an empty secret; the caller applies the keep rule.
    pub fn decrypt_secret(&self, ciphertext_b64: &str) -> Result<Secret<String>, DecryptError> {
        if ciphertext_b64.is_empty() {
            return Ok(Secret::new(String::new()));
        }
        let ciphertext = BASE64
            .decode(ciphertext_b64)
            .map_err(|_| DecryptError::Undecryptable)?;
        // Blinding keeps decryption time independent of the key and the ciphertext.
        let plain = Zeroizing::new(
            self.private
                .decrypt_blinded(&mut OsRng, Oaep::new::<Sha256>(), &ciphertext)
                .map_err(|_| DecryptError::Undecryptable)?,
        );
        String::from_utf8(plain.to_vec())
            .map(Secret::new)
            .map_err(|_| DecryptError::Undecryptable)
    }
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair")
            .field("modulus_bits", &(self.modulus_bytes() * 8))
            .field("private", &"***")
            .finish()
    }
}

/// AES-256-GCM with the vault's local key: seals secrets at rest. Cheap to clone (an `Arc`), and
/// used synchronously by stores and actors without a mailbox round trip.
///
/// Sealed format: standard base64 of `version (1 byte) || nonce (12 bytes) || ciphertext+tag`.
/// The version byte is also the associated data, so it cannot be altered either.
#[derive(Clone)]
pub struct LocalCipher(Arc<Aes256Gcm>);

impl LocalCipher {
    fn from_key(key: &[u8; LOCAL_KEY_LEN]) -> LocalCipher {
        LocalCipher(Arc::new(Aes256Gcm::new(key.into())))
    }

    /// Encrypts `plaintext` under a fresh random 96-bit nonce.
    pub fn seal(&self, plaintext: &[u8]) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let version = [SEAL_VERSION];
        let payload = Payload {
            msg: plaintext,
            aad: &version,
        };
        // AES-GCM only fails for inputs over 64 GiB; secrets are a few bytes, so failing here is
        // a bug in the caller.
        let ciphertext = self
            .0
            .encrypt(Nonce::from_slice(&nonce), payload)
            .expect("AES-GCM input under 64 GiB");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        out.push(SEAL_VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        BASE64.encode(out)
    }

    /// Decrypts a value made by [`LocalCipher::seal`] with the same local key.
    pub fn open(&self, sealed: &str) -> Result<Vec<u8>, SealError> {
        let raw = BASE64.decode(sealed).map_err(|_| SealError::NotBase64)?;
        if raw.len() < 1 + NONCE_LEN + TAG_LEN {
            return Err(SealError::TooShort { len: raw.len() });
        }
        let (version, rest) = raw.split_at(1);
        if version[0] != SEAL_VERSION {
            return Err(SealError::UnknownVersion {
                version: version[0],
            });
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let payload = Payload {
            msg: ciphertext,
            aad: version,
        };
        self.0
            .decrypt(Nonce::from_slice(nonce), payload)
            .map_err(|_| SealError::Tampered)
    }

    /// [`LocalCipher::seal`] for a text secret.
    pub fn seal_secret(&self, secret: &Secret<String>) -> String {
        self.seal(secret.expose().as_bytes())
    }

    /// [`LocalCipher::open`] for a text secret.
    pub fn open_secret(&self, sealed: &str) -> Result<Secret<String>, SealError> {
        let plain = self.open(sealed)?;
        String::from_utf8(plain)
            .map(Secret::new)
            .map_err(|_| SealError::NotUtf8)
    }
}

impl fmt::Debug for LocalCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LocalCipher(***)")
    }
}

/// The vault: its directory, the local cipher and the current RSA pair, if any.
#[derive(Debug)]
pub struct Vault {
    dir: PathBuf,
    key_size: KeySize,
    cipher: LocalCipher,
    pair: Option<KeyPair>,
}

impl Vault {
    /// Opens the vault in `dir`, creating the directory (0700) and the local key if missing, and
    /// loading the RSA pair if one was generated before. `key_size` applies to the next
    /// generation; a loaded pair keeps its own size.
    pub fn open(dir: impl Into<PathBuf>, key_size: KeySize) -> Result<Vault, KeyVaultError> {
        let dir = dir.into();
        prepare_dir(&dir)?;
        remove_stale_temp_files(&dir)?;
        let cipher = load_or_create_local_key(&dir)?;
        let pair = load_pair(&dir)?;
        Ok(Vault {
            dir,
            key_size,
            cipher,
            pair,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn key_size(&self) -> KeySize {
        self.key_size
    }

    /// A handle on the local cipher, shareable across threads.
    pub fn cipher(&self) -> LocalCipher {
        self.cipher.clone()
    }

    pub fn key_pair(&self) -> Option<&KeyPair> {
        self.pair.as_ref()
    }

    /// The current public key (SPKI PEM), or `None` before the first generation.
    pub fn public_key_pem(&self) -> Option<&str> {
        self.pair.as_ref().map(KeyPair::public_pem)
    }

    /// Decrypts an OIAnalytics secret with the current pair. `""` means "keep" and decrypts to
    /// an empty secret even when there is no pair yet.
    pub fn decrypt_secret(&self, ciphertext_b64: &str) -> Result<Secret<String>, KeyVaultError> {
        if ciphertext_b64.is_empty() {
            return Ok(Secret::new(String::new()));
        }
        let pair = self.pair.as_ref().ok_or(KeyVaultError::NoKeyPair)?;
        Ok(pair.decrypt_secret(ciphertext_b64)?)
    }

    /// The work of a regeneration, detached from `self` so it can run on a blocking thread.
    pub fn generation(&self) -> PairGeneration {
        PairGeneration {
            dir: self.dir.clone(),
            key_size: self.key_size,
        }
    }

    /// Makes `pair` current in memory. Call it only with a pair that [`PairGeneration::run`]
    /// has already put on disk.
    pub fn install(&mut self, pair: KeyPair) {
        self.pair = Some(pair);
    }

    /// Generates, stores and installs a new pair, blocking the calling thread. Returns the new
    /// public key.
    pub fn regenerate(&mut self) -> Result<&str, KeyVaultError> {
        let pair = self.generation().run()?;
        Ok(self.pair.insert(pair).public_pem())
    }
}

/// A pending key regeneration: generate a pair, then store it in the vault directory.
#[derive(Debug, Clone)]
pub struct PairGeneration {
    dir: PathBuf,
    key_size: KeySize,
}

impl PairGeneration {
    /// Generates the pair and puts it on disk. Until the final rename of `private.pem`, the old
    /// pair is what is on disk; after it, the new one is.
    pub fn run(self) -> Result<KeyPair, KeyVaultError> {
        let pair = KeyPair::generate(self.key_size)?;
        let private_pem = pair.private_pem()?;
        write_atomically(&self.dir, PRIVATE_KEY_FILE, private_pem.as_bytes())?;
        write_atomically(&self.dir, PUBLIC_KEY_FILE, pair.public_pem().as_bytes())?;
        Ok(pair)
    }
}

fn prepare_dir(dir: &Path) -> Result<(), KeyVaultError> {
    match fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => Err(KeyVaultError::NotADirectory {
            path: dir.to_path_buf(),
        }),
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                // An existing directory others can read: tighten it before reading secrets.
                tracing::warn!(dir = %dir.display(), mode = format!("{mode:o}"),
                    "key vault directory was accessible to others; setting it to 0700");
                fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE))
                    .map_err(|e| KeyVaultError::io("restrict permissions of", dir, e))?;
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(dir)
            .map_err(|e| KeyVaultError::io("create directory", dir, e)),
        Err(e) => Err(KeyVaultError::io("inspect", dir, e)),
    }
}

fn remove_stale_temp_files(dir: &Path) -> Result<(), KeyVaultError> {
    let entries = fs::read_dir(dir).map_err(|e| KeyVaultError::io("list", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| KeyVaultError::io("list", dir, e))?;
        if entry.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
            let path = entry.path();
            fs::remove_file(&path)
                .map_err(|e| KeyVaultError::io("remove leftover temporary file", &path, e))?;
        }
    }
    Ok(())
}

/// Reads a vault file, or `None` if it does not exist. Warns if others may read it.
fn read_vault_file(path: &Path) -> Result<Option<Zeroizing<Vec<u8>>>, KeyVaultError> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(KeyVaultError::io("open", path, e)),
    };
    let meta = file
        .metadata()
        .map_err(|e| KeyVaultError::io("inspect", path, e))?;
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(file = %path.display(), "key vault file is accessible to others; it should be 0600");
    }
    let mut contents = Zeroizing::new(Vec::new());
    file.read_to_end(&mut contents)
        .map_err(|e| KeyVaultError::io("read", path, e))?;
    Ok(Some(contents))
}

fn load_or_create_local_key(dir: &Path) -> Result<LocalCipher, KeyVaultError> {
    let path = dir.join(LOCAL_KEY_FILE);
    if let Some(contents) = read_vault_file(&path)? {
        let key: &[u8; LOCAL_KEY_LEN] =
            contents
                .as_slice()
                .try_into()
                .map_err(|_| KeyVaultError::LocalKeyCorrupt {
                    path: path.clone(),
                    len: contents.len(),
                })?;
        return Ok(LocalCipher::from_key(key));
    }
    let mut key = Zeroizing::new([0u8; LOCAL_KEY_LEN]);
    OsRng.fill_bytes(key.as_mut());
    write_atomically(dir, LOCAL_KEY_FILE, key.as_ref())?;
    tracing::info!(file = %path.display(), "created the local key that seals secrets at rest");
    Ok(LocalCipher::from_key(&key))
}

/// Loads the pair from `private.pem` and makes `public.pem` match it.
fn load_pair(dir: &Path) -> Result<Option<KeyPair>, KeyVaultError> {
    let private_path = dir.join(PRIVATE_KEY_FILE);
    let public_path = dir.join(PUBLIC_KEY_FILE);
    let Some(contents) = read_vault_file(&private_path)? else {
        // A public key without its private key is useless and misleading.
        match fs::remove_file(&public_path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(KeyVaultError::io("remove orphan", &public_path, e))
            }
            _ => return Ok(None),
        }
    };
    let corrupt = |reason: String| KeyVaultError::PrivateKeyCorrupt {
        path: private_path.clone(),
        reason,
    };
    let pem = std::str::from_utf8(&contents).map_err(|_| corrupt("not UTF-8 text".into()))?;
    let pair = KeyPair::from_private_pem(pem).map_err(corrupt)?;
    let on_disk = read_vault_file(&public_path)?;
    if on_disk.as_deref().map(Vec::as_slice) != Some(pair.public_pem().as_bytes()) {
        // A crash between the two renames of a regeneration leaves the old public key.
        write_atomically(dir, PUBLIC_KEY_FILE, pair.public_pem().as_bytes())?;
    }
    Ok(Some(pair))
}

/// Writes `contents` to `dir/name` whole and readable by its owner only; see [`atomic_file`].
fn write_atomically(dir: &Path, name: &str, contents: &[u8]) -> Result<(), KeyVaultError> {
    atomic_file::write_private(&dir.join(name), contents)
        .map_err(|e| KeyVaultError::io(e.step, &e.path, e.source))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEST_SIZE: KeySize = KeySize::Bits2048;

    fn vault_with_pair(dir: &Path) -> Vault {
        let mut vault = Vault::open(dir, TEST_SIZE).unwrap();
        vault.regenerate().unwrap();
        vault
    }

    fn encrypt_for(public_pem: &str, plaintext: &str) -> String {
        super::encrypt_for(public_pem, plaintext).unwrap()
    }

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn secret_encrypted_with_the_public_key_decrypts() {
        let tmp = tempfile::tempdir().unwrap();
        let vault = vault_with_pair(&tmp.path().join("vault"));
        let pem = vault.public_key_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"));
        let ciphertext = encrypt_for(pem, "pässword");
        let secret = vault.decrypt_secret(&ciphertext).unwrap();
        assert_eq!(secret.expose(), "pässword");
    }

    #[test]
    fn tampered_ciphertext_and_garbage_fail_with_the_same_generic_error() {
        let tmp = tempfile::tempdir().unwrap();
        let vault = vault_with_pair(tmp.path());
        let pair = vault.key_pair().unwrap();
        let mut raw = BASE64
            .decode(encrypt_for(pair.public_pem(), "secret"))
            .unwrap();
        raw[10] ^= 0x01;
        let tampered = BASE64.encode(&raw);
        let short = BASE64.encode(&raw[..100]);
        let errors: Vec<String> = [tampered.as_str(), "not base64!", &short]
            .iter()
            .map(|input| pair.decrypt_secret(input).unwrap_err().to_string())
            .collect();
        assert!(errors.iter().all(|e| *e == errors[0]), "{errors:?}");
        assert_eq!(
            pair.decrypt_secret("%%%").unwrap_err(),
            DecryptError::Undecryptable
        );
    }

    #[test]
    fn ciphertext_of_invalid_utf8_is_undecryptable() {
        let tmp = tempfile::tempdir().unwrap();
        let vault = vault_with_pair(tmp.path());
        let public = RsaPublicKey::from(&vault.key_pair().unwrap().private);
        let ciphertext = public
            .encrypt(&mut OsRng, Oaep::new::<Sha256>(), &[0xff, 0xfe])
            .unwrap();
        assert_eq!(
            vault
                .key_pair()
                .unwrap()
                .decrypt_secret(&BASE64.encode(ciphertext))
                .unwrap_err(),
            DecryptError::Undecryptable
        );
    }

    #[test]
    fn empty_ciphertext_means_keep_even_without_a_key_pair() {
        let tmp = tempfile::tempdir().unwrap();
        let vault = Vault::open(tmp.path(), TEST_SIZE).unwrap();
        assert!(vault.decrypt_secret("").unwrap().is_empty());
        assert!(matches!(
            vault.decrypt_secret("abcd"),
            Err(KeyVaultError::NoKeyPair)
        ));
    }

    #[test]
    fn vault_directory_is_0700_and_every_file_0600() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data").join("vault");
        vault_with_pair(&dir);
        assert_eq!(mode_of(&dir), 0o700);
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
        for name in [LOCAL_KEY_FILE, PRIVATE_KEY_FILE, PUBLIC_KEY_FILE] {
            assert_eq!(mode_of(&dir.join(name)), 0o600, "{name}");
        }
        let private = fs::read_to_string(dir.join(PRIVATE_KEY_FILE)).unwrap();
        assert!(private.starts_with("-----BEGIN PRIVATE KEY-----"));
    }

    #[test]
    fn existing_vault_directory_open_to_others_is_restricted() {
        let tmp = tempfile::tempdir().unwrap();
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
        Vault::open(tmp.path(), TEST_SIZE).unwrap();
        assert_eq!(mode_of(tmp.path()), 0o700);
    }

    #[test]
    fn sealed_value_opens_to_the_original() {
        let tmp = tempfile::tempdir().unwrap();
        let cipher = Vault::open(tmp.path(), TEST_SIZE).unwrap().cipher();
        let sealed = cipher.seal(b"hunter2");
        assert_eq!(cipher.open(&sealed).unwrap(), b"hunter2");
        let secret = Secret::new("s3cr3t".to_string());
        let opened = cipher.open_secret(&cipher.seal_secret(&secret)).unwrap();
        assert_eq!(opened, secret);
        assert_eq!(cipher.open(&cipher.seal(b"")).unwrap(), b"");
    }

    #[test]
    fn flipping_any_byte_of_a_sealed_value_is_detected() {
        let tmp = tempfile::tempdir().unwrap();
        let cipher = Vault::open(tmp.path(), TEST_SIZE).unwrap().cipher();
        let raw = BASE64.decode(cipher.seal(b"hunter2")).unwrap();
        for i in 1..raw.len() {
            let mut bad = raw.clone();
            bad[i] ^= 0x80;
            assert_eq!(
                cipher.open(&BASE64.encode(&bad)),
                Err(SealError::Tampered),
                "byte {i}"
            );
        }
        let mut bad_version = raw.clone();
        bad_version[0] = 9;
        assert_eq!(
            cipher.open(&BASE64.encode(&bad_version)),
            Err(SealError::UnknownVersion { version: 9 })
        );
        assert_eq!(
            cipher.open(&BASE64.encode(&raw[..20])),
            Err(SealError::TooShort { len: 20 })
        );
        assert_eq!(cipher.open("***"), Err(SealError::NotBase64));
    }

    #[test]
    fn two_seals_of_the_same_plaintext_differ() {
        let tmp = tempfile::tempdir().unwrap();
        let cipher = Vault::open(tmp.path(), TEST_SIZE).unwrap().cipher();
        assert_ne!(cipher.seal(b"same"), cipher.seal(b"same"));
    }

    #[test]
    fn value_sealed_by_another_vault_does_not_open() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let sealed = Vault::open(a.path(), TEST_SIZE)
            .unwrap()
            .cipher()
            .seal(b"x");
        let other = Vault::open(b.path(), TEST_SIZE).unwrap().cipher();
        assert_eq!(other.open(&sealed), Err(SealError::Tampered));
    }

    #[test]
    fn regenerate_changes_the_public_key_and_keeps_a_usable_pair() {
        let tmp = tempfile::tempdir().unwrap();
        let mut vault = vault_with_pair(tmp.path());
        let old_pem = vault.public_key_pem().unwrap().to_owned();
        let old_ciphertext = encrypt_for(&old_pem, "old");
        let new_pem = vault.regenerate().unwrap().to_owned();
        assert_ne!(old_pem, new_pem);
        assert!(vault.decrypt_secret(&old_ciphertext).is_err());
        let decrypted = vault.decrypt_secret(&encrypt_for(&new_pem, "new")).unwrap();
        assert_eq!(decrypted.expose(), "new");
        let on_disk = fs::read_to_string(tmp.path().join(PUBLIC_KEY_FILE)).unwrap();
        assert_eq!(on_disk, new_pem);
    }

    #[test]
    fn reopening_loads_the_same_keys() {
        let tmp = tempfile::tempdir().unwrap();
        let (pem, sealed) = {
            let vault = vault_with_pair(tmp.path());
            let pem = vault.public_key_pem().unwrap().to_owned();
            (pem, vault.cipher().seal(b"kept"))
        };
        let reopened = Vault::open(tmp.path(), TEST_SIZE).unwrap();
        assert_eq!(reopened.public_key_pem(), Some(pem.as_str()));
        assert_eq!(reopened.cipher().open(&sealed).unwrap(), b"kept");
        let decrypted = reopened
            .decrypt_secret(&encrypt_for(&pem, "again"))
            .unwrap();
        assert_eq!(decrypted.expose(), "again");
    }

    #[test]
    fn crash_between_the_two_renames_is_repaired_on_open() {
        let tmp = tempfile::tempdir().unwrap();
        let pem = vault_with_pair(tmp.path())
            .public_key_pem()
            .unwrap()
            .to_owned();
        // Simulate: new private.pem renamed into place, old public.pem still there, plus a
        // leftover temporary file.
        fs::write(tmp.path().join(PUBLIC_KEY_FILE), "stale").unwrap();
        fs::write(
            tmp.path().join(format!("{TMP_PREFIX}private.pem.1")),
            "partial",
        )
        .unwrap();
        let reopened = Vault::open(tmp.path(), TEST_SIZE).unwrap();
        assert_eq!(reopened.public_key_pem(), Some(pem.as_str()));
        let repaired = fs::read_to_string(tmp.path().join(PUBLIC_KEY_FILE)).unwrap();
        assert_eq!(repaired, pem);
        assert!(!tmp
            .path()
            .join(format!("{TMP_PREFIX}private.pem.1"))
            .exists());
    }

    #[test]
    fn corrupt_local_key_is_reported_not_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join(LOCAL_KEY_FILE), b"short").unwrap();
        let err = Vault::open(tmp.path(), TEST_SIZE).unwrap_err();
        assert!(matches!(err, KeyVaultError::LocalKeyCorrupt { len: 5, .. }));
        assert_eq!(fs::read(tmp.path().join(LOCAL_KEY_FILE)).unwrap(), b"short");
    }

    #[test]
    fn corrupt_private_key_is_reported() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join(PRIVATE_KEY_FILE), "garbage").unwrap();
        let err = Vault::open(tmp.path(), TEST_SIZE).unwrap_err();
        assert!(matches!(err, KeyVaultError::PrivateKeyCorrupt { .. }));
    }

    #[test]
    fn key_size_accepts_only_supported_sizes() {
        assert_eq!(KeySize::default().bits(), 4096);
        assert_eq!(KeySize::try_from(3072), Ok(KeySize::Bits3072));
        assert!(KeySize::try_from(1024).unwrap_err().contains("1024"));
        let parsed: KeySize = serde_json::from_str("2048").unwrap();
        assert_eq!(parsed, KeySize::Bits2048);
    }
}
