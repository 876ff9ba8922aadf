//! Snapshots against the bodies OIBus 3.8.8 sent (`sim/wire-samples`): the store is filled
//! with the sample's entities, secrets planted where the sample shows them blanked, and the
//! built body must equal the sample field by field.

use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use serde_json::{json, Map, Value};

use super::*;
use crate::entities::{EngineOverrides, EngineSettingsRecord, Entity, RemoteRegistrationSettings};
use crate::store::{Durability, Store};

const E6: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../sim/wire-samples/e6-full-config.json"
));
const E7: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../sim/wire-samples/e7-history-queries.json"
));

/// Every planted secret contains this; no serialised byte may.
const PLANTED: &str = "PLANTED-SECRET";

fn open() -> (tempfile::TempDir, EntityStore, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    (dir, EntityStore::new(store.clone()), store)
}

fn put<E: Entity>(entities: &EntityStore, store: &Store, entity: &E) {
    let mut batch = store.batch();
    entities.stage_put(&mut batch, None, entity).unwrap();
    store.write(batch, Durability::Sync).unwrap();
}

fn text(v: &Value) -> String {
    v.as_str().unwrap().to_owned()
}

fn audit_of(sample: &Value) -> Audit {
    Audit {
        created_by: text(&sample["oIBusCreatedBy"]),
        updated_by: text(&sample["oIBusUpdatedBy"]),
        created_at: text(&sample["oIBusCreatedAt"]),
        updated_at: text(&sample["oIBusUpdatedAt"]),
    }
}

/// `settings` with a planted value at each dotted `path` whose parent exists.
fn planted(mut settings: Value, paths: &[&str]) -> Value {
    for path in paths {
        let (parents, leaf) = match path.rsplit_once('.') {
            Some((parents, leaf)) => (Some(parents), leaf),
            None => (None, *path),
        };
        let mut node = &mut settings;
        for key in parents.into_iter().flat_map(|p| p.split('.')) {
            node = &mut node[key];
        }
        if let Some(object) = node.as_object_mut() {
            object.insert(leaf.to_owned(), json!(format!("{PLANTED}-{path}")));
        }
    }
    settings
}

fn config() -> Config {
    let mut config = Config::default();
    // What OIAnalytics set remotely must win over these.
    config.engine.name = "yaml-name".into();
    config
}

fn sample_info() -> EngineInfo {
    EngineInfo {
        software_version: "3.8.8".into(),
        launcher_version: "3.4.0".into(),
        architecture: "x64".into(),
        operating_system: "Linux 6.18.44-fc-v669".into(),
        data_folder: "/var/lib/oibus/data-folder".into(),
        binary_folder: "/opt/oibus/binaries/oibus".into(),
    }
}

fn engine_record(sample: &Value) -> EngineSettingsRecord {
    let mut settings: EngineSettings = serde_json::from_value(sample["settings"].clone()).unwrap();
    settings.proxy_server.password = Some(format!("{PLANTED}-proxy"));
    settings.proxy_server.forward.password = Some(format!("{PLANTED}-forward"));
    settings.logger.loki.password = Some(format!("{PLANTED}-loki"));
    EngineSettingsRecord {
        id: text(&sample["oIBusInternalId"]),
        settings,
        remote: EngineOverrides {
            general: true,
            web_server: true,
            logger: true,
        },
        audit: audit_of(sample),
    }
}

fn registration_record(sample: &Value) -> RegistrationSettingsRecord {
    let s = &sample["settings"];
    RegistrationSettingsRecord {
        id: text(&sample["oIBusInternalId"]),
        remote: Some(RemoteRegistrationSettings {
            command_refresh_interval: s["commandRefreshInterval"].as_u64().unwrap(),
            command_retry_interval: s["commandRetryInterval"].as_u64().unwrap(),
            message_retry_interval: s["messageRetryInterval"].as_u64().unwrap(),
            command_permissions: serde_json::from_value(s["commandPermissions"].clone()).unwrap(),
        }),
        local_permissions: None,
        audit: audit_of(sample),
    }
}

