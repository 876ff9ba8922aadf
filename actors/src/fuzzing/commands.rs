//! Target `commands`: an input is the body of a `commands/pending` answer (E3).
//!
//! It goes where the agent sends it: JSON parsing, the poller's intake into journal records,
//! then for each RETRIEVED record the executor's prechecks, the interrupted-command recovery,
//! the secret plan, the decryption walk and `configure::run` against an entity store that holds one
//! entity of each kind (so updates and deletes find something). The writes are staged, never
//! committed: every input sees the same store. The raw text is also given to the 6-field cron
//! check, the validator of `create-scan-mode`.
//!
//! Invariants: every element is accounted for once; a journal record reads back as written; a
//! malformed element is ERRORED with its reason; a refused check never runs the command; `configure::run`
//! fails only with the command's own fault (`Invalid`), and a success stages writes.

use std::convert::Infallible;
use std::sync::OnceLock;

use crate::command_executor::configure::{self, ApplyError, Env};
use crate::command_executor::{precheck, recover};
use crate::command_poller::intake;
use crate::commands::catalogue::CONTENT;
use crate::commands::{CommandRecord, CommandType, Status, Transition};
use crate::config::Config;
use crate::entities::{
    cron, Certificate, Entity, EntityStore, HistoryQuery, IpFilter, NorthConnector, ScanMode,
    SouthConnector,
};
use crate::key_vault::{KeySize, LocalCipher, Vault};
use crate::secrets_paths;
use crate::store::{Batch, Durability, Store};
use serde_json::{json, Value};

/// The version the fixture engine runs: commands must target it to pass the first check.
pub const VERSION: &str = "3.8.8";
const NOW: &str = "2026-01-01T00:00:00.000Z";
/// `oianalytics.key_size` 4096 by default: RSA ciphertexts are 512 bytes.
const MODULUS_BYTES: usize = 512;

struct Fixture {
    store: Store,
    entities: EntityStore,
    config: Config,
    cipher: LocalCipher,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = super::scratch_dir("commands");
        // Setup failures are a broken environment, not findings.
        let store = Store::open(&dir.join("store")).expect("cannot open the fuzzing store");
        let vault = Vault::open(dir.join("vault"), KeySize::Bits2048)
            .expect("cannot open the fuzzing vault");
        let fixture = Fixture {
            cipher: vault.cipher(),
            entities: EntityStore::new(store.clone()),
            store,
            config: Config::default(),
        };
        // Before the seed, so it adds no default scan modes (their ids are random).
        fixture.add_entities();
        fixture
            .entities
            .seed(&fixture.config, "fuzz-engine")
            .expect("cannot seed the fuzzing store");
        fixture
    })
}

impl Fixture {
    /// Entities with fixed ids for the corpus to update and delete: `scan-1` (used by
    /// `south-1`), `scan-2` (unused), `subscription`, `ip-1`, `cert-1`, `south-1`, `south-2`
    /// (a group without standard settings, as `create-south` stores `groups: [{}]`), `south-x`
    /// (a type the manifests do not know), `north-1`, `history-1`.
    fn add_entities(&self) {
        let audit = json!({"createdBy": "system", "updatedBy": "system",
            "createdAt": NOW, "updatedAt": NOW});
        let sealed = self.cipher.seal(b"previous secret");
        let entities = json!([
            {"kind": "scan", "id": "scan-1", "name": "every-second",
                "description": "", "cron": "* * * * * *", "audit": audit},
            {"kind": "scan", "id": "scan-2", "name": "every-hour",
                "description": "", "cron": "0 0 * * * *", "audit": audit},
            {"kind": "scan", "id": "subscription", "name": "Subscription",
                "description": "", "cron": "", "audit": audit},
            {"kind": "ip", "id": "ip-1", "address": "127.0.0.1",
                "description": "", "audit": audit},
            {"kind": "cert", "id": "cert-1", "name": "cert", "description": "",
                "publicKey": null, "certificate": null, "expiry": null, "audit": audit},
            {"kind": "south", "id": "south-1", "name": "plant-db", "type": "mssql",
                "description": "", "enabled": true,
                "settings": {"host": "db", "username": "reader", "password": sealed},
                "items": [{"id": "item-1", "name": "temperature", "enabled": true,
                    "settings": {"query": "SELECT 1"}, "scanModeId": "scan-1", "groupId": "group-1",
                    "other": {}, "audit": audit}],
                "groups": [{"id": "group-1", "other": {"standardSettings":
                    {"name": "group", "scanModeId": "scan-1"}}}],
                "secretPaths": ["password"], "audit": audit},
            {"kind": "south", "id": "south-2", "name": "plc", "type": "modbus",
                "description": "", "enabled": true, "settings": {}, "items": [],
                "groups": [{"id": "group-2", "other": {}}], "secretPaths": [], "audit": audit},
            {"kind": "south", "id": "south-x", "name": "custom", "type": "custom-thing",
                "description": "", "enabled": false, "settings": {"token": sealed},
                "items": [], "groups": [], "secretPaths": ["token"], "audit": audit},
            {"kind": "north", "id": "north-1", "name": "files", "type": "file-writer",
                "description": "", "enabled": true,
                "settings": {"outputFolder": "out", "password": sealed},
                "caching": {"trigger": {"scanModeId": "scan-1"}}, "transformers": [],
                "secretPaths": ["password"], "audit": audit},
            {"kind": "history", "id": "history-1", "name": "backfill", "description": "",
                "status": "PENDING", "queryTimeRange": {}, "caching": {}, "northTransformers": [],
                "southType": "mssql", "southSettings": {"password": sealed},
                "southSecretPaths": ["password"],
                "items": [{"id": "h-item-1", "name": "pressure", "enabled": true, "settings": {},
                    "audit": audit}],
                "northType": "console", "northSettings": {}, "northSecretPaths": [], "audit": audit}
        ]);
        let mut batch = self.store.batch();
        for value in entities.as_array().into_iter().flatten() {
            match value["kind"].as_str() {
                Some("scan") => self.stage::<ScanMode>(&mut batch, value),
                Some("ip") => self.stage::<IpFilter>(&mut batch, value),
                Some("cert") => self.stage::<Certificate>(&mut batch, value),
                Some("south") => self.stage::<SouthConnector>(&mut batch, value),
                Some("north") => self.stage::<NorthConnector>(&mut batch, value),
                Some("history") => self.stage::<HistoryQuery>(&mut batch, value),
                other => unreachable!("fixture kind {other:?}"),
            }
        }
        self.store
            .write(batch, Durability::Sync)
            .expect("cannot write the fixture entities");
    }

