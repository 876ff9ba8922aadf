//! The KeyVault actor: answers decryption and key requests from the other actors.
//!
//! Key generation runs on a blocking thread, so `DecryptSettings`, `GetPublicKey` and
//! `GetLocalCipher` keep being answered with the current pair meanwhile. `RegenerateKeys` requests
//! made while a pair is being generated wait for that generation and share its result rather
//! than starting another.

use std::path::PathBuf;

use actix::prelude::*;
use tokio::sync::oneshot;

use serde_json::Value;

use super::{KeyPair, KeySize, KeyVaultError, LocalCipher, Vault};
use crate::secrets_paths::{self, ConnectorKind, SecretPathError};
use crate::supervision::{ChildGuard, Stop};
use crate::Secret;

type PemResult = Result<String, KeyVaultError>;

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

/// The current public key (SPKI PEM), `None` before the first generation.
#[derive(Message)]
#[rtype(result = "Option<String>")]
pub struct GetPublicKey;

/// A handle on the local cipher, for synchronous sealing without going through the mailbox.
#[derive(Message)]
#[rtype(result = "LocalCipher")]
pub struct GetLocalCipher;

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

    /// `plaintext` encrypted for `public_pem`, decrypted by the actor as a settings secret.
    async fn decrypted(addr: &Addr<KeyVault>, public_pem: &str, plaintext: &str) -> String {
        let settings = json!({"password": encrypt_for(public_pem, plaintext)});
        let request = DecryptSettings {
            paths: vec!["password".into()],
            settings,
        };
        let plain = addr.send(request).await.unwrap().unwrap();
        plain["password"].as_str().unwrap().to_owned()
    }

    #[actix_rt::test]
    async fn first_pair_is_generated_on_request_and_decrypts() {
        let tmp = tempfile::tempdir().unwrap();
        let addr = KeyVault::open(tmp.path(), KeySize::Bits2048)
            .unwrap()
            .start();
        assert_eq!(addr.send(GetPublicKey).await.unwrap(), None);
        let pem = addr.send(RegenerateKeys).await.unwrap().unwrap();
        assert_eq!(addr.send(GetPublicKey).await.unwrap(), Some(pem.clone()));
        assert_eq!(decrypted(&addr, &pem, "hunter2").await, "hunter2");

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
        assert_eq!(decrypted(&addr, &old_pem, "during").await, "during");
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
        assert_eq!(decrypted(&addr, &new_pem, "after").await, "after");
    }

    #[actix_rt::test]
    async fn the_local_cipher_handle_is_the_vault_cipher() {
        let tmp = tempfile::tempdir().unwrap();
        let vault = Vault::open(tmp.path(), KeySize::Bits2048).unwrap();
        let cipher = vault.cipher();
        let handle = KeyVault::new(vault).start().send(GetLocalCipher).await;
        let handle = handle.unwrap();
        assert_eq!(
            cipher.open(&handle.seal(b"via handle")).unwrap(),
            b"via handle"
        );
        assert_eq!(handle.open(&cipher.seal(b"at rest")).unwrap(), b"at rest");
    }
}
