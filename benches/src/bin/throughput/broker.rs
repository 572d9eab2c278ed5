//! A fresh Tansu broker per measurement (memory storage grows without trimming, so each run
//! starts empty), and topic creation with sluice's admin client.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use sluice_client::admin::{Admin, CreateTopicsOptions, NewTopic};
use sluice_client::config::AdminConfig;

const READY_TIMEOUT: Duration = Duration::from_secs(10);
const START_ATTEMPTS: u32 = 5;

/// A Tansu process on 127.0.0.1 with memory storage; killed and reaped on drop.
#[derive(Debug)]
pub(crate) struct Broker {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Broker {
    /// Starts a broker and returns once it accepts connections.
    pub(crate) fn start(binary: &Path) -> Result<Broker> {
        for attempt in 0..START_ATTEMPTS {
            let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
                .local_addr()?
                .port();
            let log = std::env::temp_dir().join(format!(
                "sluice-throughput-tansu-{}-{port}.log",
                std::process::id()
            ));
            let out = File::create(&log)?;
            let listener = format!("tcp://127.0.0.1:{port}");
            let child = Command::new(binary)
                .arg("broker")
                .args(["--listener-url", &listener])
                .args(["--advertised-listener-url", &listener])
                .args(["--storage-engine", "memory://tansu/"])
                .arg("--silent")
                .env("NO_COLOR", "1")
                .stdin(Stdio::null())
                .stdout(out.try_clone()?)
                .stderr(out)
                .spawn()
                .with_context(|| format!("running {}", binary.display()))?;
            let mut broker = Broker { child, port, log };
            if broker.wait_ready()? {
                return Ok(broker);
            }
            eprintln!("tansu exited on port {port} (attempt {attempt}); trying another port");
        }
        bail!("Tansu did not start in {START_ATTEMPTS} attempts")
    }

    /// False if the broker exited (most likely: another process took the port).
    fn wait_ready(&mut self) -> Result<bool> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        loop {
            if self.child.try_wait()?.is_some() {
                return Ok(false);
            }
            if TcpStream::connect_timeout(&address, Duration::from_millis(50)).is_ok() {
                return Ok(true);
            }
            if Instant::now() > deadline {
                bail!(
                    "Tansu did not listen within {READY_TIMEOUT:?}; log {}",
                    self.log.display()
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    pub(crate) fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub(crate) fn pid(&self) -> String {
        self.child.id().to_string()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// The Tansu binary: `$SLUICE_TANSU_BIN`, or what `scripts/broker.sh path` installs (as the
/// integration tests find it).
pub(crate) fn tansu_binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("SLUICE_TANSU_BIN") {
        return Ok(PathBuf::from(path));
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("benches/ lives in the workspace root")?;
    let output = Command::new(root.join("scripts/broker.sh"))
        .arg("path")
        .current_dir(root)
        .stderr(Stdio::inherit())
        .output()
        .context("running scripts/broker.sh path")?;
    if !output.status.success() {
        bail!("scripts/broker.sh path failed with {}", output.status);
    }
    let path = PathBuf::from(String::from_utf8(output.stdout)?.trim());
    if !path.is_file() {
        bail!(
            "scripts/broker.sh printed {}, which is not a file",
            path.display()
        );
    }
    Ok(path)
}

/// Creates `topic` with `partitions` partitions; returns once every partition has a leader.
pub(crate) async fn create_topic(bootstrap: &str, topic: &str, partitions: i32) -> Result<()> {
    let admin = Admin::new(AdminConfig::builder().bootstrap(bootstrap).build()?).await?;
    admin
        .create_topics(
            &[NewTopic::new(topic, partitions, 1)],
            &CreateTopicsOptions::default(),
        )
        .await
        .into_result()?;
    Ok(())
}