fn south_of(sample: &Value, secrets: &[&str]) -> SouthConnector {
    let s = &sample["settings"];
    SouthConnector {
        id: text(&sample["oIBusInternalId"]),
        name: text(&s["name"]),
        connector_type: text(&s["type"]),
        description: text(&s["description"]),
        enabled: s["enabled"].as_bool().unwrap(),
        settings: planted(s["settings"].clone(), secrets),
        items: Vec::new(),
        groups: Vec::new(),
        secret_paths: secrets.iter().map(|p| p.to_string()).collect(),
        audit: audit_of(sample),
    }
}

fn north_of(sample: &Value, secrets: &[&str]) -> NorthConnector {
    let s = &sample["settings"];
    let mut caching = s["caching"].clone();
    // As a command stores it: the name of the scan mode, which the snapshot must drop.
    caching["trigger"]["scanModeName"] = json!("wire-sample-scan");
    NorthConnector {
        id: text(&sample["oIBusInternalId"]),
        name: text(&s["name"]),
        connector_type: text(&s["type"]),
        description: text(&s["description"]),
        enabled: s["enabled"].as_bool().unwrap(),
        settings: planted(s["settings"].clone(), secrets),
        caching,
        transformers: Vec::new(),
        secret_paths: secrets.iter().map(|p| p.to_string()).collect(),
        audit: audit_of(sample),
    }
}

fn history_of(sample: &Value) -> HistoryQuery {
    let s = &sample["settings"];
    let mut north_settings = s["northSettings"].clone();
    // OIBus adds the blank password outbound; the stored settings need not have it.
    north_settings.as_object_mut().unwrap().remove("password");
    HistoryQuery {
        id: text(&sample["oIBusInternalId"]),
        name: text(&s["name"]),
        description: text(&s["description"]),
        status: text(&s["status"]),
        query_time_range: s["queryTimeRange"].clone(),
        caching: s["caching"].clone(),
        north_transformers: serde_json::from_value(s["northTransformers"].clone()).unwrap(),
        south_type: text(&s["southType"]),
        south_settings: planted(s["southSettings"].clone(), &["password"]),
        south_secret_paths: vec!["password".into()],
        items: s["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| HistoryItem {
                id: text(&item["id"]),
                name: text(&item["name"]),
                enabled: item["enabled"].as_bool().unwrap(),
                settings: item["settings"].clone(),
                audit: audit_of(item),
            })
            .collect(),
        north_type: text(&s["northType"]),
        north_settings,
        north_secret_paths: Vec::new(),
        audit: audit_of(sample),
    }
}

/// The store as the sample's OIBus had it, with secrets planted.
fn sample_store() -> (tempfile::TempDir, EntityStore) {
    let (dir, entities, store) = open();
    let e6: Value = serde_json::from_str(E6).unwrap();
    let e7: Value = serde_json::from_str(E7).unwrap();
    for mode in e6["scanModes"].as_array().unwrap() {
        let s = &mode["settings"];
        let mode = ScanMode {
            id: text(&mode["oIBusInternalId"]),
            name: text(&s["name"]),
            description: text(&s["description"]),
            cron: text(&s["cron"]),
            audit: audit_of(mode),
        };
        put(&entities, &store, &mode);
    }
    for filter in e6["ipFilters"].as_array().unwrap() {
        let filter = IpFilter {
            id: text(&filter["oIBusInternalId"]),
            address: text(&filter["settings"]["address"]),
            description: text(&filter["settings"]["description"]),
            audit: audit_of(filter),
        };
        put(&entities, &store, &filter);
    }
    // The standard transformers under the sample's ids, as OIBus seeded them.
    for t in e6["transformers"].as_array().unwrap() {
        let s = &t["settings"];
        let transformer = crate::entities::transformers::Transformer {
            id: text(&t["oIBusInternalId"]),
            input_type: text(&s["inputType"]),
            output_type: text(&s["outputType"]),
            definition: crate::entities::transformers::TransformerDefinition::Standard {
                function_name: text(&s["functionName"]),
            },
            audit: Audit::new("system", "2026-11-23T19:10:00Z"),
        };
        put(&entities, &store, &transformer);
    }
    put(
        &entities,
        &store,
        &south_of(&e6["southConnectors"][0], &["password"]),
    );
    let north_secrets = [
        "specificSettings.secretKey",
        "specificSettings.clientSecret",
        "specificSettings.proxyPassword",
    ];
    put(
        &entities,
        &store,
        &north_of(&e6["northConnectors"][0], &north_secrets),
    );
    put(&entities, &store, &history_of(&e7["historyQueries"][0]));
    let mut batch = store.batch();
    entities
        .stage_engine_settings(&mut batch, &engine_record(&e6["engine"]))
        .unwrap();
    entities
        .stage_registration_settings(&mut batch, &registration_record(&e6["registration"]))
        .unwrap();
    store.write(batch, Durability::Sync).unwrap();
    (dir, entities)
}

