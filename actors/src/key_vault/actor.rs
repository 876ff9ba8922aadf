//! The KeyVault actor: answers decryption and key requests from the other actors.
//!
//! Key generation runs on a blocking thread, so `Decrypt`, `GetPublicKey`, `Seal` and `Open`
//! (and `DecryptSettings`) keep being answered with the current pair meanwhile. Requests that need a pair while one is
//! being generated (`RegenerateKeys`, `EnsureKeyPair`) wait for that generation and share its
//! result rather than starting another.

use std::path::PathBuf;

use actix::prelude::*;
use tokio::sync::oneshot;

use serde_json::Value;

use super::{KeyPair, KeySize, KeyVaultError, LocalCipher, Vault};
use crate::secrets_paths::{self, ConnectorKind, SecretPathError};
use crate::supervision::{ChildGuard, Stop};
use crate::Secret;

type PemResult = Result<String, KeyVaultError>;

/// Decrypts an OIAnalytics secret (base64 RSA-OAEP-SHA256). `""` yields an empty secret, which
/// means "keep the previous value".
#[derive(Message)]
#[rtype(result = "Result<Secret<String>, KeyVaultError>")]
pub struct Decrypt {
    pub ciphertext: String,
}

/// Decrypts, in one round trip, every secret at `paths` in a settings tree (see
/// [`secrets_paths::decrypt_paths`]) and answers with the tree holding the plaintexts.
#[derive(Message)]
#[rtype(result = "Result<Value, SecretPathError<KeyVaultError>>")]
pub struct DecryptSettings {
    pub paths: Vec<String>,
    pub settings: Value,
}

impl DecryptSettings {
    /// The secrets of a connector's `settings`, by its type.
    pub fn connector(kind: ConnectorKind, connector_type: &str, settings: Value) -> Self {
        let paths = secrets_paths::secret_paths(kind, connector_type);
        DecryptSettings {
            paths: paths.iter().map(|p| p.to_string()).collect(),
            settings,
        }
    }
}

/// Replaces the key pair; answers with the new public key (SPKI PEM) once it is on disk.
#[derive(Message)]
#[rtype(result = "Result<String, KeyVaultError>")]
pub struct RegenerateKeys;

/// Answers with the current public key, generating the first pair if there is none yet.
#[derive(Message)]
#[rtype(result = "Result<String, KeyVaultError>")]
pub struct EnsureKeyPair;

/// The current public key (SPKI PEM), `None` before the first generation.
#[derive(Message)]
#[rtype(result = "Option<String>")]
pub struct GetPublicKey;

/// A handle on the local cipher, for synchronous sealing without going through the mailbox.
#[derive(Message)]
#[rtype(result = "LocalCipher")]
pub struct GetLocalCipher;

/// Seals a secret with the local key for storage at rest.
#[derive(Message)]
#[rtype(result = "String")]
pub struct Seal {
    pub plaintext: Secret<String>,
}

/// Opens a value sealed with the local key.
#[derive(Message)]
#[rtype(result = "Result<Secret<String>, KeyVaultError>")]
pub struct Open {
    pub sealed: String,
}

pub struct KeyVault {
    /// Reports this actor's end to its supervisor (absent when started on its own).
    _guard: Option<ChildGuard>,
    vault: Vault,
    /// `Some` while a generation runs: the callers waiting for its result.
    waiting: Option<Vec<oneshot::Sender<PemResult>>>,
}

impl KeyVault {
    /// Opens (or creates) the vault in `dir`; see [`Vault::open`].
    pub fn open(dir: impl Into<PathBuf>, key_size: KeySize) -> Result<KeyVault, KeyVaultError> {
        Ok(KeyVault::new(Vault::open(dir, key_size)?))
    }

    pub fn new(vault: Vault) -> KeyVault {
        KeyVault {
            _guard: None,
            vault,
            waiting: None,
        }
    }

    /// Run under supervision: `guard` tells the supervisor when this actor ends.
    pub fn with_guard(mut self, guard: ChildGuard) -> KeyVault {
        self._guard = Some(guard);
        self
    }

    /// The local cipher, to hand to stores before the actor starts.
    pub fn cipher(&self) -> LocalCipher {
        self.vault.cipher()
    }

    pub fn public_key_pem(&self) -> Option<&str> {
        self.vault.public_key_pem()
    }

