//! The binary's command-line surface (this also makes `cargo test` build the binary
//! that the end-to-end tests in `integration/` run).

use std::process::Command;

#[test]
fn help_lists_every_command() {
    let out = Command::new(env!("CARGO_BIN_EXE_meshflow"))
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in ["run", "replay", "sim", "validate", "sql"] {
        assert!(text.contains(cmd), "{cmd} missing from --help:\n{text}");
    }
}

#[test]
fn a_missing_config_file_is_named() {
    let out = Command::new(env!("CARGO_BIN_EXE_meshflow"))
        .args(["run", "--config", "/nonexistent/meshflow.toml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/meshflow.toml")
    );
}

#[test]
fn replay_and_sql_help_show_their_flags() {
    for (cmd, flags) in [
        ("replay", &["--from", "--to", "--speed"][..]),
        (
            "sql",
            &["--format", "--output", "csv", "json", "parquet"][..],
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_meshflow"))
            .args([cmd, "--help"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        for flag in flags {
            assert!(
                text.contains(flag),
                "{flag} missing from {cmd} --help:\n{text}"
            );
        }
    }
}

/// Runs `meshflow sim --config CONFIG --out DIR/trace` and returns (success, stdout,
/// stderr).
fn sim_with(config: &str, dir: &std::path::Path) -> (bool, String, String) {
    let path = dir.join("sim.toml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_meshflow"))
        .args(["sim", "--config"])
        .arg(&path)
        .arg("--out")
        .arg(dir.join("trace"))
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn sim_takes_a_simulator_table_or_a_job_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let table = "nodes = 12\nduration = \"20s\"\n[faults]\ncount = 0\n";
    let (ok, table_out, err) = sim_with(table, dir.path());
    assert!(ok, "{err}");
    let job = "[window]\nlength = \"10s\"\n[sources.mesh]\ntype = \"simulator\"\nnodes = 12\nduration = \"20s\"\n[sources.mesh.faults]\ncount = 0\n";
    let (ok, job_out, err) = sim_with(job, dir.path());
    assert!(ok, "{err}");
    let counts = |s: &str| {
        s.split(" in ")
            .nth(1)
            .unwrap()
            .split_once(": ")
            .unwrap()
            .1
            .lines()
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(counts(&table_out), counts(&job_out));
    assert!(table_out.contains(" 0 faults"), "{table_out}");

    let (ok, _, err) = sim_with(
        "[sources.a]\ntype = \"simulator\"\n[sources.b]\ntype = \"simulator\"\n",
        dir.path(),
    );
    assert!(!ok);
    assert!(
        err.contains("more than one simulator source (sources.a, sources.b)"),
        "{err}"
    );
    let (ok, _, err) = sim_with("[sources.t]\ntype = \"replay\"\npath = \"x\"\n", dir.path());
    assert!(!ok);
    assert!(err.contains("has no simulator source"), "{err}");
}
