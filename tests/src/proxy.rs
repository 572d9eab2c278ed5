//! [`FaultProxy`]: a TCP proxy in front of a [`TestBroker`] that breaks connections on command.
//!
//! Why: exactly-once and ordering claims only mean something if they survive the bad moments,
//! a connection cut halfway through a request or a response, or a response that arrives after
//! the client gave up on it. A real broker does not fail on cue, so the tests put this proxy
//! between the client and the broker and tell it, through a [`FaultProxy`] handle, when and
//! how to fail:
//!
//! * [`cut_all`](FaultProxy::cut_all): close every open connection now.
//! * [`cut_randomly`](FaultProxy::cut_randomly): give each connection a budget of request
//!   bytes and one of response bytes, each drawn from its own range `[a, b]`, and cut the
//!   connection inside the frame that exhausts either: mid-request or mid-response, at least
//!   one byte into the frame and at least one byte before its end. (Separate budgets because
//!   the two directions differ by orders of magnitude: a producer's requests are large and
//!   its responses tiny, a consumer's the other way round.)
//! * [`delay_responses`](FaultProxy::delay_responses): hold every response for `D` after it
//!   left the broker (order is kept), e.g. past the client's `request.timeout.ms`.
//! * [`refuse_for`](FaultProxy::refuse_for): for a while, accept new connections but close
//!   each once its first request (for Kafka clients, ApiVersions) has arrived, unanswered:
//!   what a broker that is shutting down does. (Closing at once instead would make the
//!   client see either a clean end or a reset, depending on timing.)
//!
//! [`ProxyStats`] counts what happened, so a test can assert that the faults really hit.
//!
//! Kafka clients connect to the addresses in Metadata responses, not to the one they
//! bootstrapped from, so the proxy rewrites every broker address in the Metadata responses it
//! forwards to its own. Clients that bootstrap from the proxy therefore only ever talk to the
//! proxy, while clients that bootstrap from [`TestBroker::bootstrap`] still reach the broker
//! directly (which is how tests read back what they wrote without faults in the way). That
//! rewrite assumes a single broker, which is all [`TestBroker`] runs. Other responses that
//! carry addresses (FindCoordinator, DescribeCluster) are not rewritten: group and admin
//! clients would leave the proxy.
//!
//! The proxy runs on a thread and runtime of its own, so it works the same under any test
//! runtime and keeps forwarding while the test's tasks are busy.
//!
//! Reference: the Kafka protocol guide (<https://kafka.apache.org/protocol>), for the frame
//! layout, the request and response headers and the Metadata response.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::TestBroker;

/// A range of byte counts, `a..=b`.
pub type ByteRange = std::ops::RangeInclusive<u64>;

/// Frames larger than this end the connection: no Kafka frame a test sends comes near it.
const MAX_FRAME: usize = 256 * 1024 * 1024;
/// How long a refused connection waits for its first request before it is closed anyway.
const REFUSED_LINGER: Duration = Duration::from_secs(5);
/// The Metadata API key.
const METADATA: i16 = 3;
/// Metadata versions from which the response is flexible (compact strings, tagged fields).
const METADATA_FIRST_FLEXIBLE: i16 = 9;

/// Counters of what the proxy did since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Connections accepted and forwarded to the broker.
    pub accepted: u64,
    /// Connections closed on their first request because the proxy was refusing.
    pub refused: u64,
    /// Connections open right now.
    pub open: u64,
    /// Connections cut inside a request frame because their request budget ran out.
    pub request_cuts: u64,
    /// Connections cut inside a response frame because their response budget ran out.
    pub response_cuts: u64,
    /// Of `response_cuts`, those inside the connection's first response: for a Kafka client
    /// the ApiVersions answer, in the middle of its handshake.
    pub first_response_cuts: u64,
    /// Connections cut by [`FaultProxy::cut_all`].
    pub cut_by_command: u64,
    /// Responses held back by a delay.
    pub delayed_responses: u64,
    /// Metadata responses whose broker addresses were rewritten to the proxy's.
    pub metadata_rewrites: u64,
    /// Metadata responses that could not be parsed and went through unchanged (a client
    /// reading one would bypass the proxy: tests should see 0).
    pub metadata_unparsed: u64,
    /// Bytes forwarded to the broker.
    pub bytes_to_broker: u64,
    /// Bytes forwarded to clients.
    pub bytes_to_client: u64,
}

