use serde_json::json;

use super::super::derive_id;
use super::super::fixture::Fixture;
use super::super::Applied;
use crate::commands::catalogue::CONTENT;
use crate::commands::CommandType::*;
use crate::entities::{HistoryQuery, ScanMode, SouthConnector};
use serde_json::Value;

/// The shared fixture, with a scan mode named `fast`.
fn fixture() -> Fixture {
    let f = super::super::fixture::fixture();
    f.run(
        "mk-fast",
        CreateScanMode,
        json!({CONTENT: {"name": "fast", "description": "", "cron": "* * * * * *"}}),
    )
    .unwrap();
    f
}

impl Fixture {
    /// A south connector of `south_type` named `name`, with `items`; returns its id.
    fn south(&self, name: &str, south_type: &str, items: Value) -> String {
        self.run(
            &format!("mk-{name}"),
            CreateSouth,
            json!({"southConnectorId": "", CONTENT: {
                "name": name, "type": south_type, "description": "", "enabled": true,
                "settings": {}, "groups": [], "items": items}}),
        )
        .unwrap();
        self.entities
            .id_by_name::<SouthConnector>(name)
            .unwrap()
            .unwrap()
    }

    fn history(&self, name: &str, south_type: &str) -> String {
        self.run(
            &format!("mk-{name}"),
            CreateHistoryQuery,
            json!({"southConnectorId": "", "northConnectorId": "", "historyQueryId": "", CONTENT: {
                "name": name, "description": "", "southType": south_type, "northType": "console",
                "southSettings": {}, "northSettings": {}, "queryTimeRange": {}, "items": []}}),
        )
        .unwrap();
        self.entities
            .id_by_name::<HistoryQuery>(name)
            .unwrap()
            .unwrap()
    }

    fn import(
        &self,
        command_id: &str,
        south_id: &str,
        csv: &str,
        delimiter: &str,
        delete: bool,
    ) -> Result<Applied, String> {
        self.run(
            command_id,
            CreateOrUpdateSouthItemsFromCsv,
            json!({"southConnectorId": south_id, CONTENT: {
                "deleteItemsNotPresent": delete, "csvContent": csv, "delimiter": delimiter}}),
        )
    }
}

const MODBUS_CSV: &str = "name;enabled;scanMode;settings_address;settings_modbusType;settings_data\n\
    temp;true;fast;0x0001;holding-register;\"{\"\"dataType\"\":\"\"uint16\"\",\"\"multiplierCoefficient\"\":1}\"\n\
    valve;FALSE;fast;0x0002;coil;\n";

#[test]
fn modbus_items_are_imported_with_settings_typed_from_the_manifest() {
    let f = fixture();
    let south = f.south("plc", "modbus", json!([]));
    let applied = f.import("c1", &south, MODBUS_CSV, ";", false).unwrap();
    assert_eq!(applied.result, "2 items imported on South connector plc");
    assert!(applied.effects.full_config && !applied.effects.history_queries);

    let stored = f.stored::<SouthConnector>(&south);
    let fast = f.entities.id_by_name::<ScanMode>("fast").unwrap();
    assert_eq!(stored.items.len(), 2);
    let temp = &stored.items[0];
    assert_eq!(temp.name, "temp");
    assert!(temp.enabled);
    assert_eq!(temp.scan_mode_id, fast);
    assert_eq!(temp.id, derive_id("c1", &format!("{south}/csv-item/temp")));
    assert_eq!(
        temp.settings,
        json!({"address": "0x0001", "modbusType": "holding-register",
               "data": {"dataType": "uint16", "multiplierCoefficient": 1}})
    );
    assert_eq!(temp.other["syncWithGroup"], json!(false));
    // An empty object column is left out, as OIBus leaves it undefined.
    let valve = &stored.items[1];
    assert!(!valve.enabled);
    assert_eq!(
        valve.settings,
        json!({"address": "0x0002", "modbusType": "coil"})
    );
}