    fn stage<E: Entity>(&self, batch: &mut Batch, value: &Value) {
        let entity: E = serde_json::from_value(value.clone()).expect("a fixture entity");
        self.entities
            .stage_put(batch, None, &entity)
            .expect("cannot stage a fixture entity");
    }
}

/// Feed one `commands/pending` body.
pub fn run(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        // Whatever the text, the cron check answers; an error names the expression.
        if let Err(e) = cron::validate(text) {
            assert!(!e.to_string().is_empty());
        }
    }
    // The poller decodes the body with serde_json and wants an array (else the cycle fails).
    let Ok(Value::Array(elements)) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let first_seq = 7;
    let out = intake::<Infallible>(&elements, |_| Ok(false), first_seq, NOW)
        .unwrap_or_else(|never| match never {});
    assert_eq!(
        out.records.len() + out.duplicates + out.unusable.len(),
        elements.len(),
        "every element is journaled, a duplicate or unusable, exactly once"
    );
    assert!(out.malformed <= out.records.len());
    let mut malformed = 0;
    for (i, record) in out.records.iter().enumerate() {
        assert_eq!(record.seq, first_seq + i as u64, "sequence numbers follow");
        journal_round_trip(record);
        match record.status {
            Status::Retrieved => execute(fixture(), record),
            Status::Errored => {
                malformed += 1;
                let result = record.result.as_deref().unwrap_or_default();
                assert!(result.starts_with("Malformed command: "), "{result}");
                assert!(!record.command_type.is_empty(), "OIA needs a type");
            }
            other => panic!("intake produced a {other:?} record"),
        }
    }
    assert_eq!(malformed, out.malformed);
}

/// The journal stores records as JSON: what it writes must read back exactly, floats included
/// (serde_json's `float_roundtrip`; without it a long decimal moved by an ulp at each write and
/// read, `actors/tests-data/fuzz/commands/float-*.json`), and the E5 report of it must be an
/// object.
fn journal_round_trip(record: &CommandRecord) {
    let bytes = serde_json::to_vec(record).expect("a record always serialises");
    let back: CommandRecord = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("record {} cannot be read back: {e}", record.id));
    assert_eq!(
        &back, record,
        "a journal record changed on its way through the store"
    );
    assert!(record.status_record().is_object());
}

/// The executor's path for one RETRIEVED record.
fn execute(f: &Fixture, record: &CommandRecord) {
    let running = record
        .transition(Transition::Start, NOW)
        .expect("RETRIEVED → RUNNING is allowed");
    let _ = recover(&running, || None);
    assert!(
        precheck(record, VERSION, |_| false).is_err(),
        "no permission, no run"
    );
    let Ok(command_type) = precheck(record, VERSION, |_| true) else {
        return;
    };
    assert!(command_type.is_supported());
    if matches!(
        command_type,
        CommandType::UpdateVersion | CommandType::RestartEngine | CommandType::RegenerateCipherKeys
    ) {
        return; // not configuration commands: they stage upgrades and stop the engine
    }
    let mut content = record.fields.get(CONTENT).cloned().unwrap_or(Value::Null);
    let plan = configure::secret_plan(command_type, &content, MODULUS_BYTES);
    // As the executor's `decrypt` and the KeyVault's `DecryptSettings`, with an identity
    // decryption so the content goes on to `configure::run` (the `secrets` target fuzzes the RSA side).
    for part in &plan.parts {
        let Some(slot) = content.pointer_mut(&part.pointer) else {
            continue;
        };
        if slot.is_null() {
            continue;
        }
        if secrets_paths::decrypt_paths(&part.paths, slot, |s| Ok::<_, Infallible>(s.to_owned()))
            .is_err()
        {
            return; // a secret that is not a string: the command ends ERRORED
        }
    }
    let seal = |plain: &str| f.cipher.seal(plain.as_bytes());
    let env = Env {
        entities: &f.entities,
        config: &f.config,
        command_id: &record.id,
        now: NOW,
        sealer: Some(&seal),
    };
    let mut batch = f.store.batch();
    match configure::run(
        command_type,
        &record.fields,
        &content,
        &plan,
        &env,
        &mut batch,
    ) {
        Ok(applied) => {
            assert!(!applied.result.is_empty());
            assert!(!batch.is_empty(), "a successful command writes something");
        }
        Err(ApplyError::Invalid(reason)) => assert!(!reason.is_empty()),
        Err(local) => panic!("local failure on a healthy store: {local}"),
    }
}