impl ProxyStats {
    /// Every cut: by budget in either direction, and by command.
    pub fn cuts(&self) -> u64 {
        self.request_cuts + self.response_cuts + self.cut_by_command
    }
}

/// A fault-injecting TCP proxy on a free loopback port, forwarding to one broker.
///
/// Dropping it stops the proxy and closes every connection through it.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    control: Arc<Control>,
    shutdown: watch::Sender<bool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl TestBroker {
    /// Starts a broker and a [`FaultProxy`] in front of it. Clients given
    /// [`FaultProxy::bootstrap`] reach the broker only through the proxy; clients given
    /// [`TestBroker::bootstrap`] bypass it. Drop the proxy first if clients must not see the
    /// broker's connections die with it (the order of a `let (broker, proxy)` does that).
    pub fn start_behind_proxy() -> (TestBroker, FaultProxy) {
        let broker = TestBroker::start();
        let proxy = FaultProxy::start(&broker.bootstrap());
        (broker, proxy)
    }
}

impl FaultProxy {
    /// Starts a proxy that forwards to `upstream` (`host:port`), with no faults on.
    ///
    /// The random number generator is seeded from the clock unless `SLUICE_PROXY_SEED` is set;
    /// the seed is printed to stderr (the cut points still depend on timing).
    pub fn start(upstream: &str) -> FaultProxy {
        let listener = StdListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .expect("the proxy cannot bind a loopback port");
        let addr = listener.local_addr().expect("the proxy's port");
        let seed = std::env::var("SLUICE_PROXY_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(clock_seed);
        eprintln!("fault proxy {addr} -> {upstream}: seed {seed} (SLUICE_PROXY_SEED)");
        let control = Arc::new(Control::new(addr, upstream.to_owned(), seed));
        let (shutdown, stop) = watch::channel(false);
        let thread = {
            let control = Arc::clone(&control);
            thread::Builder::new()
                .name(format!("fault-proxy-{}", addr.port()))
                .spawn(move || run(listener, control, stop))
                .expect("cannot start the proxy thread")
        };
        FaultProxy {
            addr,
            control,
            shutdown,
            thread: Some(thread),
        }
    }

    /// The `bootstrap.servers` value that goes through the proxy: `127.0.0.1:PORT`.
    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    /// What the proxy has done so far.
    pub fn stats(&self) -> ProxyStats {
        self.control.stats()
    }

    /// Cuts every open connection now; returns how many.
    pub fn cut_all(&self) -> u64 {
        let conns: Vec<Arc<Conn>> = self.control.conns().values().cloned().collect();
        let mut cut = 0;
        for conn in conns {
            if !conn.kill.send_replace(true) {
                cut += 1;
            }
        }
        self.control.counters.cut_by_command.add(cut);
        cut
    }

    /// From now on, cuts each connection once it forwarded a number of request bytes drawn
    /// uniformly from `requests`, or of response bytes drawn from `responses` (`None`: that
    /// direction is not counted). Budgets count from now for open connections and from the
    /// accept for new ones. The frame that would exceed a budget is forwarded only in part,
    /// then both sides are closed.
    pub fn cut_randomly(&self, requests: Option<ByteRange>, responses: Option<ByteRange>) {
        let range = |bytes: Option<ByteRange>| {
            bytes.map(|b| {
                let (low, high) = (*b.start(), *b.end());
                assert!(0 < low && low <= high, "a cut range needs 0 < a <= b");
                (low, high)
            })
        };
        let cut = [range(requests), range(responses)];
        self.control.settings().cut = cut;
        for conn in self.control.conns().values() {
            *conn.budgets_lock() = self.control.draw_budgets(cut);
        }
    }

    /// Stops cutting by budget (open connections keep going).
    pub fn stop_cutting(&self) {
        self.control.settings().cut = [None, None];
        for conn in self.control.conns().values() {
            *conn.budgets_lock() = [None, None];
        }
    }

    /// Holds each response for `delay` after the broker sent it (`Duration::ZERO`: none).
    /// Applies to responses that arrive from now on.
    pub fn delay_responses(&self, delay: Duration) {
        self.control.settings().delay = delay;
    }

    /// For `duration` from now, closes each new connection once its first request arrived,
    /// without forwarding or answering it.
    pub fn refuse_for(&self, duration: Duration) {
        self.control.settings().refuse_until = Some(Instant::now() + duration);
    }

    /// Turns every fault off (open connections stay open).
    pub fn heal(&self) {
        self.stop_cutting();
        let mut settings = self.control.settings();
        settings.delay = Duration::ZERO;
        settings.refuse_until = None;
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
        if let Some(thread) = self.thread.take() {
            // A panic in the proxy thread would already have been printed; do not panic
            // again while a test may be unwinding.
            let _ = thread.join();
        }
    }
}

/// What the handle and the proxy's tasks share.
#[derive(Debug)]
struct Control {
    addr: SocketAddr,
    upstream: String,
    settings: Mutex<Settings>,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    next_conn: AtomicU64,
    rng: Mutex<u64>,
    counters: Counters,
}

/// Index of the request direction in budgets; responses are [`RESPONSES`].
const REQUESTS: usize = 0;
const RESPONSES: usize = 1;

#[derive(Debug, Default)]
struct Settings {
    /// Budget ranges, by direction.
    cut: [Option<(u64, u64)>; 2],
    delay: Duration,
    refuse_until: Option<Instant>,
}

/// [`ProxyStats`] as atomics.
#[derive(Debug, Default)]
struct Counters {
    accepted: Counter,
    refused: Counter,
    request_cuts: Counter,
    response_cuts: Counter,
    first_response_cuts: Counter,
    cut_by_command: Counter,
    delayed_responses: Counter,
    metadata_rewrites: Counter,
    metadata_unparsed: Counter,
    bytes_to_broker: Counter,
    bytes_to_client: Counter,
}

#[derive(Debug, Default)]
struct Counter(AtomicU64);

impl Counter {
    fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// One proxied connection, as the handle sees it.
#[derive(Debug)]
struct Conn {
    /// Set to cut the connection now.
    kill: watch::Sender<bool>,
    /// Bytes left before the budget cut, by direction, if cutting.
    budgets: Mutex<[Option<u64>; 2]>,
    /// Correlation ids of Metadata requests in flight, with their versions.
    metadata: Mutex<HashMap<i32, i16>>,
}

impl Conn {
    fn budgets_lock(&self) -> MutexGuard<'_, [Option<u64>; 2]> {
        self.budgets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many of a frame's `len` bytes may go in `direction`: all of them, or (when its
    /// budget runs out inside it) a part in `[1, len - 1]`, after which the connection is cut.
    fn allow(&self, direction: usize, len: usize) -> usize {
        let mut budgets = self.budgets_lock();
        let Some(left) = budgets[direction].as_mut() else {
            return len;
        };
        let len64 = len as u64;
        if len64 < *left {
            *left -= len64;
            return len;
        }
        // `left` >= 1 here: every frame that went through left at least one byte.
        usize::try_from((*left).min(len64 - 1))
            .unwrap_or(len - 1)
            .max(1)
    }
}

impl Control {
    fn new(addr: SocketAddr, upstream: String, seed: u64) -> Self {
        Control {
            addr,
            upstream,
            settings: Mutex::default(),
            conns: Mutex::default(),
            next_conn: AtomicU64::new(0),
            rng: Mutex::new(seed),
            counters: Counters::default(),
        }
    }

