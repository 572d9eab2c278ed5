//! An in-process fake broker for the TLS and SASL tests: the pattern of `conn/tests.rs`
//! (a scripted peer on loopback speaking real frames), extended with a TLS listener, the
//! SaslHandshake / SaslAuthenticate exchange and a server-side SCRAM written for these tests
//! from RFC 5802 §3 and §5 (it stores only StoredKey and ServerKey, like a broker).
//!
//! The local test broker (Tansu) has no TLS or SASL listener, so these paths are tested
//! against this peer instead. It is shared with `client/tests/security.rs` (included there by
//! path), so it names no `crate::` item.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::metadata_response::MetadataResponseBroker;
use kafka_protocol::messages::{
    ApiVersionsResponse, BrokerId, MetadataResponse, ResponseKind, SaslAuthenticateResponse,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::frame::FrameDecoder;
use sluice_protocol::messages::{decode_request, encode_response, ApiKey, RequestKind};
use sluice_protocol::versions::SUPPORTED;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

/// Kafka's error codes, as the broker sends them.
const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
const ILLEGAL_SASL_STATE: i16 = 34;
const SASL_AUTHENTICATION_FAILED: i16 = 58;

/// Ways the fake broker can deviate from a correct one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Misbehave {
    /// None: a correct broker.
    #[default]
    Nothing,
    /// SCRAM server-final with a signature computed from the wrong key: an impostor that
    /// accepts any proof but cannot prove it knows the credential.
    ForgeServerSignature,
    /// Answer every SaslAuthenticate with ILLEGAL_SASL_STATE.
    IllegalSaslState,
}

/// What the fake broker is and does.
#[derive(Debug, Clone, Default)]
pub(crate) struct FakeBroker {
    /// Enabled SASL mechanisms; empty for a listener without SASL.
    pub(crate) mechanisms: Vec<&'static str>,
    /// Known users and their passwords.
    pub(crate) users: Vec<(&'static str, &'static str)>,
    /// How it misbehaves, if at all.
    pub(crate) misbehave: Misbehave,
    /// The host it advertises in Metadata (`127.0.0.1` when empty).
    pub(crate) host: &'static str,
    /// The highest SaslAuthenticate version it offers (sluice's highest when `None`), as an
    /// older broker would; a request above it fails the connection.
    pub(crate) sasl_authenticate_max: Option<i16>,
    /// TLS server settings; `None` for a plaintext listener.
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
}

/// A started fake broker.
#[derive(Debug, Clone)]
pub(crate) struct Running {
    /// Its port on 127.0.0.1.
    pub(crate) port: u16,
    /// What it saw, in order: `sni=...`, `client-cert`, `tls-error=...`, `auth=user`,
    /// `auth-failed=user`, `metadata`, `closed-unauthenticated`.
    pub(crate) events: Arc<Mutex<Vec<String>>>,
}

impl Running {
    /// `host:port` of the broker with the given host name (which must resolve to 127.0.0.1).
    pub(crate) fn addr(&self, host: &str) -> String {
        format!("{host}:{}", self.port)
    }

    /// A copy of the events so far.
    pub(crate) fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }
}

