//! Helpers for meshflow's end-to-end tests: locating the built binary, running it,
//! and reading its Parquet output with an independent reader (pyarrow).

pub mod netns;
pub mod tansu;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A hosts file for timely's multi-process mode with `n` free loopback ports: bound
/// together so they differ, then released for the processes.
pub fn hosts_file(n: usize) -> String {
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| format!("127.0.0.1:{}\n", l.local_addr().unwrap().port()))
        .collect()
}

/// The `meshflow` binary cargo built for this test run (`target/<profile>/meshflow`).
///
/// Panics with the command to build it if it is missing: the tests never skip.
pub fn meshflow_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>");
    let bin = profile_dir.join("meshflow");
    assert!(
        bin.exists(),
        "{} is missing; build it with `cargo build -p meshflow` (cargo test --workspace does)",
        bin.display()
    );
    bin
}

/// Runs `meshflow` with `args` in `cwd` and returns its output, panicking with
/// stdout and stderr if it did not exit as `expect_success` says.
pub fn meshflow(cwd: &Path, args: &[&str], expect_success: bool) -> Output {
    let out = Command::new(meshflow_bin())
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run meshflow");
    if out.status.success() != expect_success {
        panic!(
            "meshflow {args:?} exited with {} (expected success = {expect_success})\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// Like [`meshflow`], with `stdin` piped to the process's standard input.
pub fn meshflow_with_stdin(cwd: &Path, args: &[&str], stdin: &str, expect_success: bool) -> Output {
    use std::io::Write;
    let mut child = Command::new(meshflow_bin())
        .args(args)
        .current_dir(cwd)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run meshflow");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(stdin.as_bytes())
        .expect("write meshflow's stdin");
    let out = child.wait_with_output().expect("wait for meshflow");
    if out.status.success() != expect_success {
        panic!(
            "meshflow {args:?} with stdin exited with {} (expected success = {expect_success})\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// Reads `stream` on a thread and sends each line as it comes: lines end in `\n`,
/// progress-bar updates in `\r`, so both split. The last, unterminated piece is sent
/// at the end. For watching a running `meshflow`'s stderr.
pub fn lines_of(
    mut stream: impl std::io::Read + Send + 'static,
) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut pending = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 {
                break;
            }
            for &b in &buf[..n] {
                if b == b'\n' || b == b'\r' {
                    if tx
                        .send(String::from_utf8_lossy(&pending).into_owned())
                        .is_err()
                    {
                        return;
                    }
                    pending.clear();
                } else {
                    pending.push(b);
                }
            }
        }
        let _ = tx.send(String::from_utf8_lossy(&pending).into_owned());
    });
    rx
}

/// Runs a Python snippet (with pyarrow) and parses its last stdout line as JSON.
///
/// pyarrow is the independent reader: it shares no code with meshflow. A missing
/// pyarrow fails the test with the install command.
pub fn python_json(script: &str, args: &[&Path]) -> serde_json::Value {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 must be installed (apt-get install python3)");
    assert!(
        out.status.success(),
        "python failed (pyarrow needed: pip install pyarrow):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("bad JSON from python ({e}): {stdout}"))
}

/// Every file under `dir`, relative, sorted, with its bytes.
pub fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((
                    p.strip_prefix(dir).expect("prefix").to_path_buf(),
                    std::fs::read(&p).expect("read"),
                ));
            }
        }
    }
    out.sort();
    out
}