    fn settings(&self) -> MutexGuard<'_, Settings> {
        self.settings.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn conns(&self) -> MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A number drawn uniformly from `[low, high]` (splitmix64; the modulo bias is
    /// irrelevant at these ranges).
    fn draw(&self, low: u64, high: u64) -> u64 {
        let mut state = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        low + z % (high - low + 1)
    }

    fn draw_budgets(&self, cut: [Option<(u64, u64)>; 2]) -> [Option<u64>; 2] {
        cut.map(|range| range.map(|(low, high)| self.draw(low, high)))
    }

    fn stats(&self) -> ProxyStats {
        let c = &self.counters;
        ProxyStats {
            accepted: c.accepted.get(),
            refused: c.refused.get(),
            open: self.conns().len() as u64,
            request_cuts: c.request_cuts.get(),
            response_cuts: c.response_cuts.get(),
            first_response_cuts: c.first_response_cuts.get(),
            cut_by_command: c.cut_by_command.get(),
            delayed_responses: c.delayed_responses.get(),
            metadata_rewrites: c.metadata_rewrites.get(),
            metadata_unparsed: c.metadata_unparsed.get(),
            bytes_to_broker: c.bytes_to_broker.get(),
            bytes_to_client: c.bytes_to_client.get(),
        }
    }
}

fn clock_seed() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ u64::from(std::process::id()).rotate_left(32)
}

/// The proxy thread: accepts until the handle is dropped; dropping the runtime then closes
/// every connection.
fn run(listener: StdListener, control: Arc<Control>, mut stop: watch::Receiver<bool>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("cannot build the proxy's runtime");
    runtime.block_on(async move {
        let listener = TcpListener::from_std(listener).expect("the proxy's listener");
        tokio::select! {
            () = accept_loop(listener, control) => {}
            _ = stop.wait_for(|stopped| *stopped) => {}
        }
    });
}

async fn accept_loop(listener: TcpListener, control: Arc<Control>) {
    loop {
        let client = match listener.accept().await {
            Ok((client, _)) => client,
            Err(error) => {
                // Out of file descriptors and the like: wait rather than spin.
                eprintln!("fault proxy {}: accept failed: {error}", control.addr);
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let refusing = {
            let mut settings = control.settings();
            match settings.refuse_until {
                Some(until) if Instant::now() < until => true,
                Some(_) => {
                    settings.refuse_until = None;
                    false
                }
                None => false,
            }
        };
        if refusing {
            control.counters.refused.add(1);
            tokio::spawn(async move {
                let (mut read, _write) = client.into_split();
                // Bounded, so a client that never sends cannot keep the task alive.
                let _ = tokio::time::timeout(REFUSED_LINGER, read_frame(&mut read)).await;
            });
            continue;
        }
        let id = control.next_conn.fetch_add(1, Ordering::Relaxed);
        let cut = control.settings().cut;
        let conn = Arc::new(Conn {
            kill: watch::channel(false).0,
            budgets: Mutex::new(control.draw_budgets(cut)),
            metadata: Mutex::default(),
        });
        control.conns().insert(id, Arc::clone(&conn));
        control.counters.accepted.add(1);
        let control = Arc::clone(&control);
        tokio::spawn(async move {
            serve(client, &control, &conn).await;
            control.conns().remove(&id);
        });
    }
}

/// Why a pump stopped.
enum Stop {
    /// A side closed or failed.
    Closed,
    /// The byte budget ran out.
    Cut,
}

async fn serve(client: TcpStream, control: &Control, conn: &Conn) {
    let Ok(server) = TcpStream::connect(&control.upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let mut killed = conn.kill.subscribe();
    tokio::select! {
        stop = requests(client_read, server_write, control, conn) => {
            if matches!(stop, Stop::Cut) {
                control.counters.request_cuts.add(1);
            }
        }
        stop = responses(server_read, client_write, control, conn) => {
            if matches!(stop, Stop::Cut) {
                control.counters.response_cuts.add(1);
            }
        }
        _ = killed.wait_for(|k| *k) => {}
    }
    // Returning drops all four halves: both sockets close.
}

/// Client to broker: notes Metadata requests, forwards every frame.
async fn requests(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    control: &Control,
    conn: &Conn,
) -> Stop {
    loop {
        let Ok(frame) = read_frame(&mut from).await else {
            return Stop::Closed;
        };
        // Request header: length, api_key i16, api_version i16, correlation_id i32, ...
        if let (Some(api_key), Some(version), Some(correlation_id)) =
            (be_i16(&frame, 4), be_i16(&frame, 6), be_i32(&frame, 8))
        {
            if api_key == METADATA {
                conn.metadata
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(correlation_id, version);
            }
        }
        match forward(&mut to, &frame, conn, REQUESTS).await {
            Ok(n) => control.counters.bytes_to_broker.add(n as u64),
            Err(stop) => return stop,
        }
    }
}

/// Broker to client: rewrites Metadata responses, applies the delay, forwards every frame.
async fn responses(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    control: &Control,
    conn: &Conn,
) -> Stop {
    let mut first = true;
    loop {
        let Ok(mut frame) = read_frame(&mut from).await else {
            return Stop::Closed;
        };
        let arrived = Instant::now();
        let delay = control.settings().delay;
        let metadata_version = be_i32(&frame, 4).and_then(|correlation_id| {
            conn.metadata
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&correlation_id)
        });
        if let Some(version) = metadata_version {
            match rewrite_metadata(&frame, version, control.addr) {
                Some(rewritten) => {
                    frame = rewritten;
                    control.counters.metadata_rewrites.add(1);
                }
                None => control.counters.metadata_unparsed.add(1),
            }
        }
        if !delay.is_zero() {
            control.counters.delayed_responses.add(1);
            tokio::time::sleep_until(arrived + delay).await;
        }
        match forward(&mut to, &frame, conn, RESPONSES).await {
            Ok(n) => control.counters.bytes_to_client.add(n as u64),
            Err(stop) => {
                if first && matches!(stop, Stop::Cut) {
                    control.counters.first_response_cuts.add(1);
                }
                return stop;
            }
        }
        first = false;
    }
}

/// Writes what the budget allows of `frame`; `Err(Cut)` if that was not all of it.
async fn forward(
    to: &mut OwnedWriteHalf,
    frame: &[u8],
    conn: &Conn,
    direction: usize,
) -> Result<usize, Stop> {
    let allowed = conn.allow(direction, frame.len());
    if to.write_all(&frame[..allowed]).await.is_err() {
        return Err(Stop::Closed);
    }
    if allowed < frame.len() {
        // FIN after the partial frame, so the peer reads those bytes before the end.
        let _ = to.shutdown().await;
        return Err(Stop::Cut);
    }
    Ok(allowed)
}

/// One size-prefixed Kafka frame, prefix included.
async fn read_frame(from: &mut OwnedReadHalf) -> io::Result<Vec<u8>> {
    let mut prefix = [0u8; 4];
    from.read_exact(&mut prefix).await?;
    let len = usize::try_from(i32::from_be_bytes(prefix))
        .ok()
        .filter(|&len| len <= MAX_FRAME)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad frame length"))?;
    let mut frame = vec![0u8; 4 + len];
    frame[..4].copy_from_slice(&prefix);
    from.read_exact(&mut frame[4..]).await?;
    Ok(frame)
}

fn be_i16(buf: &[u8], at: usize) -> Option<i16> {
    Some(i16::from_be_bytes(buf.get(at..at + 2)?.try_into().ok()?))
}

fn be_i32(buf: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_be_bytes(buf.get(at..at + 4)?.try_into().ok()?))
}

/// A Metadata response `frame` (prefix included) of `version` with every broker's host and
/// port replaced by `addr`'s, or `None` if it does not parse.
///
/// Only the start of the response is parsed: correlation id, tagged fields of the flexible
/// header (v9+), throttle time (v3+), then the brokers (node id, host, port, rack from v1,
/// tagged fields from v9). Everything after the brokers is copied as is.
fn rewrite_metadata(frame: &[u8], version: i16, addr: SocketAddr) -> Option<Vec<u8>> {
    let flexible = version >= METADATA_FIRST_FLEXIBLE;
    let body = frame.get(4..)?;
    let mut r = Reader { buf: body, at: 0 };
    r.skip(4)?;
    if flexible {
        r.skip_tagged_fields()?;
    }
    if version >= 3 {
        r.skip(4)?;
    }
    let count = if flexible {
        usize::try_from(r.uvarint()?.checked_sub(1)?).ok()?
    } else {
        usize::try_from(r.i32()?).ok()?
    };
    let mut out = Vec::with_capacity(frame.len() + 64);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&body[..r.at]);
    let host = addr.ip().to_string();
    for _ in 0..count {
        out.extend_from_slice(r.take(4)?);
        // Host: a compact string (length + 1 as an unsigned varint) or an i16-length string.
        let len = if flexible {
            usize::try_from(r.uvarint()?.checked_sub(1)?).ok()?
        } else {
            usize::try_from(r.i16()?).ok()?
        };
        r.skip(len)?;
        if flexible {
            put_uvarint(&mut out, host.len() as u64 + 1);
        } else {
            out.extend_from_slice(&i16::try_from(host.len()).ok()?.to_be_bytes());
        }
        out.extend_from_slice(host.as_bytes());
        r.skip(4)?;
        out.extend_from_slice(&i32::from(addr.port()).to_be_bytes());
        let rest = r.at;
        if version >= 1 {
            // Rack: a nullable string (compact: 0 is null; else -1 is null).
            let len = if flexible {
                r.uvarint()?.saturating_sub(1)
            } else {
                u64::try_from(r.i16()?).unwrap_or(0)
            };
            r.skip(usize::try_from(len).ok()?)?;
        }
        if flexible {
            r.skip_tagged_fields()?;
        }
        out.extend_from_slice(&body[rest..r.at]);
    }
    out.extend_from_slice(&body[r.at..]);
    let len = i32::try_from(out.len() - 4).ok()?;
    out[..4].copy_from_slice(&len.to_be_bytes());
    Some(out)
}

/// A cursor over a response body; every read is bounds-checked.
struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let bytes = self.buf.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(bytes)
    }