fn test_key_pems() -> (String, String) {
    let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 1024).unwrap();
    let public = key
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let private = key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
    (public, private)
}

#[test]
fn full_config_equals_the_oibus_sample_field_by_field() {
    let (_dir, entities) = sample_store();
    let (public, _) = test_key_pems();
    let key = PublicKeyPem::parse(&public).unwrap();
    let body = full_config(&entities, &config(), &sample_info(), Some(key)).unwrap();
    let ours = serde_json::to_value(&body).unwrap();

    let mut expected: Value = serde_json::from_str(E6).unwrap();
    expected["registration"]["publicKey"] = json!(public);
    // The admin user: its id is derived from the engine id and its dates are the engine's
    // (ids and dates aside, the same entry).
    for key in ["oIBusInternalId", "oIBusCreatedAt", "oIBusUpdatedAt"] {
        expected["users"][0][key] = ours["users"][0][key].clone();
    }
    // Rows created in the same second may come in another order.
    let (mut ours, mut expected) = (ours, expected);
    for key in [
        "scanModes",
        "ipFilters",
        "southConnectors",
        "northConnectors",
    ] {
        for body in [&mut ours, &mut expected] {
            body[key]
                .as_array_mut()
                .unwrap()
                .sort_by_key(|e| e["oIBusInternalId"].as_str().unwrap().to_owned());
        }
    }
    for key in expected.as_object().unwrap().keys() {
        assert_eq!(ours[key], expected[key], "{key} differs from the sample");
    }
    assert_eq!(ours, expected);
}

#[test]
fn history_queries_equal_the_oibus_sample_field_by_field() {
    let (_dir, entities) = sample_store();
    let ours = serde_json::to_value(history_queries(&entities).unwrap()).unwrap();
    let expected: Value = serde_json::from_str(E7).unwrap();
    assert_eq!(ours, expected);
}

#[test]
fn planted_secrets_never_reach_a_serialised_byte() {
    let (_dir, entities) = sample_store();
    let e6 =
        serde_json::to_string(&full_config(&entities, &config(), &sample_info(), None).unwrap())
            .unwrap();
    let e7 = serde_json::to_string(&history_queries(&entities).unwrap()).unwrap();
    for body in [&e6, &e7] {
        assert!(!body.contains(PLANTED), "a secret leaked: {body}");
    }
    // Debug output (logs) is no way around it either.
    let debug = format!(
        "{:?}",
        full_config(&entities, &config(), &sample_info(), None).unwrap()
    );
    assert!(!debug.contains(PLANTED));
}

#[test]
fn engine_proxy_passwords_are_null_and_loki_blank() {
    let (_dir, entities) = sample_store();
    let body =
        serde_json::to_value(full_config(&entities, &config(), &sample_info(), None).unwrap())
            .unwrap();
    let settings = &body["engine"]["settings"];
    assert_eq!(settings["proxyServer"]["password"], Value::Null);
    assert_eq!(settings["proxyServer"]["forward"]["password"], Value::Null);
    assert_eq!(settings["logger"]["loki"]["password"], json!(""));
    assert_eq!(
        body["registration"]["publicKey"],
        json!(""),
        "no key pair yet"
    );
}

#[test]
fn only_a_public_key_can_go_in_the_registration_block() {
    let (public, private) = test_key_pems();
    assert!(PublicKeyPem::parse(&public).is_ok());
    let err = PublicKeyPem::parse(&private).unwrap_err();
    assert!(matches!(err, SnapshotError::PublicKey(_)));
    assert!(!err.to_string().contains("PRIVATE"), "{err}");
    assert!(PublicKeyPem::parse("").is_err());
}