impl FakeBroker {
    /// Listens on a free loopback port and serves every connection until the test ends.
    pub(crate) async fn start(self) -> Running {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let events = Arc::new(Mutex::new(Vec::new()));
        let running = Running {
            port,
            events: Arc::clone(&events),
        };
        let broker = Arc::new(self);
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (broker, events) = (Arc::clone(&broker), Arc::clone(&events));
                tokio::spawn(async move { broker.accept(socket, port, events).await });
            }
        });
        running
    }

    async fn accept(&self, socket: tokio::net::TcpStream, port: u16, events: Events) {
        #[cfg(feature = "tls")]
        if let Some(config) = &self.tls {
            let acceptor = tokio_rustls::TlsAcceptor::from(Arc::clone(config));
            match acceptor.accept(socket).into_fallible().await {
                Ok(stream) => {
                    let session = stream.get_ref().1;
                    let sni = session.server_name().unwrap_or("none").to_owned();
                    push(&events, format!("sni={sni}"));
                    if session.peer_certificates().is_some_and(|c| !c.is_empty()) {
                        push(&events, "client-cert".into());
                    }
                    self.serve(stream, port, &events).await;
                }
                Err((e, mut socket)) => {
                    push(&events, format!("tls-error={e}"));
                    // Read what the client still sends before closing: closing with unread
                    // data makes the kernel send a reset, which could overtake the alert.
                    let mut sink = [0u8; 1024];
                    let drain = async { while socket.read(&mut sink).await.unwrap_or(0) > 0 {} };
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), drain).await;
                }
            }
            return;
        }
        self.serve(socket, port, &events).await;
    }

    async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        mut socket: S,
        port: u16,
        events: &Events,
    ) {
        let mut decoder = FrameDecoder::new(1 << 20);
        let mut buf = BytesMut::new();
        let mut sasl = Sasl::Start;
        loop {
            let frame = match decoder.decode(&mut buf) {
                Ok(Some(frame)) => frame,
                Ok(None) => {
                    if socket.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                        return;
                    }
                    continue;
                }
                // A TLS hello sent to this plaintext listener reads as a 369 MB frame: close,
                // as a broker does.
                Err(_) => {
                    push(events, "bad-frame".into());
                    return;
                }
            };
            let (header, body) = decode_request(frame).unwrap();
            let (id, version) = (header.correlation_id, header.request_api_version);
            let authenticated = self.mechanisms.is_empty() || matches!(sasl, Sasl::Done);
            let (api, response) = match body {
                RequestKind::ApiVersions(_) => (
                    ApiKey::ApiVersions,
                    api_versions(self.sasl_authenticate_max),
                ),
                RequestKind::SaslHandshake(request) => {
                    let response = self.handshake(request.mechanism.as_str(), &mut sasl);
                    (ApiKey::SaslHandshake, ResponseKind::SaslHandshake(response))
                }
                RequestKind::SaslAuthenticate(request) => {
                    if self.sasl_authenticate_max.is_some_and(|max| version > max) {
                        push(events, format!("sasl-authenticate-v{version}-not-offered"));
                        return;
                    }
                    let response = self.authenticate(&request.auth_bytes, &mut sasl, events);
                    (
                        ApiKey::SaslAuthenticate,
                        ResponseKind::SaslAuthenticate(response),
                    )
                }
                // Like Kafka: anything else before authentication closes the connection.
                _ if !authenticated => {
                    push(events, "closed-unauthenticated".into());
                    return;
                }
                RequestKind::Metadata(_) => {
                    push(events, "metadata".into());
                    let host = if self.host.is_empty() {
                        "127.0.0.1"
                    } else {
                        self.host
                    };
                    (ApiKey::Metadata, metadata(host, port))
                }
                other => panic!("unexpected request {other:?}"),
            };
            let mut out = BytesMut::new();
            encode_response(&mut out, id, api, version, &response).unwrap();
            if socket.write_all(&out).await.is_err() || socket.flush().await.is_err() {
                return;
            }
        }
    }

    fn handshake(&self, mechanism: &str, sasl: &mut Sasl) -> SaslHandshakeResponse {
        let enabled = self
            .mechanisms
            .iter()
            .map(|m| StrBytes::from_static_str(m))
            .collect();
        let response = SaslHandshakeResponse::default().with_mechanisms(enabled);
        if !matches!(sasl, Sasl::Start) {
            return response.with_error_code(ILLEGAL_SASL_STATE);
        }
        if !self.mechanisms.contains(&mechanism) {
            return response.with_error_code(UNSUPPORTED_SASL_MECHANISM);
        }
        *sasl = Sasl::Chosen(mechanism.to_owned());
        response
    }

    fn authenticate(
        &self,
        message: &[u8],
        sasl: &mut Sasl,
        events: &Events,
    ) -> SaslAuthenticateResponse {
        let fail = |code: i16, text: String| {
            SaslAuthenticateResponse::default()
                .with_error_code(code)
                .with_error_message(Some(StrBytes::from_string(text)))
        };
        if self.misbehave == Misbehave::IllegalSaslState {
            return fail(
                ILLEGAL_SASL_STATE,
                "Unexpected SASL request in this state".into(),
            );
        }
        let ok = |bytes: Vec<u8>| {
            SaslAuthenticateResponse::default().with_auth_bytes(Bytes::from(bytes))
        };
        match std::mem::replace(sasl, Sasl::Failed) {
            Sasl::Chosen(mechanism) if mechanism == "PLAIN" => {
                // authzid NUL authcid NUL passwd (RFC 4616).
                let parts: Vec<&[u8]> = message.split(|b| *b == 0).collect();
                let (user, password) = match parts.as_slice() {
                    [_, user, password] => (
                        String::from_utf8_lossy(user).into_owned(),
                        String::from_utf8_lossy(password).into_owned(),
                    ),
                    _ => return fail(SASL_AUTHENTICATION_FAILED, "malformed PLAIN".into()),
                };
                if self.users.iter().any(|(u, p)| *u == user && *p == password) {
                    push(events, format!("auth={user}"));
                    *sasl = Sasl::Done;
                    ok(Vec::new())
                } else {
                    push(events, format!("auth-failed={user}"));
                    // Kafka's PlainServerCallbackHandler message.
                    fail(
                        SASL_AUTHENTICATION_FAILED,
                        "Authentication failed: Invalid username or password".into(),
                    )
                }
            }
            #[cfg(feature = "sasl")]
            Sasl::Chosen(mechanism) => {
                let mut server = scram::Server::new(&mechanism, &self.users);
                match server.first(message) {
                    Ok(server_first) => {
                        *sasl = Sasl::Scram(Box::new(server));
                        ok(server_first)
                    }
                    Err(e) => fail(SASL_AUTHENTICATION_FAILED, e),
                }
            }
            #[cfg(feature = "sasl")]
            Sasl::Scram(server) => {
                let forge = self.misbehave == Misbehave::ForgeServerSignature;
                match server.last(message, forge) {
                    Ok(server_final) => {
                        push(events, format!("auth={}", server.user()));
                        *sasl = Sasl::Done;
                        ok(server_final)
                    }
                    Err(e) => {
                        push(events, format!("auth-failed={}", server.user()));
                        fail(SASL_AUTHENTICATION_FAILED, e)
                    }
                }
            }
            _ => fail(
                ILLEGAL_SASL_STATE,
                "SaslAuthenticate before SaslHandshake".into(),
            ),
        }
    }
}

