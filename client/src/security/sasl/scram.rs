//! SASL SCRAM-SHA-256 / SCRAM-SHA-512 (RFC 5802, RFC 7677), the client side.
//!
//! SCRAM proves knowledge of the password without sending it, and makes the server prove it
//! holds the user's credential too (the `v=` server signature), so a man in the middle without
//! the stored credential cannot impersonate the broker. Kafka (KIP-84) uses it without channel
//! binding (`n,,` GS2 header) and without SASLprep: the password's UTF-8 bytes go into PBKDF2
//! as they are, like the Java client.
//!
//! Exchange: client-first `n,,n=<user>,r=<c-nonce>` → server-first `r=<c-nonce+s-nonce>,s=<salt>,
//! i=<iterations>` → client-final `c=biws,r=<nonce>,p=<proof>` → server-final `v=<signature>`
//! or `e=<error>`. Like Kafka's `ScramSaslClient`, fewer than 4096 iterations are refused; more
//! than [`MAX_ITERATIONS`] too, so a hostile server cannot make us spin.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};

use super::{security_error, Exchange, Mechanism};
use crate::{Error, Result};

/// The fewest PBKDF2 iterations accepted (RFC 7677 §4 and Kafka's `ScramMechanism`).
const MIN_ITERATIONS: u32 = 4096;
/// The most PBKDF2 iterations accepted: a bound on the CPU a server can make us burn. Kafka
/// never stores credentials with more than 16384.
const MAX_ITERATIONS: u32 = 1_000_000;

const NONCE_LEN: usize = 32;
/// `base64("n,,")`: no channel binding, no authorization id.
const CHANNEL_BINDING: &str = "biws";

/// The SCRAM client exchange.
pub struct Scram {
    mechanism: Mechanism,
    hash: Hash,
    password: Vec<u8>,
    nonce: String,
    client_first_bare: String,
    state: State,
}

enum State {
    /// client-first is out; the server's salt and iterations come next.
    ServerFirst,
    /// client-final is out; the server must prove itself with this signature.
    ServerFinal {
        server_signature: Vec<u8>,
    },
    Complete,
    /// An error ended the exchange.
    Failed,
}

impl Scram {
    /// A SCRAM exchange with a fresh random client nonce. `mechanism` must be one of the SCRAM
    /// mechanisms.
    ///
    /// The nonce comes from `fastrand`, which is not a cryptographic generator: SCRAM needs the
    /// client nonce to be unique per exchange so a server-first cannot be replayed into it, not
    /// secret (it is sent in the clear), and the server adds its own nonce.
    pub fn new(mechanism: Mechanism, username: &str, password: &str) -> Result<Self> {
        let mut rng = fastrand::Rng::new();
        let nonce: String = (0..NONCE_LEN).map(|_| rng.alphanumeric()).collect();
        Self::with_nonce(mechanism, username, password, &nonce)
    }

    /// The same with a given client nonce (printable ASCII without `,`), for tests against
    /// recorded exchanges.
    pub fn with_nonce(
        mechanism: Mechanism,
        username: &str,
        password: &str,
        nonce: &str,
    ) -> Result<Self> {
        let hash = match mechanism {
            Mechanism::ScramSha256 => Hash::Sha256,
            Mechanism::ScramSha512 => Hash::Sha512,
            Mechanism::Plain => return Err(security_error(mechanism, "not a SCRAM mechanism")),
        };
        if username.is_empty() {
            return Err(security_error(mechanism, "empty user name"));
        }
        if !is_valid_nonce(nonce) {
            return Err(security_error(
                mechanism,
                "client nonce must be printable ASCII without ','",
            ));
        }
        let client_first_bare = format!("n={},r={}", escape_username(username), nonce);
        Ok(Scram {
            mechanism,
            hash,
            password: password.as_bytes().to_vec(),
            nonce: nonce.to_owned(),
            client_first_bare,
            state: State::ServerFirst,
        })
    }

    fn error(&self, reason: impl fmt::Display) -> Error {
        security_error(self.mechanism, reason)
    }

