//! Configuration parsing and validation.

use super::located::plain_words;
use super::*;

fn example() -> String {
    include_str!("../../../meshflow.example.toml").to_string()
}

#[test]
fn the_example_documents_the_defaults_and_validates() {
    let cfg = JobConfig::parse(&example()).unwrap();
    cfg.validate().unwrap();
    assert_eq!(
        cfg,
        JobConfig::embedded_default(),
        "the example must show exactly the defaults"
    );
}

/// The commented block of the example that starts at `header`, uncommented, without
/// its sub-tables (examples of non-default values).
fn commented_block(header: &str) -> String {
    let text = example();
    let start = text.find(header).expect("block in the example");
    text[start..]
        .lines()
        .take_while(|l| l.starts_with('#'))
        .map(|l| l.trim_start_matches('#').trim_start())
        .take_while(|l| *l == header.trim_start_matches("# ") || !l.starts_with('['))
        .map(|l| l.split(" # ").next().unwrap_or(l).trim_end().to_string() + "\n")
        .collect()
}

#[test]
fn the_commented_kafka_sections_of_the_example_are_the_defaults() {
    let sink = JobConfig::parse(&commented_block("# [sinks.kafka]")).unwrap();
    assert_eq!(
        sink.sinks.kafka,
        Some(meshflow_sinks::kafka::KafkaSinkConfig::default())
    );
    let source = JobConfig::parse(&commented_block("# [sources.bus]")).unwrap();
    let SourceConfig::Kafka(k) = &source.sources["bus"] else {
        panic!("not a Kafka source: {source:?}")
    };
    let expected = meshflow_sources::kafka::KafkaSourceConfig {
        topics: vec!["meshflow.flows".into()],
        ..Default::default()
    };
    assert_eq!(k, &expected);
    let mut cfg = source.clone();
    cfg.sinks.kafka = sink.sinks.kafka.clone();
    cfg.validate().unwrap();
    let mut bad = cfg.clone();
    if let Some(k) = bad.sinks.kafka.as_mut() {
        k.partitions = 0;
    }
    let e = bad.validate().unwrap_err().to_string();
    assert!(e.starts_with("sinks.kafka.partitions"), "{e}");
    let mut bad = cfg;
    if let Some(SourceConfig::Kafka(k)) = bad.sources.get_mut("bus") {
        k.topics.clear();
    }
    let e = bad.validate().unwrap_err().to_string();
    assert!(e.starts_with("sources.bus.topics"), "{e}");
}

#[test]
fn unknown_keys_are_rejected_with_their_name() {
    for (text, key) in [
        ("[job]\nworkerz = 2\n", "workerz"),
        ("[window]\nlenght = \"10s\"\n", "lenght"),
        ("[sources.a]\ntype = \"simulator\"\nnodez = 3\n", "nodez"),
        ("[sinks.parquet]\nrow_groups = 3\n", "row_groups"),
        ("[sinks.kafka]\nbrokerz = \"x\"\n", "brokerz"),
        ("[sinks.kafkaa]\n", "kafkaa"),
        (
            "[sources.k]\ntype = \"kafka\"\ntopics = [\"t\"]\ntopic = \"t\"\n",
            "topic",
        ),
    ] {
        let err = JobConfig::parse(text).unwrap_err();
        assert!(
            err.contains(&format!("unknown field `{key}`")),
            "{text}: {err}"
        );
    }
    let err = JobConfig::parse("[sources.a]\ntype = \"carrier_pigeon\"\n").unwrap_err();
    assert!(err.contains("carrier_pigeon"), "{err}");
}

/// Errors outside the source tables name the key's whole path, and serde's type
/// names are said in words.
#[test]
fn errors_name_the_key_path_in_plain_words() {
    let err = JobConfig::parse("[job]\nworkerz = 2\n").unwrap_err();
    assert!(err.contains("line 2, column 1"), "{err}");
    assert!(
        err.contains("`job.workerz`: unknown field `workerz`"),
        "{err}"
    );
    let err = JobConfig::parse("[job]\nworkers = \"two\"\n").unwrap_err();
    assert!(
        err.contains("`job.workers`: invalid type: string \"two\", expected a whole number"),
        "{err}"
    );
    let err = JobConfig::parse("[sinks.kafka.topics]\nflows = 3\n").unwrap_err();
    assert!(err.contains("`sinks.kafka.topics.flows`"), "{err}");
    let err = JobConfig::parse("job = 3\n").unwrap_err();
    assert!(
        err.contains("`job`: invalid type: integer `3`, expected a table"),
        "{err}"
    );
    let err = JobConfig::parse("[sources.a]\ntype = \"simulator\"\nnodes = 1.5\n").unwrap_err();
    assert!(
        err.contains("`sources.a.nodes`") && err.contains("expected a whole number"),
        "{err}"
    );
    for (serde, plain) in [
        (
            "invalid type: string \"x\", expected u64",
            "invalid type: string \"x\", expected a whole number",
        ),
        (
            "invalid type: integer `1`, expected a sequence",
            "invalid type: integer `1`, expected a list ([...])",
        ),
        ("expected struct FaultConfig here", "expected a table here"),
        ("expected one of `a`, `b`", "expected one of `a`, `b`"),
        ("expected u8x", "expected u8x"),
    ] {
        assert_eq!(plain_words(serde), plain, "{serde}");
    }
}

