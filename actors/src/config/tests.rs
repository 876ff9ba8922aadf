use super::*;

fn problems(yaml: &str) -> Vec<String> {
    parse(yaml)
        .expect_err("config should be invalid")
        .iter()
        .map(|p| p.to_string())
        .collect()
}

#[test]
fn documented_default_file_equals_the_built_in_defaults() {
    let text = include_str!("../../../config/agent.yaml");
    let parsed = parse(text).expect("config/agent.yaml must be valid");
    assert_eq!(parsed, Config::default());
}

#[test]
fn config_round_trips_through_yaml() {
    let mut config = Config::default();
    config.oianalytics.host = Some("https://oia.example.com".into());
    config
        .oianalytics
        .permissions
        .insert("updateVersion".into(), false);
    let text = serde_norway::to_string(&config).unwrap();
    assert_eq!(parse(&text).unwrap(), config);
}

#[test]
fn empty_file_is_the_default_config() {
    assert_eq!(parse("").unwrap(), Config::default());
}

#[test]
fn invalid_duration_names_key_value_and_position() {
    let yaml = "oianalytics:\n  intervals:\n    command_refresh: 5 parsecs\n";
    assert_eq!(
        problems(yaml),
        [
            r#"oianalytics.intervals.command_refresh: invalid duration "5 parsecs" (expected e.g. 500ms, 10s, 5m, 1h 30m) at 3:22"#
        ]
    );
}

#[test]
fn unknown_key_is_an_error_with_position() {
    let p = problems("engine:\n  nmae: x\n");
    assert_eq!(p.len(), 1);
    assert!(p[0].starts_with("engine: unknown field `nmae`"), "{}", p[0]);
    assert!(p[0].ends_with("at 2:3"), "{}", p[0]);
}

#[test]
fn broken_yaml_syntax_is_reported_with_position() {
    let p = problems("engine:\n  name: [unclosed\n");
    assert_eq!(p.len(), 1);
    assert!(p[0].contains(" at "), "{}", p[0]);
}

#[test]
fn wrong_type_is_reported_with_key_path() {
    let p = problems("oianalytics:\n  key_size: big\n");
    assert!(
        p[0].starts_with("oianalytics.key_size: invalid type"),
        "{}",
        p[0]
    );
    assert!(p[0].ends_with("at 2:13"), "{}", p[0]);
}

#[test]
fn semantic_problems_are_all_reported_at_once() {
    let yaml = "\
oianalytics:
  host: ftp://nope
  key_size: 1024
  intervals: { command_refresh: 500ms, command_retry: 0s }
  permissions: { restartEngine: false, launchRockets: true }
  proxy: { url: http://p:3128, password_file: /nonexistent/proxy.pass }
engine:
  api: { listen: 127.0.0.1:0 }
";
    let p = problems(yaml);
    let expected = [
        "engine.api.listen: port 0 is not allowed: the launcher and the CLI need a fixed port at 8:18",
        "oianalytics.host: must start with http:// or https://, got \"ftp://nope\" at 2:9",
        "oianalytics.intervals.command_refresh: must be at least 1s, got 500ms at 4:33",
        "oianalytics.intervals.command_retry: must be at least 1s, got 0s at 4:55",
        "oianalytics.key_size: must be one of 2048, 3072, 4096, got 1024 at 3:13",
        "oianalytics.permissions.launchRockets: is not a known command permission (see config/agent.yaml for the 42 flags) at 5:55",
    ];
    for e in expected {
        assert!(p.iter().any(|x| x == e), "missing {e:?} in {p:#?}");
    }
    assert!(
        p.iter().any(|x| x
            .starts_with("oianalytics.proxy.password_file: cannot read /nonexistent/proxy.pass")),
        "{p:#?}"
    );
    assert_eq!(p.len(), 7, "{p:#?}");
}

#[test]
fn invalid_log_level_is_rejected() {
    let p = problems("engine:\n  log: { console: loud }\n");
    assert!(
        p[0].starts_with("engine.log.console: unknown variant `loud`"),
        "{}",
        p[0]
    );
}

#[test]
fn secret_files_are_read_without_trailing_newline() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gw");
    std::fs::write(&file, "s3cret\n").unwrap();
    let yaml = format!(
        "oianalytics:\n  api_gateway: {{ base_endpoint: /gw, header_key: x-gw, header_value_file: {} }}\n",
        file.display()
    );
    let config = parse(&yaml).unwrap();
    let value = config.oianalytics.gateway_header_value().unwrap().unwrap();
    assert_eq!(value.expose(), "s3cret");
    assert_eq!(format!("{:?}", config.oianalytics.api_gateway), format!("Some(GatewayConfig {{ base_endpoint: \"/gw\", header_key: \"x-gw\", header_value_file: Some({:?}), header_value: None }})", file));
}

#[test]
fn there_are_exactly_42_distinct_permission_flags() {
    let set: std::collections::BTreeSet<_> = PERMISSION_FLAGS.iter().collect();
    assert_eq!(set.len(), 42);
}