#[test]
fn the_yaml_applies_where_oianalytics_set_nothing() {
    let (_dir, entities, _store) = open();
    let mut config = config();
    config
        .oianalytics
        .permissions
        .insert("restartEngine".into(), false);
    entities.seed(&config, "engine-id").unwrap();
    let body = serde_json::to_value(
        full_config(&entities, &config, &EngineInfo::current(&config), None).unwrap(),
    )
    .unwrap();
    assert_eq!(body["engine"]["oIBusInternalId"], "engine-id");
    assert_eq!(body["engine"]["name"], "yaml-name");
    assert_eq!(body["engine"]["settings"]["general"]["name"], "yaml-name");
    assert_eq!(
        body["engine"]["softwareVersion"],
        crate::COMPATIBLE_OIBUS_VERSION
    );
    assert_eq!(
        body["engine"]["launcherVersion"],
        crate::COMPATIBLE_OIBUS_VERSION
    );
    config.oianalytics.oibus_version = "3.9.2".into();
    let info = EngineInfo::current(&config);
    assert_eq!(
        (
            info.software_version.as_str(),
            info.launcher_version.as_str()
        ),
        ("3.9.2", "3.9.2"),
        "oianalytics.oibus_version overrides both"
    );
    let registration = &body["registration"]["settings"];
    assert_eq!(registration["messageRetryInterval"], 5);
    let permissions = registration["commandPermissions"].as_object().unwrap();
    assert_eq!(permissions.len(), 42);
    assert_eq!(permissions["restartEngine"], false, "the YAML is a ceiling");
    assert_eq!(permissions["updateVersion"], true);
    assert_eq!(body["scanModes"].as_array().unwrap().len(), 7, "seeded");
    let history = serde_json::to_value(history_queries(&entities).unwrap()).unwrap();
    assert_eq!(
        history,
        json!({"historyQueries": []}),
        "always complete, may be empty"
    );
}

#[test]
fn missing_settings_records_are_an_error_not_a_guess() {
    let (_dir, entities, _store) = open();
    let err = full_config(&entities, &config(), &sample_info(), None).unwrap_err();
    assert!(matches!(err, SnapshotError::NotSeeded("engine")), "{err}");
}

fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<_> = value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

#[test]
fn south_items_and_groups_have_the_e6_fields() {
    let (_dir, entities, store) = open();
    let mut other = Map::new();
    other.insert("syncWithGroup".into(), json!(false));
    other.insert("maxReadInterval".into(), json!(3600));
    other.insert("scanModeName".into(), json!("stored name"));
    let mut group_other = Map::new();
    group_other.insert(
        "standardSettings".into(),
        json!({"name": "g", "scanModeId": "s1"}),
    );
    group_other.insert("historySettings".into(), json!({"readDelay": 200}));
    let mut south = south_of(
        &serde_json::from_str::<Value>(E6).unwrap()["southConnectors"][0],
        &["password"],
    );
    south.items.push(SouthItem {
        id: "item-1".into(),
        name: "item".into(),
        enabled: true,
        settings: json!({"query": "SELECT 1"}),
        scan_mode_id: Some("s1".into()),
        group_id: None,
        other,
        audit: Audit::new("oianalytics", "2026-01-01T00:00:00.000Z"),
    });
    south.groups.push(SouthGroup {
        id: "group-1".into(),
        other: group_other,
    });
    put(&entities, &store, &south);
    let out = serde_json::to_value(super::south(entities.list().unwrap().remove(0))).unwrap();
    let item = &out["settings"]["items"][0];
    assert_eq!(
        keys(item),
        [
            "enabled",
            "endTimeOffset",
            "groupId",
            "groupName",
            "id",
            "maxReadInterval",
            "name",
            "oIBusCreatedAt",
            "oIBusCreatedBy",
            "oIBusUpdatedAt",
            "oIBusUpdatedBy",
            "readDelay",
            "recoveryStrategy",
            "scanModeId",
            "scanModeName",
            "settings",
            "startTimeOffset",
            "syncWithGroup"
        ]
    );
    assert_eq!(item["scanModeName"], Value::Null);
    assert_eq!(item["groupName"], Value::Null);
    assert_eq!(item["maxReadInterval"], 3600);
    assert_eq!(item["readDelay"], Value::Null);
    assert_eq!(
        out["settings"]["groups"][0],
        json!({"id": "group-1", "standardSettings": {"name": "g", "scanModeId": "s1"},
               "historySettings": {"readDelay": 200}})
    );
}