/// A value found invalid after parsing is shown at its key's line when the file sets
/// it, and as it is otherwise.
#[test]
fn invalid_values_are_shown_at_their_line_in_the_file() {
    let text = "[job]\nworkers = 2\n\n[window]\nlength = \"10s\"\nslide = \"3s\"\n[sources.a]\ntype = \"simulator\"\n";
    let path = Path::new("job.toml");
    let err = JobConfig::parse(text).unwrap().validate().unwrap_err();
    let shown = err.at_key(path, text).to_string();
    assert!(
        shown.starts_with("job.toml: invalid value at line 5, column 10\n"),
        "{shown}"
    );
    assert!(shown.contains("5 | length = \"10s\""), "{shown}");
    assert!(
        shown.contains(
            "`window.length` is 10s; it must be a positive multiple of window.slide (3s)"
        ),
        "{shown}"
    );
    // Not in the file (a default): as it was.
    let text = "[window]\nlength = \"10s\"\nslide = \"3s\"\n";
    let err = JobConfig::parse(text).unwrap().validate().unwrap_err();
    let shown = err.at_key(path, "[job]\nworkers = 1\n").to_string();
    assert!(shown.starts_with("window.length is 10s"), "{shown}");
}

/// A bad key or value in a source table is shown on its own line, with its key,
/// not at the table's header.
#[test]
fn source_errors_point_at_their_line_and_key() {
    let text = "[job]\nworkers = 1\n\n[sources.mesh]\ntype = \"simulator\"\nnodes = 20\npace = \"fastest\"\n[sources.mesh.faults]\nkinds = [\"link_degradation\"]\n";
    let err = JobConfig::parse(text).unwrap_err();
    assert!(err.contains("line 7, column 8"), "{err}");
    assert!(err.contains("7 | pace = \"fastest\""), "{err}");
    assert!(
        err.contains("`sources.mesh.pace`: unknown variant `fastest`"),
        "{err}"
    );
    let typo = text.replace("nodes = 20", "node = 20");
    let err = JobConfig::parse(&typo).unwrap_err();
    assert!(err.contains("line 6, column 1"), "{err}");
    assert!(
        err.contains("`sources.mesh.node`: unknown field `node`"),
        "{err}"
    );
    let nested = text
        .replace("\"fastest\"", "\"fast\"")
        .replace("[\"link_degradation\"]", "[\"meteor\"]");
    let err = JobConfig::parse(&nested).unwrap_err();
    assert!(err.contains("line 9, column 9"), "{err}");
    assert!(err.contains("`sources.mesh.faults.kinds`"), "{err}");
    // An unknown key in a nested table is shown at its own line.
    let nested = text
        .replace("\"fastest\"", "\"fast\"")
        .replace("kinds = ", "kindz = ");
    let err = JobConfig::parse(&nested).unwrap_err();
    assert!(err.contains("line 9, column 1"), "{err}");
    assert!(
        err.contains("`sources.mesh.faults.kindz`: unknown field `kindz`"),
        "{err}"
    );
    let replay = "[sources.t]\ntype = \"replay\"\npath = \"x\"\nspeed = \"fast\"\n";
    let err = JobConfig::parse(replay).unwrap_err();
    assert!(
        err.contains("line 4") && err.contains("`sources.t.speed`"),
        "{err}"
    );
}