#[test]
fn booleans_json_and_numbers_are_read_as_oibus_reads_them() {
    let f = fixture();
    let south = f.south("fs", "folder-scanner", json!([]));
    let csv = "name,enabled,scanMode,settings_regex,settings_minAge,settings_preserveFiles,\
               settings_maxFiles,settings_maxSize,settings_recursive\n\
               csv,1,fast,.*\\.csv,1000,False,10,0,true\n";
    f.import("c1", &south, csv, ",", false).unwrap();
    let item = &f.stored::<SouthConnector>(&south).items[0];
    assert!(item.enabled);
    // Numbers stay the strings OIBus stores; booleans are parsed.
    assert_eq!(
        item.settings,
        json!({"regex": ".*\\.csv", "minAge": "1000", "preserveFiles": false,
               "maxFiles": "10", "maxSize": "0", "recursive": true})
    );

    let opcua = f.south("ua", "opcua", json!([]));
    let csv = "name\tscanMode\tsettings_nodeId\tsettings_mode\tsettings_haMode\tsettings_timestampOrigin\n\
               t1\tSubscription\tns=3;s=T1\tha\t{\"aggregate\":\"raw\",\"resampling\":\"none\"}\t\n";
    let applied = f.import("c2", &opcua, csv, "\t", false).unwrap();
    assert_eq!(applied.result, "1 items imported on South connector ua");
    let item = &f.stored::<SouthConnector>(&opcua).items[0];
    assert!(!item.enabled, "no enabled column reads as false");
    assert_eq!(
        item.settings,
        json!({"nodeId": "ns=3;s=T1", "mode": "ha",
               "haMode": {"aggregate": "raw", "resampling": "none"}})
    );
}

#[test]
fn quoted_fields_may_hold_the_delimiter() {
    let f = fixture();
    let south = f.south("mq", "mqtt", json!([]));
    let csv = "name;scanMode;settings_topic\n\"a;b\";Subscription;\"plant/\"\"x\"\";y\"\n";
    f.import("c1", &south, csv, ";", false).unwrap();
    let item = &f.stored::<SouthConnector>(&south).items[0];
    assert_eq!(item.name, "a;b");
    assert_eq!(item.settings, json!({"topic": "plant/\"x\";y"}));
}

#[test]
fn a_forbidden_delimiter_is_reported_with_oibus_text_and_a_wrong_one_fails_the_rows() {
    let f = fixture();
    let south = f.south("mq", "mqtt", json!([]));
    assert_eq!(
        f.import("c1", &south, "name\nx", "\"", false),
        Err("The entered delimiter \"\"\" does not correspond to the file delimiter \",\"".into())
    );
    // papaparse splits on the delimiter it is given, so a file written with another one has a
    // single column and no row has a name or a scan mode.
    assert_eq!(
        f.import("c2", &south, "name,scanMode,settings_topic\nx,fast,t\n", ";", false),
        Err("Error when checking csv items:\nundefined: Scan mode not specified for item \"undefined\"".into())
    );
    assert!(f.stored::<SouthConnector>(&south).items.is_empty());
}

#[test]
fn every_bad_row_is_listed_and_nothing_is_written() {
    let f = fixture();
    let south = f.south("ua", "opcua", json!([{"name": "old", "enabled": true,
        "scanModeName": "Subscription", "settings": {"nodeId": "n", "mode": "da", "timestampOrigin": "oibus"}}]));
    let csv = "name,scanMode,settings_nodeId,settings_mode,settings_colour\n\
               a,slow,n,da,\n\
               b,,n,da,\n\
               old,fast,n,da,\n\
               c,fast,n,ha,\n\
               d,fast,n,da,red\n\
               ok,fast,n,da,\n";
    // The column is refused even where it is empty, as OIBus reads every settings_ column.
    let err = f.import("c1", &south, csv, ",", false).unwrap_err();
    assert_eq!(
        err,
        "Error when checking csv items:\n\
         a: Scan mode \"slow\" not found for item \"a\"\n\
         b: Scan mode not specified for item \"b\"\n\
         old: Item name \"old\" already used\n\
         c: Settings \"colour\" not accepted in manifest\n\
         d: Settings \"colour\" not accepted in manifest\n\
         ok: Settings \"colour\" not accepted in manifest"
    );
    let csv = "name,scanMode,settings_nodeId,settings_mode\nc,fast,n,ha\ne,fast,,xx\n";
    assert_eq!(
        f.import("c2", &south, csv, ",", false).unwrap_err(),
        "Error when checking csv items:\n\
         c: \"haMode\" is required\n\
         e: \"nodeId\" is required. \"mode\" must be one of [ha, da]"
    );
    assert_eq!(f.stored::<SouthConnector>(&south).items.len(), 1);
}

