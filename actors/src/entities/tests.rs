use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use crate::config::{Config, LogLevel};
use crate::store::Durability;

fn open() -> (tempfile::TempDir, EntityStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&dir.path().join("store")).expect("open store");
    (dir, EntityStore::new(store))
}

fn scan_mode(id: &str, name: &str) -> ScanMode {
    ScanMode {
        id: id.into(),
        name: name.into(),
        description: String::new(),
        cron: "* * * * * *".into(),
        audit: Audit::new(BY_OIANALYTICS, "2026-01-01T00:00:00.000Z"),
    }
}

fn put<E: Entity>(entities: &EntityStore, previous: Option<&E>, e: &E) {
    let mut batch = entities.store.batch();
    entities.stage_put(&mut batch, previous, e).unwrap();
    entities.store.write(batch, Durability::Sync).unwrap();
}

#[test]
fn seeding_creates_the_six_default_scan_modes_and_subscription_once() {
    let (_dir, entities) = open();
    let config = Config::default();
    entities.seed(&config, "engine-1").unwrap();
    entities.seed(&config, "engine-1").unwrap();
    let modes = entities.list::<ScanMode>().unwrap();
    assert_eq!(modes.len(), 7);
    let sub = entities
        .get::<ScanMode>(SUBSCRIPTION_SCAN_MODE_ID)
        .unwrap()
        .unwrap();
    assert_eq!((sub.name.as_str(), sub.cron.as_str()), ("Subscription", ""));
    assert!(modes.iter().all(|m| m.audit.created_by == BY_SYSTEM));
    for mode in modes.iter().filter(|m| m.id != SUBSCRIPTION_SCAN_MODE_ID) {
        cron::validate(&mode.cron).unwrap();
    }
    assert_eq!(
        entities
            .id_by_name::<ScanMode>("Every minute")
            .unwrap()
            .as_deref(),
        modes
            .iter()
            .find(|m| m.name == "Every minute")
            .map(|m| m.id.as_str())
    );
    let engine = entities.engine_settings().unwrap().unwrap();
    assert_eq!(engine.id, "engine-1");
    assert!(entities
        .registration_settings()
        .unwrap()
        .unwrap()
        .remote
        .is_none());
}

#[test]
fn renaming_moves_the_name_index_and_deleting_frees_the_name() {
    let (_dir, entities) = open();
    let first = scan_mode("a", "fast");
    put(&entities, None, &first);
    let renamed = scan_mode("a", "faster");
    put(&entities, Some(&first), &renamed);
    assert_eq!(entities.id_by_name::<ScanMode>("fast").unwrap(), None);
    assert_eq!(
        entities
            .id_by_name::<ScanMode>("faster")
            .unwrap()
            .as_deref(),
        Some("a")
    );

    let mut batch = entities.store.batch();
    entities.stage_delete(&mut batch, &renamed);
    entities.store.write(batch, Durability::Sync).unwrap();
    assert_eq!(entities.id_by_name::<ScanMode>("faster").unwrap(), None);
    assert_eq!(entities.get::<ScanMode>("a").unwrap(), None);
    assert_eq!(entities.count(EntityKind::ScanMode).unwrap(), 0);
}

#[test]
fn kinds_do_not_see_each_others_records() {
    let (_dir, entities) = open();
    put(&entities, None, &scan_mode("x", "same"));
    let cert = Certificate {
        id: "x".into(),
        name: "same".into(),
        description: String::new(),
        public_key: None,
        certificate: None,
        expiry: None,
        private_key: None,
        audit: Audit::new(BY_OIANALYTICS, "t"),
    };
    put(&entities, None, &cert);
    assert_eq!(entities.list::<ScanMode>().unwrap().len(), 1);
    assert_eq!(entities.list::<Certificate>().unwrap(), vec![cert]);
}

#[test]
fn engine_settings_follow_the_yaml_until_oianalytics_sets_them() {
    let mut config = Config::default();
    config.engine.name = "line-3".into();
    config.engine.log.console = LogLevel::Debug;
    let mut record = EngineSettingsRecord::seeded("id", &config, Audit::new(BY_SYSTEM, "t"));
    assert_eq!(record.effective(&config).general.name, "line-3");
    assert_eq!(
        record.effective(&config).logger.console.level,
        LogLevel::Debug
    );
    assert_eq!(record.effective(&config).logger.file.max_file_size, 50);

    config.engine.name = "renamed-in-yaml".into();
    assert_eq!(record.effective(&config).general.name, "renamed-in-yaml");

    record.settings.general.name = "from-oia".into();
    record.remote.general = true;
    record.settings.logger.console.level = LogLevel::Error;
    record.remote.logger = true;
    let effective = record.effective(&config);
    assert_eq!(effective.general.name, "from-oia");
    assert_eq!(effective.logger.console.level, LogLevel::Error);
}