    /// Parses server-first, checks it, and computes client-final and the signature the server
    /// must send back.
    fn client_final(&mut self, challenge: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
        let server_first = std::str::from_utf8(challenge)
            .map_err(|_| self.error("server-first message is not UTF-8"))?;
        let first = ServerFirst::parse(server_first).map_err(|e| self.error(e))?;

        // The server's nonce must extend ours; otherwise this answers another exchange (a
        // replay) and our proof would be computed over the attacker's choice.
        if first.nonce.len() <= self.nonce.len() || !first.nonce.starts_with(&self.nonce) {
            return Err(self.error("server nonce does not extend the client nonce"));
        }
        if first.iterations < MIN_ITERATIONS {
            return Err(self.error(format!(
                "requested iterations {} is less than the minimum {MIN_ITERATIONS}",
                first.iterations
            )));
        }
        if first.iterations > MAX_ITERATIONS {
            return Err(self.error(format!(
                "requested iterations {} is more than the maximum {MAX_ITERATIONS}",
                first.iterations
            )));
        }

        let without_proof = format!("c={CHANNEL_BINDING},r={}", first.nonce);
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);

        let mut password = std::mem::take(&mut self.password);
        let salted = self
            .hash
            .salted_password(&password, &first.salt, first.iterations);
        // Best effort: the password is not needed any more.
        password.fill(0);

        let client_key = self.hash.hmac(&salted, b"Client Key")?;
        let stored_key = self.hash.digest(&client_key);
        let client_signature = self.hash.hmac(&stored_key, auth_message.as_bytes())?;
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&client_signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = self.hash.hmac(&salted, b"Server Key")?;
        let server_signature = self.hash.hmac(&server_key, auth_message.as_bytes())?;

        let client_final = format!("{without_proof},p={}", b64::encode(&proof));
        Ok((client_final.into_bytes(), server_signature))
    }

    fn verify_server_final(&self, challenge: &[u8], expected: &[u8]) -> Result<()> {
        let message = std::str::from_utf8(challenge)
            .map_err(|_| self.error("server-final message is not UTF-8"))?;
        // Extensions may follow the first attribute; none is defined.
        let first = message.split(',').next().unwrap_or_default();
        if let Some(error) = attribute(first, 'e') {
            return Err(self.error(format!("server error: {error}")));
        }
        let signature = attribute(first, 'v')
            .ok_or_else(|| self.error("malformed server-final message: expected v= or e="))?;
        let signature = b64::decode(signature)
            .ok_or_else(|| self.error("malformed server-final message: bad base64 signature"))?;
        if !constant_time_eq(&signature, expected) {
            return Err(self.error(
                "server signature mismatch: the broker did not prove it knows the credential",
            ));
        }
        Ok(())
    }
}

impl Exchange for Scram {
    fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    fn initial_response(&self) -> Vec<u8> {
        format!("n,,{}", self.client_first_bare).into_bytes()
    }

    fn handle_challenge(&mut self, challenge: &[u8]) -> Result<Option<Vec<u8>>> {
        // Any error below leaves the state at Failed.
        match std::mem::replace(&mut self.state, State::Failed) {
            State::ServerFirst => {
                let (client_final, server_signature) = self.client_final(challenge)?;
                self.state = State::ServerFinal { server_signature };
                Ok(Some(client_final))
            }
            State::ServerFinal { server_signature } => {
                self.verify_server_final(challenge, &server_signature)?;
                self.state = State::Complete;
                Ok(None)
            }
            State::Complete => {
                self.state = State::Complete;
                Err(self.error("server data after completion"))
            }
            State::Failed => Err(self.error("the exchange already failed")),
        }
    }

    fn is_complete(&self) -> bool {
        matches!(self.state, State::Complete)
    }
}

impl fmt::Debug for Scram {
    // No password, no keys.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::ServerFirst => "ServerFirst",
            State::ServerFinal { .. } => "ServerFinal",
            State::Complete => "Complete",
            State::Failed => "Failed",
        };
        f.debug_struct("Scram")
            .field("mechanism", &self.mechanism)
            .field("client_first_bare", &self.client_first_bare)
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

/// The parts of a server-first message this client uses.
struct ServerFirst<'a> {
    nonce: &'a str,
    salt: Vec<u8>,
    iterations: u32,
}