#[test]
fn delete_items_not_present_replaces_the_items_and_keeps_the_ids_of_same_names() {
    let f = fixture();
    let south = f.south("mq", "mqtt", json!([
        {"name": "keep", "enabled": true, "scanModeName": "Subscription", "settings": {"topic": "a"}},
        {"name": "drop", "enabled": true, "scanModeName": "Subscription", "settings": {"topic": "b"}}]));
    let before = f.stored::<SouthConnector>(&south);
    let keep_id = before.items[0].id.clone();
    let csv = "name,enabled,scanMode,settings_topic\nkeep,true,fast,a2\nnew,true,fast,c\n";
    let applied = f.import("c1", &south, csv, ",", true).unwrap();
    assert_eq!(applied.result, "2 items imported on South connector mq");
    let after = f.stored::<SouthConnector>(&south);
    let names: Vec<_> = after.items.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["keep", "new"]);
    assert_eq!(after.items[0].id, keep_id);
    assert_eq!(after.items[0].settings, json!({"topic": "a2"}));
    assert_eq!(
        after.items[0].audit.created_at,
        before.items[0].audit.created_at
    );
}

#[test]
fn rerunning_the_same_command_gives_the_same_items() {
    let f = fixture();
    let south = f.south("mq", "mqtt", json!([]));
    let csv = "name,scanMode,settings_topic\nx,fast,t/x\ny,fast,t/y\n";
    f.import("c1", &south, csv, ",", true).unwrap();
    let first = f.stored::<SouthConnector>(&south).items;
    f.import("c1", &south, csv, ",", true).unwrap();
    assert_eq!(f.stored::<SouthConnector>(&south).items, first);
    // Without deleteItemsNotPresent the second import finds the names taken, as OIBus does.
    assert_eq!(
        f.import("c2", &south, csv, ",", false).unwrap_err(),
        "Error when checking csv items:\nx: Item name \"x\" already used\ny: Item name \"y\" already used"
    );
}

#[test]
fn missing_connectors_and_unknown_types_fail_with_oibus_texts() {
    let f = fixture();
    assert_eq!(
        f.import("c1", "nope", "name\n", ",", false).unwrap_err(),
        "South \"nope\" not found"
    );
    let south = f.south("odd", "steam-engine", json!([]));
    assert_eq!(
        f.import("c2", &south, "name\n", ",", false).unwrap_err(),
        "South manifest \"steam-engine\" not found"
    );
    let err = f
        .run(
            "c3",
            CreateOrUpdateSouthItemsFromCsv,
            json!({"southConnectorId": south, CONTENT: {"csvContent": "", "delimiter": ","}}),
        )
        .unwrap_err();
    assert!(
        err.starts_with("commandContent: missing field `deleteItemsNotPresent`"),
        "{err}"
    );
}

#[test]
fn history_query_items_are_imported_without_scan_modes() {
    let f = fixture();
    let history = f.history("backfill", "opcua");
    let import = |id: &str, csv: &str, delete: bool| {
        f.run(
            id,
            CreateOrUpdateHistoryQuerySouthItemsFromCsv,
            json!({"historyQueryId": history, CONTENT: {
                "deleteItemsNotPresent": delete, "csvContent": csv, "delimiter": ";"}}),
        )
    };
    let csv = "name;enabled;settings_nodeId;settings_mode;settings_timestampOrigin\nh1;true;ns=1;da;point\n";
    let applied = import("c1", csv, false).unwrap();
    assert_eq!(applied.result, "1 items imported on History query backfill");
    assert!(applied.effects.history_queries && !applied.effects.full_config);
    let stored = f.entities.get::<HistoryQuery>(&history).unwrap().unwrap();
    assert_eq!(stored.items.len(), 1);
    assert_eq!(
        stored.items[0].id,
        derive_id("c1", &format!("{history}/csv-item/h1"))
    );
    assert_eq!(
        stored.items[0].settings,
        json!({"nodeId": "ns=1", "mode": "da", "timestampOrigin": "point"})
    );
    // An empty text column stays "" on a history query, which Joi then refuses.
    assert_eq!(
        import("c2", "name;settings_nodeId;settings_mode\nh2;;da\n", false).unwrap_err(),
        "Error when checking csv items:\nh2: \"nodeId\" is not allowed to be empty. \
         \"timestampOrigin\" is required"
    );
    assert_eq!(
        import("c3", csv, false).unwrap_err(),
        "Error when checking csv items:\nh1: Item name \"h1\" already used"
    );
    assert_eq!(
        f.run(
            "c4",
            CreateOrUpdateHistoryQuerySouthItemsFromCsv,
            json!({"historyQueryId": "nope", CONTENT: {
                "deleteItemsNotPresent": false, "csvContent": csv, "delimiter": ";"}}),
        )
        .unwrap_err(),
        "History query \"nope\" not found"
    );
}
