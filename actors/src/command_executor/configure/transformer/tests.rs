use serde_json::{json, Value};

use super::super::derive_id;
use super::super::fixture::{fixture, Fixture};
use crate::commands::CommandType::*;
use crate::entities::transformers::{Transformer, TransformerDefinition};
use crate::entities::{HistoryQuery, NorthConnector};

impl Fixture {
    fn standard_id(&self, function: &str) -> String {
        self.entities
            .list::<Transformer>()
            .expect("list")
            .into_iter()
            .find(|t| {
                matches!(&t.definition, TransformerDefinition::Standard { function_name }
                    if function_name == function)
            })
            .map(|t| t.id)
            .expect("seeded")
    }
}

fn custom(name: &str) -> Value {
    json!({"type": "custom", "name": name, "description": "d", "inputType": "time-values",
        "outputType": "any", "language": "javascript", "timeout": 2000,
        "customCode": "function transform() {}", "customManifest": {"type": "object", "key": "options"}})
}

#[test]
fn custom_transformers_are_created_updated_and_deleted_with_oibus_sentences() {
    let f = fixture();
    let created = f
        .run(
            "t1",
            CreateCustomTransformer,
            json!({"commandContent": custom("scale")}),
        )
        .unwrap();
    assert_eq!(created.result, "Transformer created successfully");
    assert!(created.effects.full_config, "an E6 follows");
    let id = derive_id("t1", "transformer");
    let stored = f.stored::<Transformer>(&id);
    assert_eq!(stored.input_type, "time-values");

    // A re-run of the same command rewrites the same transformer.
    f.run(
        "t1",
        CreateCustomTransformer,
        json!({"commandContent": custom("scale")}),
    )
    .unwrap();
    assert_eq!(f.entities.list::<Transformer>().unwrap().len(), 16);

    let mut changed = custom("scaled");
    changed["inputType"] = json!("any");
    changed["customCode"] = json!("function transform() { return 1; }");
    let updated = f
        .run(
            "t2",
            UpdateCustomTransformer,
            json!({"transformerId": id, "commandContent": changed}),
        )
        .unwrap();
    assert_eq!(updated.result, "Transformer updated successfully");
    let stored = f.stored::<Transformer>(&id);
    let TransformerDefinition::Custom(c) = &stored.definition else {
        panic!("a custom transformer");
    };
    assert_eq!(c.name, "scaled");
    assert_eq!(c.custom_code, "function transform() { return 1; }");
    assert_eq!(
        stored.input_type, "time-values",
        "OIBus's update keeps the types"
    );
    assert_eq!(f.entities.id_by_name::<Transformer>("scale").unwrap(), None);

    let deleted = f
        .run("t3", DeleteCustomTransformer, json!({"transformerId": id}))
        .unwrap();
    assert_eq!(deleted.result, "Transformer deleted successfully");
    assert!(deleted.effects.full_config);
    assert_eq!(f.entities.get::<Transformer>(&id).unwrap(), None);
    assert_eq!(
        f.run("t4", DeleteCustomTransformer, json!({"transformerId": id})),
        Err(format!("Transformer \"{id}\" not found"))
    );
}

#[test]
fn custom_transformer_names_are_unique() {
    let f = fixture();
    f.run(
        "a",
        CreateCustomTransformer,
        json!({"commandContent": custom("x")}),
    )
    .unwrap();
    assert_eq!(
        f.run(
            "b",
            CreateCustomTransformer,
            json!({"commandContent": custom("x")})
        ),
        Err("Transformer name \"x\" already exists".into())
    );
    f.run(
        "c",
        CreateCustomTransformer,
        json!({"commandContent": custom("y")}),
    )
    .unwrap();
    assert_eq!(
        f.run(
            "d",
            UpdateCustomTransformer,
            json!({"transformerId": derive_id("c", "transformer"), "commandContent": custom("x")})
        ),
        Err("Transformer name \"x\" already exists".into())
    );
}

#[test]
fn a_custom_transformer_command_is_checked_field_by_field() {
    let f = fixture();
    let mut no_code = custom("x");
    no_code.as_object_mut().unwrap().remove("customCode");
    let err = f
        .run(
            "a",
            CreateCustomTransformer,
            json!({"commandContent": no_code}),
        )
        .unwrap_err();
    assert!(err.contains("customCode"), "{err}");
    let mut fast = custom("x");
    fast["timeout"] = json!(50);
    assert_eq!(
        f.run(
            "b",
            CreateCustomTransformer,
            json!({"commandContent": fast})
        ),
        Err("commandContent.timeout must be greater than or equal to 100".into())
    );
}

#[test]
fn standard_transformers_can_be_neither_updated_nor_deleted() {
    let f = fixture();
    let iso = f.standard_id("iso");
    assert_eq!(
        f.run(
            "a",
            UpdateCustomTransformer,
            json!({"transformerId": iso, "commandContent": custom("x")})
        ),
        Err(format!("Cannot edit standard transformer \"{iso}\""))
    );
    assert_eq!(
        f.run("b", DeleteCustomTransformer, json!({"transformerId": iso})),
        Err(format!("Cannot delete standard transformer \"{iso}\""))
    );
}

