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