impl<'a> ServerFirst<'a> {
    /// `[m=ext,]r=nonce,s=salt,i=count[,ext...]`; a mandatory extension (`m=`) is refused.
    fn parse(message: &'a str) -> std::result::Result<Self, String> {
        let mut parts = message.split(',');
        let mut next = |name: char| {
            let part = parts.next().unwrap_or_default();
            if name == 'r' {
                if let Some(error) = attribute(part, 'e') {
                    return Err(format!("server error: {error}"));
                }
                if attribute(part, 'm').is_some() {
                    return Err("unsupported mandatory extension in server-first".to_owned());
                }
            }
            attribute(part, name)
                .ok_or_else(|| format!("malformed server-first message: expected {name}="))
        };
        let nonce = next('r')?;
        let salt = next('s')?;
        let iterations = next('i')?;
        if !is_valid_nonce(nonce) {
            return Err("malformed server-first message: bad nonce".to_owned());
        }
        let salt = b64::decode(salt)
            .filter(|salt| !salt.is_empty())
            .ok_or("malformed server-first message: bad salt")?;
        let iterations = Some(iterations)
            .filter(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|i| i.parse().ok())
            .ok_or("malformed server-first message: bad iteration count")?;
        Ok(ServerFirst {
            nonce,
            salt,
            iterations,
        })
    }
}

/// The value of `name=value`, if `part` is that attribute.
fn attribute(part: &str, name: char) -> Option<&str> {
    part.strip_prefix(name)?.strip_prefix('=')
}

/// RFC 5802 `printable`: ASCII 0x21..=0x7e except `,`.
fn is_valid_nonce(nonce: &str) -> bool {
    !nonce.is_empty()
        && nonce
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// RFC 5802 `saslname`: `=` and `,` are escaped as `=3D` and `=2C`.
fn escape_username(username: &str) -> String {
    let mut out = String::with_capacity(username.len());
    for c in username.chars() {
        match c {
            '=' => out.push_str("=3D"),
            ',' => out.push_str("=2C"),
            c => out.push(c),
        }
    }
    out
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The SCRAM hash function, with the three primitives SCRAM needs.
#[derive(Clone, Copy)]
enum Hash {
    Sha256,
    Sha512,
}

impl Hash {
    fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            Hash::Sha256 => {
                let mut out = vec![0; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
                out
            }
            Hash::Sha512 => {
                let mut out = vec![0; 64];
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out);
                out
            }
        }
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Result<Vec<u8>> {
        // HMAC takes keys of any length; the error cannot happen but is not unwrapped.
        let bad_key = |_| Error::Security("SCRAM: HMAC key rejected".to_owned());
        Ok(match self {
            Hash::Sha256 => {
                let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).map_err(bad_key)?;
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
            Hash::Sha512 => {
                let mut mac = <Hmac<Sha512> as Mac>::new_from_slice(key).map_err(bad_key)?;
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
        })
    }

    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha256 => Sha256::digest(data).to_vec(),
            Hash::Sha512 => Sha512::digest(data).to_vec(),
        }
    }
}

/// Standard base64 with padding (RFC 4648 §4), the only encoding SCRAM uses. The decoder
/// rejects non-canonical input (stray bits in the last group), so two texts never decode alike.
mod b64 {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;

    pub(super) fn encode(data: &[u8]) -> String {
        STANDARD.encode(data)
    }

    /// `None` on anything but canonical padded base64.
    pub(super) fn decode(text: &str) -> Option<Vec<u8>> {
        STANDARD.decode(text).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_rfc4648_vectors() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(b64::encode(plain.as_bytes()), encoded);
            assert_eq!(b64::decode(encoded).as_deref(), Some(plain.as_bytes()));
        }
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(b64::decode(&b64::encode(&all)), Some(all));
    }

    #[test]
    fn base64_rejects_malformed() {
        for bad in [
            "Zg=", "Zg===", "Z===", "Zg==Zg==", "Zm9v!A==", "Zh==", "Zm9=", "====", "Z",
        ] {
            assert_eq!(b64::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn username_escaping() {
        assert_eq!(escape_username("a=b,c"), "a=3Db=2Cc");
        assert_eq!(escape_username("plain"), "plain");
    }
}