#[test]
fn durations_longer_than_a_year_are_refused_before_they_overflow_the_clock() {
    // Once accepted: the first failed message send panicked computing its retry delay, and the
    // first stop panicked computing its deadline (an invariant of the `config` fuzz target).
    let text = include_str!("../../tests-data/fuzz/config/huge-durations.yaml");
    let p = problems(text);
    assert_eq!(p.len(), 2, "{p:#?}");
    for (problem, (path, at)) in p.iter().zip([
        ("oianalytics.intervals.message_retry", "at 2:31"),
        ("launcher.shutdown_timeout", "at 4:21"),
    ]) {
        assert!(
            problem.starts_with(&format!("{path}: must be at most 365 days, got "))
                && problem.ends_with(at),
            "{problem}"
        );
    }
    let year = "launcher: { health_grace: 365d, shutdown_timeout: 1y }\n";
    assert_eq!(
        problems(year),
        ["launcher.shutdown_timeout: must be at most 365 days, got 1year at 1:51"]
    );
}

#[test]
fn the_answer_size_limit_takes_a_byte_size_within_bounds() {
    let config = parse("oianalytics:\n  max_answer_bytes: 256MiB\n").expect("a valid size");
    assert_eq!(config.oianalytics.max_answer_bytes, ByteSize(256 << 20));
    assert_eq!(
        problems("oianalytics:\n  max_answer_bytes: 2GiB\n"),
        ["oianalytics.max_answer_bytes: must be between 64KiB and 1GiB, got 2GiB at 2:21"]
    );
}

#[test]
fn the_oibus_version_defaults_to_the_compatible_release_and_must_be_x_y_z() {
    assert_eq!(
        Config::default().oianalytics.oibus_version,
        crate::COMPATIBLE_OIBUS_VERSION
    );
    let ok = parse("oianalytics:\n  oibus_version: 3.9.0\n").unwrap();
    assert_eq!(ok.oianalytics.oibus_version, "3.9.0");
    for bad in [
        "v3.8.8",
        "3.8",
        "3.8.8-beta",
        "3.8.x",
        "",
        "3..8",
        "3.8.8.1",
    ] {
        let p = problems(&format!("oianalytics:\n  oibus_version: '{bad}'\n"));
        assert_eq!(p.len(), 1, "{bad}: {p:?}");
        assert!(
            p[0].starts_with("oianalytics.oibus_version: must be an OIBus release version X.Y.Z"),
            "{bad}: {}",
            p[0]
        );
        assert!(p[0].ends_with("at 2:18"), "{bad}: {}", p[0]);
    }
}

#[test]
fn type_errors_are_reported_together_with_semantic_problems() {
    let yaml = "\
engine:
  name: ' '
  nmae: x
oianalytics:
  key_size: big
  intervals:
    command_refresh: 5 parsecs
    command_retry: 0s
  proxy: { username: ops }
";
    assert_eq!(
        problems(yaml),
        [
            "engine: unknown field `nmae`, expected one of `name`, `data_dir`, `api`, `log` at 3:3",
            "oianalytics.key_size: invalid type: string \"big\", expected u32 at 5:13",
            "oianalytics.proxy: missing field `url` at 9:10",
            r#"oianalytics.intervals.command_refresh: invalid duration "5 parsecs" (expected e.g. 500ms, 10s, 5m, 1h 30m) at 7:22"#,
            "engine.name: must not be empty at 2:9",
            "oianalytics.intervals.command_retry: must be at least 1s, got 0s at 8:20",
        ]
    );
}

#[test]
fn a_document_that_is_not_a_mapping_is_one_problem() {
    let p = problems("just text\n");
    assert_eq!(p.len(), 1, "{p:#?}");
    assert!(p[0].starts_with("invalid type: string"), "{}", p[0]);
}

#[test]
fn anchors_tags_and_several_documents_are_judged_without_a_panic() {
    for text in [
        "engine: &e { name: x }\nlauncher: { install_dir: *e }\n",
        "engine: { name: '' }\nlauncher: *missing\n",
        "engine: !!map { name: '' }\n",
        "engine: { name: x }\n---\nengine: { name: y }\n",
        "? [a]\n: b\n",
        "- 1\n- 2\n",
    ] {
        let _ = parse(text);
    }
    let anchored = problems("engine: &e { name: '' }\n");
    assert_eq!(anchored, ["engine.name: must not be empty"]);
}

#[test]
fn metrics_keep_counts_are_also_read_under_their_old_name_retention() {
    let old = parse("actors:\n  metrics_aggregator:\n    retention: { hours: 6 }\n").unwrap();
    let new = parse("actors:\n  metrics_aggregator:\n    keep: { hours: 6 }\n").unwrap();
    assert_eq!(old, new);
    assert_eq!(new.actors.metrics_aggregator.keep.hours, 6);
    assert_eq!(
        problems("actors:\n  metrics_aggregator:\n    keep: { days: 0 }\n"),
        ["actors.metrics_aggregator.keep.days: must be at least 1 at 3:19"]
    );
}