    fn skip(&mut self, n: usize) -> Option<()> {
        self.take(n).map(|_| ())
    }

    fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }

    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }

    fn uvarint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.take(1)?.first()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    fn skip_tagged_fields(&mut self) -> Option<()> {
        let fields = self.uvarint()?;
        for _ in 0..fields {
            self.uvarint()?;
            let size = usize::try_from(self.uvarint()?).ok()?;
            self.skip(size)?;
        }
        Some(())
    }
}

fn put_uvarint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A Metadata response with one broker, framed; `rest` stands for everything after the
    /// brokers.
    fn response(version: i16, host: &str, port: i32, rack: Option<&str>, rest: &[u8]) -> Vec<u8> {
        let flexible = version >= METADATA_FIRST_FLEXIBLE;
        let mut body = 7i32.to_be_bytes().to_vec();
        if flexible {
            body.push(0);
        }
        if version >= 3 {
            body.extend_from_slice(&0i32.to_be_bytes());
        }
        let string = |body: &mut Vec<u8>, s: Option<&str>| match (flexible, s) {
            (true, None) => body.push(0),
            (true, Some(s)) => {
                put_uvarint(body, s.len() as u64 + 1);
                body.extend_from_slice(s.as_bytes());
            }
            (false, None) => body.extend_from_slice(&(-1i16).to_be_bytes()),
            (false, Some(s)) => {
                body.extend_from_slice(&(s.len() as i16).to_be_bytes());
                body.extend_from_slice(s.as_bytes());
            }
        };
        if flexible {
            body.push(2);
        } else {
            body.extend_from_slice(&1i32.to_be_bytes());
        }
        body.extend_from_slice(&111i32.to_be_bytes());
        string(&mut body, Some(host));
        body.extend_from_slice(&port.to_be_bytes());
        if version >= 1 {
            string(&mut body, rack);
        }
        if flexible {
            // One unknown tagged field, which must survive.
            body.extend_from_slice(&[1, 5, 2, 0xAB, 0xCD]);
        }
        body.extend_from_slice(rest);
        let mut frame = (body.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        frame
    }

    #[test]
    fn metadata_addresses_are_rewritten_in_every_layout() {
        let proxy: SocketAddr = "127.0.0.1:4242".parse().unwrap();
        let rest = b"topics and the rest";
        for version in [0, 1, 2, 3, 8, 9, 12] {
            for rack in [None, Some("rack-a")] {
                let original = response(version, "broker.example", 9092, rack, rest);
                let expected = response(version, "127.0.0.1", 4242, rack, rest);
                assert_eq!(
                    rewrite_metadata(&original, version, proxy),
                    Some(expected),
                    "v{version} rack {rack:?}"
                );
            }
        }
    }

    #[test]
    fn a_truncated_metadata_response_is_not_rewritten() {
        let proxy: SocketAddr = "127.0.0.1:4242".parse().unwrap();
        let original = response(12, "broker.example", 9092, None, b"");
        for cut in 4..original.len() - 5 {
            assert_eq!(rewrite_metadata(&original[..cut], 12, proxy), None, "{cut}");
        }
    }

    #[test]
    fn a_budget_cut_lands_inside_the_frame() {
        let conn = Conn {
            kill: watch::channel(false).0,
            budgets: Mutex::new([Some(10), Some(100)]),
            metadata: Mutex::default(),
        };
        assert_eq!(conn.allow(REQUESTS, 4), 4);
        assert_eq!(conn.allow(REQUESTS, 5), 5);
        // One byte left: the next frame gets exactly that one.
        assert_eq!(conn.allow(REQUESTS, 8), 1);
        // A frame as large as the budget is cut one byte before its end.
        assert_eq!(conn.allow(RESPONSES, 100), 99);
        let conn = Conn {
            kill: watch::channel(false).0,
            budgets: Mutex::new([None, Some(100)]),
            metadata: Mutex::default(),
        };
        assert_eq!(conn.allow(REQUESTS, 1_000_000), 1_000_000);
    }
}