type Events = Arc<Mutex<Vec<String>>>;

fn push(events: &Events, event: String) {
    events.lock().unwrap().push(event);
}

/// Where a connection is in the SASL exchange.
enum Sasl {
    Start,
    Chosen(String),
    #[cfg(feature = "sasl")]
    Scram(Box<scram::Server>),
    Done,
    Failed,
}

fn api_versions(sasl_authenticate_max: Option<i16>) -> ResponseKind {
    let keys = SUPPORTED
        .iter()
        .map(|r| {
            let max = match sasl_authenticate_max {
                Some(max) if r.api == ApiKey::SaslAuthenticate => max,
                _ => r.max,
            };
            ApiVersion::default()
                .with_api_key(r.api as i16)
                .with_min_version(r.min)
                .with_max_version(max)
        })
        .collect();
    ResponseKind::ApiVersions(ApiVersionsResponse::default().with_api_keys(keys))
}

fn metadata(host: &str, port: u16) -> ResponseKind {
    let broker = MetadataResponseBroker::default()
        .with_node_id(BrokerId(1))
        .with_host(StrBytes::from_string(host.to_owned()))
        .with_port(i32::from(port));
    ResponseKind::Metadata(
        MetadataResponse::default()
            .with_brokers(vec![broker])
            .with_controller_id(BrokerId(1)),
    )
}

/// The server side of SCRAM-SHA-256 / SCRAM-SHA-512, from RFC 5802 §3 (algorithm) and §5
/// (messages), without channel binding, as Kafka runs it (KIP-84).
#[cfg(feature = "sasl")]
pub(crate) mod scram {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    use hmac::{Hmac, Mac};
    use sha2::{Digest, Sha256, Sha512};

    const ITERATIONS: u32 = 4096;

    /// What a broker stores per user (RFC 5802 §3): never the password.
    struct Credential {
        salt: Vec<u8>,
        stored_key: Vec<u8>,
        server_key: Vec<u8>,
    }