#[test]
fn invalid_values_name_the_key_and_reason() {
    let cases = [
        (
            "[job]\nworkers = 0\n[sources.a]\ntype = \"simulator\"\n",
            "job.workers is 0",
        ),
        (
            "[window]\nlength = \"10s\"\nslide = \"3s\"\n[sources.a]\ntype = \"simulator\"\n",
            "window.length is 10s; it must be a positive multiple of window.slide (3s)",
        ),
        (
            "[window]\nslide = \"1500ms\"\n[sources.a]\ntype = \"simulator\"\n",
            "window.slide is 1500ms; it must be a positive multiple of job.epoch (1s)",
        ),
        (
            "[window]\nlength = \"10s\"\nslide = \"3s\"\n",
            "window.length is 10s",
        ),
        (
            "[job]\nlateness = \"1500ms\"\n[sources.a]\ntype = \"simulator\"\n",
            "job.lateness",
        ),
        (
            "[sinks.parquet]\nroll_interval = \"7m\"\n[sources.a]\ntype = \"simulator\"\n",
            "sinks.parquet.roll_interval",
        ),
        (
            "[sources.a]\ntype = \"simulator\"\nnodes = 1\n",
            "sources.a",
        ),
        ("[job]\nworkers = 1\n", "sources is empty"),
        (
            "[sources.a]\ntype = \"simulator\"\n[sinks.kafka.topics]\nnode_featurs = \"x\"\n",
            "sinks.kafka.topics.node_featurs names no table the sink writes; use one of node_features, anomaly_scores, flows",
        ),
        (
            "[sources.k]\ntype = \"kafka\"\nbrokers = \"b:1\"\ntopics = [\"meshflow.flows\"]\n\
             [sinks.kafka]\ninputs = true\n",
            "sources.k.topics includes `meshflow.flows`, which this job writes its input events to",
        ),
    ];
    for (text, expected) in cases {
        let err = JobConfig::parse(text)
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(expected), "{text}: {err}");
    }
    let err = JobConfig::parse("[job]\nepoch = \"1 fortnight\"\n").unwrap_err();
    assert!(
        err.contains("epoch") && err.contains("unknown unit"),
        "{err}"
    );
}

#[test]
fn replay_sources_take_a_time_range_and_a_speed() {
    let text = "[sources.t]\ntype = \"replay\"\npath = \"trace\"\nfrom = \"2026-01-01T00:05:00Z\"\nto = 1767226200\nspeed = 2\n";
    let cfg = JobConfig::parse(text).unwrap();
    cfg.validate().unwrap();
    let SourceConfig::Replay(replay) = &cfg.sources["t"] else {
        panic!("not a replay source: {cfg:?}");
    };
    let minute = 60_000_000_000;
    let start = 1_767_225_600 * 1_000_000_000;
    assert_eq!(
        replay.range(),
        TimeRange {
            from: Some(TimestampNs(start + 5 * minute)),
            to: Some(TimestampNs(start + 10 * minute)),
        }
    );
    assert_eq!(replay.speed, Some(2.0));
    let text = toml::to_string(&cfg).unwrap();
    assert_eq!(JobConfig::parse(&text).unwrap(), cfg, "round trip:\n{text}");

    let bad = |extra: &str| {
        let text = format!("[sources.t]\ntype = \"replay\"\npath = \"trace\"\n{extra}");
        match JobConfig::parse(&text) {
            Err(e) => e,
            Ok(cfg) => cfg.validate().unwrap_err().to_string(),
        }
    };
    let err = bad("from = \"last tuesday\"\n");
    assert!(err.contains("from") && err.contains("RFC 3339"), "{err}");
    let err = bad("from = 1767226200\nto = \"2026-01-01T00:05:00Z\"\n");
    assert!(
        err.starts_with("sources.t.to (2026-01-01T00:05:00"),
        "{err}"
    );
    assert!(err.contains("must be after sources.t.from"), "{err}");
    for speed in ["0", "-1", "nan"] {
        let err = bad(&format!("speed = {speed}\n"));
        assert!(err.starts_with("sources.t.speed is"), "{speed}: {err}");
    }
    let err = bad("sped = 2\n");
    assert!(err.contains("unknown field `sped`"), "{err}");
}

#[test]
fn sources_that_follow_the_clock_are_told_apart() {
    let source = |text: &str| {
        let cfg = JobConfig::parse(&format!("[sources.a]\n{text}")).expect(text);
        cfg.sources["a"].follows_clock()
    };
    assert!(!source("type = \"simulator\"\n"));
    assert!(source("type = \"simulator\"\npace = \"realtime\"\n"));
    assert!(!source("type = \"replay\"\npath = \"trace\"\n"));
    assert!(source("type = \"replay\"\npath = \"trace\"\nspeed = 2.0\n"));
    assert!(source("type = \"kafka\"\ntopics = [\"t\"]\n"));
    assert!(source("type = \"ebpf\"\n"));
}