#[test]
fn an_unknown_connector_type_blanks_the_paths_recorded_with_it() {
    let (_dir, entities, store) = open();
    let mut south = south_of(
        &serde_json::from_str::<Value>(E6).unwrap()["southConnectors"][0],
        &[],
    );
    south.connector_type = "teleporter".into();
    south.settings = planted(json!({"auth": {"key": ""}, "host": "h"}), &["auth.key"]);
    south.secret_paths = vec!["auth.key".into()];
    put(&entities, &store, &south);
    let out = serde_json::to_value(super::south(entities.list().unwrap().remove(0))).unwrap();
    assert_eq!(
        out["settings"]["settings"],
        json!({"auth": {"key": ""}, "host": "h"})
    );
}

#[test]
fn e6_lists_the_15_standard_transformers_with_the_same_ids_after_reopening_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let listed = || {
        let entities = EntityStore::new(Store::open(&path).unwrap());
        entities.seed(&config(), "engine-id").unwrap();
        let body =
            serde_json::to_value(full_config(&entities, &config(), &sample_info(), None).unwrap())
                .unwrap();
        body["transformers"].as_array().unwrap().clone()
    };
    let first = listed();
    assert_eq!(first.len(), 15);
    let sample: Value = serde_json::from_str(E6).unwrap();
    for (ours, theirs) in first.iter().zip(sample["transformers"].as_array().unwrap()) {
        let id = ours["oIBusInternalId"].as_str().unwrap();
        assert!(
            id.len() == 6 && id.bytes().all(|b| b.is_ascii_alphanumeric()),
            "{id}"
        );
        let mut ours = ours.clone();
        ours["oIBusInternalId"] = theirs["oIBusInternalId"].clone();
        assert_eq!(&ours, theirs, "as OIBus sends it, ids aside");
    }
    let again = listed();
    assert_eq!(
        again, first,
        "the same ids after reopening and seeding again"
    );
}

#[test]
fn a_custom_transformer_is_listed_after_the_standard_ones_in_oibus_shape() {
    use crate::entities::transformers::{CustomTransformer, Transformer, TransformerDefinition};
    let (_dir, entities, store) = open();
    entities.seed(&config(), "engine-id").unwrap();
    let custom = Transformer {
        id: "Cust01".into(),
        input_type: "time-values".into(),
        output_type: "any".into(),
        definition: TransformerDefinition::Custom(CustomTransformer {
            name: "scale".into(),
            description: "d".into(),
            language: "typescript".into(),
            timeout: 2000,
            custom_code: "code".into(),
            custom_manifest: json!({"type": "object", "key": "options"}),
        }),
        audit: Audit::new("oianalytics", "2026-01-01T00:00:00.000Z"),
    };
    put(&entities, &store, &custom);
    let body =
        serde_json::to_value(full_config(&entities, &config(), &sample_info(), None).unwrap())
            .unwrap();
    let list = body["transformers"].as_array().unwrap();
    assert_eq!(list.len(), 16);
    assert_eq!(
        list[15],
        json!({"oIBusInternalId": "Cust01", "oIBusCreatedBy": "oianalytics",
            "oIBusUpdatedBy": "oianalytics", "oIBusCreatedAt": "2026-01-01T00:00:00.000Z",
            "oIBusUpdatedAt": "2026-01-01T00:00:00.000Z", "type": "custom",
            "settings": {"name": "scale", "description": "d", "inputType": "time-values",
                "language": "typescript", "timeout": 2000, "outputType": "any", "customCode": "code"},
            "manifest": {"type": "object", "key": "options"}})
    );
}
