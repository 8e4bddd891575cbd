//! Tests of the configuration: defaults, TOML, validation.

use meshflow_schemas::{FaultKind, TimestampNs};

use super::{FaultPlan, Pace, SimConfig, SimError, Simulator, TopologyKind};
use crate::HumanDuration;

#[test]
fn defaults_match_the_documented_values() {
    let cfg = SimConfig::default();
    assert_eq!(cfg.nodes, 50);
    assert_eq!(cfg.topology, TopologyKind::Geometric);
    assert_eq!(cfg.mean_degree, 6.0);
    assert_eq!(cfg.seed, 42);
    assert_eq!(cfg.start, "2026-01-01T00:00:00Z");
    assert_eq!(cfg.duration, HumanDuration::from_secs(600));
    assert_eq!(cfg.tick, HumanDuration::from_secs(1));
    assert_eq!(cfg.pace, Pace::Fast);
    assert_eq!(cfg.faults.count, 4);
    assert_eq!(cfg.faults.kinds, FaultKind::ALL.to_vec());
    assert_eq!(cfg.faults.warmup, HumanDuration::from_secs(120));
    assert_eq!(cfg.faults.cascade_hops, 2);
    cfg.validate().expect("defaults are valid");
    let sim = Simulator::new(cfg).unwrap();
    assert_eq!(sim.start_time(), TimestampNs::from_secs(1_767_225_600));
    assert_eq!(sim.end_time(), TimestampNs::from_secs(1_767_225_600 + 600));
    assert_eq!(sim.tick_ns(), 1_000_000_000);
    assert_eq!(sim.ticks(), 600);
}

#[test]
fn toml_round_trips_and_fills_defaults() {
    let cfg = SimConfig {
        nodes: 1234,
        topology: TopologyKind::BarabasiAlbert,
        mean_degree: 4.5,
        seed: 7,
        start: "2025-06-30T12:34:56Z".to_string(),
        duration: HumanDuration::from_secs(3600),
        tick: "500ms".parse().unwrap(),
        pace: Pace::Realtime,
        faults: FaultPlan {
            count: 9,
            kinds: vec![FaultKind::TrafficFlood, FaultKind::CascadingFailure],
            warmup: HumanDuration::from_secs(300),
            min_duration: HumanDuration::from_secs(10),
            max_duration: HumanDuration::from_secs(20),
            cascade_lag: "2500ms".parse().unwrap(),
            cascade_hops: 3,
        },
    };
    let text = toml::to_string(&cfg).unwrap();
    assert!(text.contains("topology = \"barabasi_albert\""), "{text}");
    assert!(text.contains("pace = \"realtime\""), "{text}");
    let back: SimConfig = toml::from_str(&text).unwrap();
    assert_eq!(back, cfg);

    let partial: SimConfig = toml::from_str(
        "nodes = 100\ntopology = \"geometric\"\n[faults]\nkinds = [\"link_degradation\", \"node_overload\"]\nwarmup = \"30s\"\n",
    )
    .unwrap();
    assert_eq!(partial.nodes, 100);
    assert_eq!(
        partial.faults.kinds,
        vec![FaultKind::LinkDegradation, FaultKind::NodeOverload]
    );
    assert_eq!(partial.faults.warmup, HumanDuration::from_secs(30));
    assert_eq!(partial.faults.count, 4);
    assert_eq!(partial.seed, 42);
}

#[test]
fn unknown_fields_are_rejected_by_name() {
    let err = toml::from_str::<SimConfig>("nodse = 10\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("nodse"), "{err}");
    let err = toml::from_str::<SimConfig>("[faults]\ncuont = 2\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("cuont"), "{err}");
    let err = toml::from_str::<SimConfig>("topology = \"ring\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("ring"), "{err}");
    let err = toml::from_str::<SimConfig>("[faults]\nkinds = [\"meteor\"]\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("meteor"), "{err}");
}

/// The field named by a rejected config.
fn rejected_field(edit: impl FnOnce(&mut SimConfig)) -> (&'static str, String) {
    let mut cfg = SimConfig::default();
    edit(&mut cfg);
    let err = cfg.validate().expect_err("config should be rejected");
    assert_eq!(Simulator::new(cfg).unwrap_err(), err);
    let message = err.to_string();
    match err {
        SimError::Invalid { field, .. } => (field, message),
    }
}

/// A change to a default config.
type Edit<'a> = Box<dyn FnOnce(&mut SimConfig) + 'a>;

#[test]
fn validate_names_the_offending_field() {
    let secs = HumanDuration::from_secs;
    let cases: Vec<(&str, Edit<'_>)> = vec![
        ("nodes", Box::new(|c| c.nodes = 1)),
        ("nodes", Box::new(|c| c.nodes = 20_000_000)),
        ("mean_degree", Box::new(|c| c.mean_degree = 0.0)),
        ("mean_degree", Box::new(|c| c.mean_degree = 50.0)),
        ("mean_degree", Box::new(|c| c.mean_degree = f64::NAN)),
        (
            "start",
            Box::new(|c| c.start = "2026-01-01 00:00".to_string()),
        ),
        ("tick", Box::new(|c| c.tick = secs(0))),
        (
            "duration",
            Box::new(move |c| c.duration = "500ms".parse().unwrap()),
        ),
        (
            "duration",
            Box::new(move |c| c.duration = HumanDuration::from_secs(400 * 365 * 86_400)),
        ),
        (
            "faults.min_duration",
            Box::new(move |c| c.faults.min_duration = secs(100)),
        ),
        (
            "faults.min_duration",
            Box::new(move |c| c.faults.min_duration = secs(0)),
        ),
        ("faults.kinds", Box::new(|c| c.faults.kinds.clear())),
        (
            "faults.warmup",
            Box::new(move |c| c.faults.warmup = secs(600)),
        ),
        ("faults.count", Box::new(|c| c.faults.count = 51)),
        (
            "faults.count",
            Box::new(move |c| {
                c.faults.count = 30;
                c.faults.warmup = secs(590);
            }),
        ),
    ];
    for (field, edit) in cases {
        let (got, message) = rejected_field(edit);
        assert_eq!(got, field, "{message}");
        assert!(message.contains(&format!("`{field}`")), "{message}");
    }
}

#[test]
fn zero_faults_need_no_room() {
    let cfg = SimConfig {
        faults: FaultPlan {
            count: 0,
            kinds: vec![],
            warmup: HumanDuration::from_secs(9999),
            ..FaultPlan::default()
        },
        ..SimConfig::default()
    };
    let sim = Simulator::new(cfg).unwrap();
    assert!(sim.ground_truth().is_empty());
}
