//! What the configure tests share: a seeded entity store and [`Fixture::run`], which applies a command
//! the way the executor does (secrets already decrypted, sealed with a visible prefix) and
//! commits its writes.

use serde_json::Value;

use super::{run, secret_plan, Applied, ApplyError, Env};
use crate::commands::catalogue::CONTENT;
use crate::commands::CommandType;
use crate::config::Config;
use crate::entities::{Entity, EntityStore};
use crate::store::{Durability, Store};

/// What the test sealer puts before a plaintext secret.
pub(crate) const SEALED: &str = "sealed:";

pub(crate) struct Fixture {
    _dir: tempfile::TempDir,
    pub store: Store,
    pub entities: EntityStore,
    pub config: Config,
    /// The time commands run at.
    pub now: &'static str,
}

pub(crate) fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&dir.path().join("store")).expect("store");
    let entities = EntityStore::new(store.clone());
    let config = Config::default();
    entities.seed(&config, "engine").expect("seed");
    Fixture {
        _dir: dir,
        store,
        entities,
        config,
        now: "2026-01-01T00:00:00.000Z",
    }
}

fn seal(plain: &str) -> String {
    format!("{SEALED}{plain}")
}

impl Fixture {
    /// The stored entity `id`, which the test expects to exist.
    pub(crate) fn stored<E: Entity>(&self, id: &str) -> E {
        self.entities
            .get::<E>(id)
            .expect("read")
            .expect("entity stored")
    }

    /// Apply a command and commit its writes; `Err` is the ERRORED result. Decryption is the
    /// identity here: the secret plan is computed on what arrives.
    pub(crate) fn run(
        &self,
        command_id: &str,
        command_type: CommandType,
        fields: Value,
    ) -> Result<Applied, String> {
        let Value::Object(fields) = fields else {
            panic!("the test gives the fields as an object")
        };
        let content = fields.get(CONTENT).cloned().unwrap_or(Value::Null);
        let plan = secret_plan(command_type, &content, 512);
        let env = Env {
            entities: &self.entities,
            config: &self.config,
            command_id,
            now: self.now,
            sealer: Some(&seal),
        };
        let mut batch = self.store.batch();
        match run(command_type, &fields, &content, &plan, &env, &mut batch) {
            Ok(applied) => {
                self.store.write(batch, Durability::Sync).expect("write");
                Ok(applied)
            }
            Err(ApplyError::Invalid(reason)) => Err(reason),
            Err(e) => panic!("local failure: {e}"),
        }
    }
}