fn north(transformers: Value) -> Value {
    json!({"name": "n", "type": "console", "description": "", "enabled": false, "settings": {},
        "caching": {"trigger": {"scanModeId": "subscription"}}, "transformers": transformers})
}

#[test]
fn a_north_with_an_unknown_transformer_id_is_refused() {
    let f = fixture();
    let cc = north(
        json!([{"id": null, "transformerId": "nope00", "options": {},
        "source": {"type": "oianalytics-setpoint"}}]),
    );
    assert_eq!(
        f.run(
            "n",
            CreateNorth,
            json!({"northConnectorId": "", "commandContent": cc})
        ),
        Err("Could not find OIBus transformer \"nope00\"".into())
    );
    assert_eq!(f.entities.list::<NorthConnector>().unwrap(), Vec::new());
}

#[test]
fn north_transformers_without_an_id_get_one_and_a_rerun_gives_the_same() {
    let f = fixture();
    let south = json!({"name": "plc", "type": "mssql", "description": "", "enabled": false,
        "settings": {}, "items": [{"id": null, "name": "i1", "enabled": true, "settings": {}}],
        "groups": []});
    f.run(
        "s",
        CreateSouth,
        json!({"southConnectorId": "", "commandContent": south}),
    )
    .unwrap();
    let south_id = derive_id("s", "south");
    let item_id = derive_id("s", &format!("{south_id}/item/0"));
    let iso = f.standard_id("iso");
    let cc = north(json!([
        {"transformerId": iso, "options": {"a": 1},
         "source": {"type": "south", "southId": south_id, "items": [{"id": item_id, "name": "stale", "enabled": false}]}},
        {"id": null, "transformerId": iso, "options": null,
         "source": {"type": "oibus-api", "dataSourceId": "api"}}
    ]));
    let fields = json!({"northConnectorId": "", "commandContent": cc});
    f.run("n", CreateNorth, fields.clone()).unwrap();
    let id = derive_id("n", "north");
    let first = f.stored::<NorthConnector>(&id);
    let t0 = &first.transformers[0];
    assert_eq!(
        t0["id"],
        json!(derive_id("n", &format!("{id}/transformer/0")))
    );
    assert_eq!(
        t0["source"],
        json!({"type": "south", "southId": south_id,
            "items": [{"id": item_id, "name": "i1", "enabled": true}]}),
        "items are re-read from the stored south"
    );
    assert_eq!(
        first.transformers[1],
        json!({"id": derive_id("n", &format!("{id}/transformer/1")), "transformerId": iso,
            "options": {}, "source": {"type": "oibus-api", "dataSourceId": "api"}})
    );
    assert_ne!(t0["id"], first.transformers[1]["id"]);

    f.run("n", CreateNorth, fields).unwrap();
    let again = f.stored::<NorthConnector>(&id);
    assert_eq!(again.transformers, first.transformers);

    // An update keeps the ids it is sent back.
    let mut cc = north(Value::Array(first.transformers.clone()));
    cc["transformers"][0]["source"]["items"] = json!([]);
    f.run(
        "u",
        UpdateNorth,
        json!({"northConnectorId": id, "commandContent": cc}),
    )
    .unwrap();
    let updated = f.stored::<NorthConnector>(&id);
    assert_eq!(updated.transformers[0]["id"], first.transformers[0]["id"]);

    let mut missing_item = north(json!([{"transformerId": iso, "options": {},
        "source": {"type": "south", "southId": south_id, "items": [{"id": "gone", "name": "g", "enabled": true}]}}]));
    missing_item["name"] = json!("other");
    assert_eq!(
        f.run(
            "m",
            CreateNorth,
            json!({"northConnectorId": "", "commandContent": missing_item})
        ),
        Err("Could not find South connector item \"g\" (gone)".into())
    );
}

#[test]
fn history_north_transformers_are_checked_and_their_items_re_read() {
    let f = fixture();
    let iso = f.standard_id("iso");
    let cc = |transformer_id: &str| {
        json!({"name": "h", "description": "", "queryTimeRange": {},
            "caching": {"trigger": {"scanModeId": "subscription"}},
            "southType": "mssql", "southSettings": {}, "northType": "console", "northSettings": {},
            "items": [{"id": "it0001", "name": "i", "enabled": true, "settings": {}}],
            "northTransformers": [{"id": "", "transformerId": transformer_id, "options": {},
                "items": [{"id": "it0001", "name": "old", "enabled": false}]}]})
    };
    let fields = |tid: &str| {
        json!({"southConnectorId": "", "northConnectorId": "", "historyQueryId": "",
            "commandContent": cc(tid)})
    };
    assert_eq!(
        f.run("h0", CreateHistoryQuery, fields("nope00")),
        Err("Could not find OIBus transformer \"nope00\"".into())
    );
    f.run("h1", CreateHistoryQuery, fields(&iso)).unwrap();
    let id = derive_id("h1", "history-query");
    let stored = f.stored::<HistoryQuery>(&id);
    let t = &stored.north_transformers[0];
    assert_eq!(
        t["id"],
        json!(derive_id("h1", &format!("{id}/transformer/0")))
    );
    assert_eq!(t["transformerId"], json!(iso));
    assert_eq!(t["items"][0]["name"], "i");
    assert_eq!(t["items"][0]["enabled"], true);
    assert_eq!(t["items"][0]["createdBy"], "oianalytics");
}
