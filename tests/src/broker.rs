//! [`TestBroker`]: one Tansu process per test, on a free loopback port.

use std::fs::{self, File};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use crate::listen;

/// Tansu is ready in ~0.1 s; this only bounds a broken start.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How often to retry with a new port after another process took the one we picked.
const PORT_ATTEMPTS: u32 = 5;
const POLL_INTERVAL: Duration = Duration::from_millis(10);
/// Lines of the broker's log quoted in a panic message.
const LOG_TAIL_LINES: usize = 40;

/// A Tansu broker process of this test's own, with in-memory storage, on 127.0.0.1.
///
/// Dropping it kills and reaps the process. Its output goes to a log file in the temp
/// directory that is removed on drop, unless the thread is panicking: a failed test keeps the
/// log whose path its message names.
#[derive(Debug)]
pub struct TestBroker {
    child: Child,
    port: u16,
    log_path: PathBuf,
}

/// Why a start attempt failed.
enum NotReady {
    /// Another process took the port between our pick and the broker's bind.
    PortTaken,
    /// The broker exited for another reason.
    Exited(ExitStatus),
    /// The broker ran but did not listen within [`READY_TIMEOUT`].
    Timeout,
}

impl TestBroker {
    /// Starts a broker and returns once it accepts connections.
    ///
    /// Panics, quoting the broker's log, if it does not start.
    pub fn start() -> TestBroker {
        let binary = tansu_binary();
        let log_path = new_log_path();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            let child = spawn(binary, port, &log_path);
            let mut broker = TestBroker {
                child,
                port,
                log_path: log_path.clone(),
            };
            match broker.wait_ready() {
                Ok(()) => return broker,
                Err(NotReady::PortTaken) => continue,
                Err(NotReady::Exited(status)) => panic!(
                    "Tansu ({}) exited with {status} before listening on {}; log {}:\n{}",
                    binary.display(),
                    broker.bootstrap(),
                    broker.log_path.display(),
                    broker.log_tail()
                ),
                Err(NotReady::Timeout) => panic!(
                    "Tansu ({}) did not listen on {} within {READY_TIMEOUT:?}; log {}:\n{}",
                    binary.display(),
                    broker.bootstrap(),
                    broker.log_path.display(),
                    broker.log_tail()
                ),
            }
        }
        panic!("Tansu lost the race for a free loopback port {PORT_ATTEMPTS} times in a row")
    }

    /// The `bootstrap.servers` value for this broker: `127.0.0.1:PORT`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The broker's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The file that holds the broker's stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The last lines of the broker's log, for a panic message.
    pub fn log_tail(&self) -> String {
        match fs::read_to_string(&self.log_path) {
            Ok(log) if log.trim().is_empty() => "(empty)".to_owned(),
            Ok(log) => {
                let lines: Vec<&str> = log.lines().collect();
                lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
            }
            Err(error) => format!("(cannot read it: {error})"),
        }
    }

    fn wait_ready(&mut self) -> Result<(), NotReady> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        loop {
            let exited = self
                .child
                .try_wait()
                .expect("cannot poll the broker process");
            if let Some(status) = exited {
                let log = fs::read_to_string(&self.log_path).unwrap_or_default();
                return Err(if log.contains("AddrInUse") {
                    NotReady::PortTaken
                } else {
                    NotReady::Exited(status)
                });
            }
            // A successful connect alone could be to a process that took the port from us.
            if TcpStream::connect_timeout(&address, POLL_INTERVAL).is_ok()
                && listen::owned_by(self.pid(), self.port)
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(NotReady::Timeout);
            }
            thread::sleep(POLL_INTERVAL);
        }
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        // SIGKILL: memory storage has nothing to flush, and waiting for a clean stop would only
        // slow every test down. `wait` reaps it, so no zombie outlives the test either.
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !thread::panicking() {
            let _ = fs::remove_file(&self.log_path);
        }
    }
}

fn spawn(binary: &Path, port: u16, log_path: &Path) -> Child {
    let log = File::create(log_path)
        .unwrap_or_else(|e| panic!("cannot create the broker log {}: {e}", log_path.display()));
    let stderr = log.try_clone().expect("cannot share the broker log file");
    let listener = format!("tcp://127.0.0.1:{port}");
    Command::new(binary)
        .arg("broker")
        .args(["--listener-url", &listener])
        .args(["--advertised-listener-url", &listener])
        .args(["--storage-engine", "memory://tansu/"])
        // Without it Tansu draws a progress spinner per connection.
        .arg("--silent")
        // Plain log lines, without terminal escape codes, in the log and in panic messages.
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run the broker {}: {e}", binary.display()))
}

/// A port that was free a moment ago. Another process may take it before the broker binds it;
/// [`TestBroker::start`] detects that and tries again.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("cannot bind a loopback port")
        .port()
}

fn new_log_path() -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("sluice-tansu-{}-{n}.log", std::process::id()))
}

/// The broker binary: `$SLUICE_TANSU_BIN`, or what `scripts/broker.sh path` installs (once per
/// test process; the script itself caches the install across runs).
fn tansu_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let binary = match std::env::var_os("SLUICE_TANSU_BIN") {
            Some(path) => PathBuf::from(path),
            None => install_with_script(),
        };
        assert!(
            binary.is_file(),
            "the Tansu binary {} does not exist (from SLUICE_TANSU_BIN or scripts/broker.sh)",
            binary.display()
        );
        binary
    })
}

fn install_with_script() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives in the workspace root");
    let script = root.join("scripts/broker.sh");
    let output = Command::new(&script)
        .arg("path")
        .current_dir(root)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        output.status.success(),
        "{} path failed with {}; set SLUICE_TANSU_BIN to a tansu binary to skip it",
        script.display(),
        output.status
    );
    let path = String::from_utf8(output.stdout).expect("broker.sh printed a non-UTF-8 path");
    PathBuf::from(path.trim())
}