    pub(crate) struct Server {
        sha512: bool,
        mechanism: String,
        credentials: Vec<(String, Credential)>,
        user: String,
        client_first_bare: String,
        server_first: String,
        nonce: String,
    }

    impl Server {
        pub(crate) fn new(mechanism: &str, users: &[(&str, &str)]) -> Self {
            let sha512 = match mechanism {
                "SCRAM-SHA-256" => false,
                "SCRAM-SHA-512" => true,
                other => panic!("not a SCRAM mechanism: {other}"),
            };
            let mut server = Server {
                sha512,
                mechanism: mechanism.to_owned(),
                credentials: Vec::new(),
                user: String::new(),
                client_first_bare: String::new(),
                server_first: String::new(),
                nonce: String::new(),
            };
            server.credentials = users
                .iter()
                .map(|(user, password)| {
                    let salt = format!("salt-of-{user}").into_bytes();
                    let salted = server.salted_password(password.as_bytes(), &salt);
                    let client_key = server.hmac(&salted, b"Client Key");
                    let credential = Credential {
                        stored_key: server.digest(&client_key),
                        server_key: server.hmac(&salted, b"Server Key"),
                        salt,
                    };
                    ((*user).to_owned(), credential)
                })
                .collect();
            server
        }

        pub(crate) fn user(&self) -> &str {
            &self.user
        }

        /// client-first `n,,n=user,r=nonce` → server-first `r=nonce+ours,s=salt,i=count`.
        pub(crate) fn first(&mut self, message: &[u8]) -> Result<Vec<u8>, String> {
            let message = std::str::from_utf8(message).map_err(|_| "not UTF-8")?;
            // gs2-header: no channel binding ("n"), no authzid.
            let bare = message
                .strip_prefix("n,,")
                .ok_or("unsupported GS2 header")?;
            let mut parts = bare.split(',');
            let name = parts
                .next()
                .and_then(|p| p.strip_prefix("n="))
                .ok_or("missing n=")?;
            let nonce = parts
                .next()
                .and_then(|p| p.strip_prefix("r="))
                .ok_or("missing r=")?;
            self.user = name.replace("=2C", ",").replace("=3D", "=");
            let salt = self
                .credential()
                .map(|c| c.salt.clone())
                .unwrap_or_else(|| b"unknown-user-salt".to_vec());
            self.client_first_bare = bare.to_owned();
            self.nonce = format!("{nonce}ServerNonce{}", self.user.len());
            self.server_first = format!(
                "r={},s={},i={ITERATIONS}",
                self.nonce,
                STANDARD.encode(salt)
            );
            Ok(self.server_first.clone().into_bytes())
        }

        /// client-final `c=biws,r=nonce,p=proof` → server-final `v=signature`, or the error
        /// message Kafka's `ScramSaslServer` gives.
        pub(crate) fn last(&self, message: &[u8], forge: bool) -> Result<Vec<u8>, String> {
            let invalid = || {
                format!(
                    "Authentication failed during authentication due to invalid credentials \
                     with SASL mechanism {}",
                    self.mechanism
                )
            };
            let message = std::str::from_utf8(message).map_err(|_| invalid())?;
            let (without_proof, proof) = message.rsplit_once(",p=").ok_or_else(invalid)?;
            if without_proof != format!("c=biws,r={}", self.nonce) {
                return Err(invalid());
            }
            let credential = self.credential().ok_or_else(invalid)?;
            let auth_message = format!(
                "{},{},{without_proof}",
                self.client_first_bare, self.server_first
            );
            // ClientKey = ClientProof XOR ClientSignature; the proof is right iff
            // H(ClientKey) = StoredKey.
            let proof = STANDARD.decode(proof).map_err(|_| invalid())?;
            let client_signature = self.hmac(&credential.stored_key, auth_message.as_bytes());
            if proof.len() != client_signature.len() {
                return Err(invalid());
            }
            let client_key: Vec<u8> = proof
                .iter()
                .zip(&client_signature)
                .map(|(p, s)| p ^ s)
                .collect();
            if !forge && self.digest(&client_key) != credential.stored_key {
                return Err(invalid());
            }
            let key = if forge {
                b"not the server key".to_vec()
            } else {
                credential.server_key.clone()
            };
            let signature = self.hmac(&key, auth_message.as_bytes());
            Ok(format!("v={}", STANDARD.encode(signature)).into_bytes())
        }