    /// Registers a caller for the result of the running generation, starting one if none runs.
    fn join_generation(&mut self, ctx: &mut Context<Self>) -> oneshot::Receiver<PemResult> {
        let (tx, rx) = oneshot::channel();
        match &mut self.waiting {
            Some(waiting) => waiting.push(tx),
            None => {
                self.waiting = Some(vec![tx]);
                self.start_generation(ctx);
            }
        }
        rx
    }

    fn start_generation(&mut self, ctx: &mut Context<Self>) {
        let generation = self.vault.generation();
        tracing::info!(
            bits = self.vault.key_size().bits(),
            "generating a new RSA key pair"
        );
        let task = actix_rt::task::spawn_blocking(move || generation.run());
        ctx.spawn(task.into_actor(self).map(|joined, act, _| {
            let result = joined
                .map_err(|e| KeyVaultError::GenerationAborted(e.to_string()))
                .and_then(|generated| generated)
                .map(|pair| act.install(pair));
            match &result {
                Ok(_) => tracing::info!("new RSA key pair stored and in use"),
                Err(e) => tracing::error!(error = %e, "RSA key pair generation failed"),
            }
            for waiter in act.waiting.take().unwrap_or_default() {
                // A caller that stopped waiting is no reason to fail the others.
                let _ = waiter.send(result.clone());
            }
        }));
    }

    fn install(&mut self, pair: KeyPair) -> String {
        let pem = pair.public_pem().to_owned();
        self.vault.install(pair);
        pem
    }
}

impl Actor for KeyVault {
    type Context = Context<Self>;
}

/// Awaits a generation result; the sender only disappears if the actor stopped meanwhile.
async fn generation_result(rx: oneshot::Receiver<PemResult>) -> PemResult {
    rx.await.unwrap_or_else(|_| {
        Err(KeyVaultError::GenerationAborted(
            "the key vault stopped".into(),
        ))
    })
}

impl Handler<Decrypt> for KeyVault {
    type Result = Result<Secret<String>, KeyVaultError>;

    fn handle(&mut self, msg: Decrypt, _: &mut Context<Self>) -> Self::Result {
        self.vault.decrypt_secret(&msg.ciphertext)
    }
}

impl Handler<DecryptSettings> for KeyVault {
    type Result = Result<Value, SecretPathError<KeyVaultError>>;

    fn handle(&mut self, msg: DecryptSettings, _: &mut Context<Self>) -> Self::Result {
        let DecryptSettings {
            paths,
            mut settings,
        } = msg;
        secrets_paths::decrypt_paths(&paths, &mut settings, |ciphertext| {
            self.vault
                .decrypt_secret(ciphertext)
                .map(Secret::into_inner)
        })?;
        Ok(settings)
    }
}

impl Handler<RegenerateKeys> for KeyVault {
    type Result = ResponseFuture<PemResult>;

    fn handle(&mut self, _: RegenerateKeys, ctx: &mut Context<Self>) -> Self::Result {
        Box::pin(generation_result(self.join_generation(ctx)))
    }
}

impl Handler<EnsureKeyPair> for KeyVault {
    type Result = ResponseFuture<PemResult>;

    fn handle(&mut self, _: EnsureKeyPair, ctx: &mut Context<Self>) -> Self::Result {
        if let Some(pem) = self.vault.public_key_pem() {
            let pem = pem.to_owned();
            return Box::pin(async move { Ok(pem) });
        }
        Box::pin(generation_result(self.join_generation(ctx)))
    }
}

impl Handler<GetPublicKey> for KeyVault {
    type Result = Option<String>;

    fn handle(&mut self, _: GetPublicKey, _: &mut Context<Self>) -> Self::Result {
        self.vault.public_key_pem().map(str::to_owned)
    }
}

impl Handler<GetLocalCipher> for KeyVault {
    type Result = MessageResult<GetLocalCipher>;

    fn handle(&mut self, _: GetLocalCipher, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.vault.cipher())
    }
}

impl Handler<Seal> for KeyVault {
    type Result = String;

    fn handle(&mut self, msg: Seal, _: &mut Context<Self>) -> Self::Result {
        self.vault.cipher().seal_secret(&msg.plaintext)
    }
}

impl Handler<Open> for KeyVault {
    type Result = Result<Secret<String>, KeyVaultError>;

    fn handle(&mut self, msg: Open, _: &mut Context<Self>) -> Self::Result {
        Ok(self.vault.cipher().open_secret(&msg.sealed)?)
    }
}