#[test]
fn remote_permissions_can_only_lower_the_yaml_ceiling() {
    let mut config = Config::default();
    config
        .oianalytics
        .permissions
        .insert("restartEngine".into(), false);
    let mut record = RegistrationSettingsRecord::seeded(Audit::new(BY_SYSTEM, "t"));
    let effective = record.effective(&config.oianalytics);
    assert_eq!(effective.permissions.len(), 42);
    assert!(!effective.permitted("restartEngine"));
    assert!(effective.permitted("createScanMode"));
    assert!(!effective.permitted("notAFlag"));

    let mut permissions: std::collections::BTreeMap<String, bool> = crate::config::PERMISSION_FLAGS
        .iter()
        .map(|f| (f.to_string(), true))
        .collect();
    permissions.insert("createScanMode".into(), false);
    record.remote = Some(RemoteRegistrationSettings {
        command_refresh_interval: 2,
        command_retry_interval: 3,
        message_retry_interval: 4,
        command_permissions: permissions,
    });
    let effective = record.effective(&config.oianalytics);
    assert!(
        !effective.permitted("restartEngine"),
        "remote true cannot lift the ceiling"
    );
    assert!(
        !effective.permitted("createScanMode"),
        "remote false switches off"
    );
    assert_eq!(effective.command_refresh, Duration::from_secs(2));
    assert_eq!(effective.command_retry, Duration::from_secs(3));
    assert_eq!(effective.message_retry, Duration::from_secs(4));
}

#[test]
fn intervals_default_to_the_yaml_and_round_up_to_whole_seconds() {
    let mut config = Config::default();
    config.oianalytics.intervals.command_refresh = Duration::from_millis(1500);
    let record = RegistrationSettingsRecord::seeded(Audit::new(BY_SYSTEM, "t"));
    let effective = record.effective(&config.oianalytics);
    assert_eq!(effective.command_refresh, Duration::from_millis(1500));
    assert_eq!(
        EffectiveRegistrationSettings::secs(effective.command_refresh),
        2
    );
    assert_eq!(EffectiveRegistrationSettings::secs(Duration::ZERO), 1);
}

fn remote_with(flag: &str, granted: bool) -> RemoteRegistrationSettings {
    RemoteRegistrationSettings {
        command_refresh_interval: 10,
        command_retry_interval: 5,
        message_retry_interval: 5,
        command_permissions: [(flag.to_owned(), granted)].into_iter().collect(),
    }
}

#[test]
fn a_permission_switched_off_remotely_cannot_be_switched_on_remotely() {
    let mut record = RegistrationSettingsRecord::seeded(Audit::new(BY_SYSTEM, "t"));
    record.apply_remote(remote_with("setpoint", false));
    record.apply_remote(remote_with("setpoint", true));
    let oia = Config::default().oianalytics;
    assert!(!record.effective(&oia).permitted("setpoint"));
}

#[test]
fn only_a_yaml_edit_to_true_grants_a_revoked_permission_again() {
    let mut record = RegistrationSettingsRecord::seeded(Audit::new(BY_SYSTEM, "t"));
    let yaml = |v: Option<bool>| -> BTreeMap<String, bool> {
        v.map(|v| ("setpoint".to_owned(), v)).into_iter().collect()
    };
    // The first YAML seen is the reference: a restart grants nothing.
    assert_eq!(record.apply_local_edit(&yaml(Some(true))), (vec![], true));
    record.apply_remote(remote_with("setpoint", false));
    assert_eq!(record.apply_local_edit(&yaml(Some(true))), (vec![], false));
    // Off, then on again: a local edit.
    assert_eq!(record.apply_local_edit(&yaml(Some(false))), (vec![], true));
    assert_eq!(
        record.apply_local_edit(&yaml(Some(true))),
        (vec!["setpoint".to_owned()], true)
    );
    let oia = Config::default().oianalytics;
    assert!(record.effective(&oia).permitted("setpoint"));
}