        fn credential(&self) -> Option<&Credential> {
            self.credentials
                .iter()
                .find(|(user, _)| *user == self.user)
                .map(|(_, c)| c)
        }

        fn salted_password(&self, password: &[u8], salt: &[u8]) -> Vec<u8> {
            if self.sha512 {
                let mut out = vec![0; 64];
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, ITERATIONS, &mut out);
                out
            } else {
                let mut out = vec![0; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, ITERATIONS, &mut out);
                out
            }
        }

        fn hmac(&self, key: &[u8], data: &[u8]) -> Vec<u8> {
            if self.sha512 {
                let mut mac = <Hmac<Sha512> as Mac>::new_from_slice(key).unwrap();
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            } else {
                let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
        }

        fn digest(&self, data: &[u8]) -> Vec<u8> {
            if self.sha512 {
                Sha512::digest(data).to_vec()
            } else {
                Sha256::digest(data).to_vec()
            }
        }
    }
}

/// Certificates made in the test with `rcgen` (ring), written to a temporary directory as the
/// PEM files `TlsConfig` names.
#[cfg(feature = "tls")]
pub(crate) mod pki {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair,
    };
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use rustls::server::WebPkiClientVerifier;
    use rustls::RootCertStore;

    /// A self-signed certificate authority.
    pub(crate) struct Ca {
        issuer: CertifiedIssuer<'static, KeyPair>,
    }

    /// A certificate issued by a [`Ca`], with its key.
    pub(crate) struct Issued {
        pub(crate) cert: CertificateDer<'static>,
        pub(crate) cert_pem: String,
        pub(crate) key_der: Vec<u8>,
        pub(crate) key_pem: String,
    }

    impl Ca {
        pub(crate) fn new(name: &str) -> Ca {
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.distinguished_name.push(DnType::CommonName, name);
            let issuer =
                CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
            Ca { issuer }
        }

        pub(crate) fn pem(&self) -> String {
            self.issuer.pem()
        }

        pub(crate) fn der(&self) -> CertificateDer<'static> {
            self.issuer.der().clone()
        }

        /// A server certificate for `names` (DNS names or IP addresses).
        pub(crate) fn server(&self, names: &[&str]) -> Issued {
            self.issue(names, ExtendedKeyUsagePurpose::ServerAuth)
        }

        /// A client certificate.
        pub(crate) fn client(&self, name: &str) -> Issued {
            self.issue(&[name], ExtendedKeyUsagePurpose::ClientAuth)
        }

        fn issue(&self, names: &[&str], usage: ExtendedKeyUsagePurpose) -> Issued {
            let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
            let mut params = CertificateParams::new(names.clone()).unwrap();
            params
                .distinguished_name
                .push(DnType::CommonName, names[0].clone());
            params.extended_key_usages = vec![usage];
            let key = KeyPair::generate().unwrap();
            let cert = params.signed_by(&key, &self.issuer).unwrap();
            Issued {
                cert: cert.der().clone(),
                cert_pem: cert.pem(),
                key_der: key.serialize_der(),
                key_pem: key.serialize_pem(),
            }
        }
    }

    /// A broker's TLS settings: its certificate, and the CA its clients must be signed by
    /// when it requires client certificates.
    pub(crate) fn server_config(
        cert: &Issued,
        client_ca: Option<&Ca>,
    ) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = match client_ca {
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                roots.add(ca.der()).unwrap();
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .unwrap();
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_der.clone()));
        Arc::new(
            builder
                .with_single_cert(vec![cert.cert.clone()], key)
                .unwrap(),
        )
    }

    /// A temporary directory, removed when dropped.
    pub(crate) struct TempDir(PathBuf);

    impl TempDir {
        pub(crate) fn new() -> TempDir {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!(
                "sluice-tls-test-{}-{n}-{}",
                std::process::id(),
                fastrand::u64(..)
            ));
            std::fs::create_dir_all(&path).unwrap();
            TempDir(path)
        }

        /// Writes `contents` to `name` in the directory; returns its path.
        pub(crate) fn write(&self, name: &str, contents: &str) -> PathBuf {
            let path = self.0.join(name);
            std::fs::write(&path, contents).unwrap();
            path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