impl Handler<Stop> for KeyVault {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt as _;
    use serde_json::json;

    fn encrypt_for(public_pem: &str, plaintext: &str) -> String {
        super::super::encrypt_for(public_pem, plaintext).unwrap()
    }

    #[actix_rt::test]
    async fn first_pair_is_generated_on_demand_and_decrypts() {
        let tmp = tempfile::tempdir().unwrap();
        let addr = KeyVault::open(tmp.path(), KeySize::Bits2048)
            .unwrap()
            .start();
        assert_eq!(addr.send(GetPublicKey).await.unwrap(), None);
        let pem = addr.send(EnsureKeyPair).await.unwrap().unwrap();
        assert_eq!(addr.send(EnsureKeyPair).await.unwrap().unwrap(), pem);
        let ciphertext = encrypt_for(&pem, "hunter2");
        let secret = addr.send(Decrypt { ciphertext }).await.unwrap().unwrap();
        assert_eq!(secret.expose(), "hunter2");

        let settings =
            json!({"authentication": {"type": "basic", "password": encrypt_for(&pem, "pw")}});
        let request = DecryptSettings::connector(ConnectorKind::South, "mqtt", settings);
        let decrypted = addr.send(request).await.unwrap().unwrap();
        assert_eq!(
            decrypted,
            json!({"authentication": {"type": "basic", "password": "pw"}})
        );
        let bad = json!({"password": "AAAA"});
        let request = DecryptSettings::connector(ConnectorKind::South, "mssql", bad);
        let err = addr.send(request).await.unwrap().unwrap_err();
        assert!(
            err.to_string().starts_with("secret field `password`: "),
            "{err}"
        );
    }

    #[actix_rt::test]
    async fn decrypt_is_answered_while_a_new_pair_is_generated() {
        let tmp = tempfile::tempdir().unwrap();
        // The first pair is small to keep the test short; the 4096-bit one makes sure the
        // generation outlasts the decryption below.
        let old_pem = Vault::open(tmp.path(), KeySize::Bits2048)
            .unwrap()
            .regenerate()
            .unwrap()
            .to_owned();
        let vault = Vault::open(tmp.path(), KeySize::Bits4096).unwrap();
        let addr = KeyVault::new(vault).start();

        let mut regenerated = addr.send(RegenerateKeys).boxed_local();
        let joined = addr.send(RegenerateKeys).boxed_local();
        let ciphertext = encrypt_for(&old_pem, "during");
        let secret = addr.send(Decrypt { ciphertext }).await.unwrap().unwrap();
        assert_eq!(secret.expose(), "during");
        assert_eq!(
            addr.send(GetPublicKey).await.unwrap(),
            Some(old_pem.clone())
        );
        assert!(
            (&mut regenerated).now_or_never().is_none(),
            "generation done too early"
        );

        let new_pem = regenerated.await.unwrap().unwrap();
        assert_eq!(
            joined.await.unwrap().unwrap(),
            new_pem,
            "joined the same run"
        );
        assert_ne!(new_pem, old_pem);
        assert_eq!(
            addr.send(GetPublicKey).await.unwrap(),
            Some(new_pem.clone())
        );
        let ciphertext = encrypt_for(&new_pem, "after");
        let secret = addr.send(Decrypt { ciphertext }).await.unwrap().unwrap();
        assert_eq!(secret.expose(), "after");
    }

    #[actix_rt::test]
    async fn seal_and_open_messages_match_the_shared_cipher() {
        let tmp = tempfile::tempdir().unwrap();
        let vault = KeyVault::open(tmp.path(), KeySize::Bits2048).unwrap();
        let cipher = vault.cipher();
        let addr = vault.start();
        let plaintext = Secret::new("at rest".to_string());
        let sealed = addr.send(Seal { plaintext }).await.unwrap();
        assert_eq!(cipher.open_secret(&sealed).unwrap().expose(), "at rest");
        let handle = addr.send(GetLocalCipher).await.unwrap();
        let opened = addr
            .send(Open {
                sealed: handle.seal(b"via handle"),
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(opened.expose(), "via handle");
        let tampered = addr
            .send(Open {
                sealed: "AAAA".into(),
            })
            .await
            .unwrap();
        assert!(matches!(tampered, Err(KeyVaultError::Seal(_))));
    }
}
