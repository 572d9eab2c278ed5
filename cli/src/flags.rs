//! Flag values that several commands share, spelt as kcat spells them: `-z` codecs, `-K`
//! delimiters (kcat's `-D` escapes) and `-H name=value` headers.
//!
//! Why here rather than in each command: `produce`, `consume` and `bench` must accept exactly
//! the same spellings, or a pipeline that works with one breaks with the other.

use bytes::Bytes;

/// A `-z` codec; passed on as the producer's `compression.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Codec {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Codec {
    /// The `compression.type` value.
    pub(crate) fn property(self) -> (String, String) {
        let name = match self {
            Codec::None => "none",
            Codec::Gzip => "gzip",
            Codec::Snappy => "snappy",
            Codec::Lz4 => "lz4",
            Codec::Zstd => "zstd",
        };
        ("compression.type".to_owned(), name.to_owned())
    }
}

/// A `-K` key delimiter: one or more bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Delimiter(pub(crate) Vec<u8>);

impl Delimiter {
    /// Splits `line` at the first delimiter: `(key, value)`, or `None` if there is none.
    pub(crate) fn split(&self, mut line: Bytes) -> Result<(Bytes, Bytes), Bytes> {
        let d = &self.0;
        match line.windows(d.len()).position(|w| w == d.as_slice()) {
            Some(at) => {
                let key = line.split_to(at);
                Ok((key, line.split_off(d.len())))
            }
            None => Err(line),
        }
    }
}

/// Parses a delimiter the way kcat's `-D`/`-K` do: literal text with the escapes `\n`, `\r`,
/// `\t`, `\\` and `\xNN` (two hex digits).
pub(crate) fn parse_delimiter(s: &str) -> Result<Delimiter, String> {
    let mut out = Vec::with_capacity(s.len());
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' || i + 1 == bytes.len() {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let escaped = match bytes[i + 1] {
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'\\' => b'\\',
            b'x' => {
                let hex = s
                    .get(i + 2..i + 4)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("bad escape in {s:?}: \\x needs two hex digits"))?;
                out.push(hex);
                i += 4;
                continue;
            }
            other => return Err(format!("unknown escape \\{} in {s:?}", other as char)),
        };
        out.push(escaped);
        i += 2;
    }
    if out.is_empty() {
        return Err("the delimiter is empty".to_owned());
    }
    Ok(Delimiter(out))
}

/// A `-H` header: `name=value`, or `name` alone for a null value (as kcat does).
pub(crate) fn parse_header(s: &str) -> Result<(String, Option<Bytes>), String> {
    let (name, value) = match s.split_once('=') {
        Some((name, value)) => (name, Some(Bytes::copy_from_slice(value.as_bytes()))),
        None => (s, None),
    };
    if name.is_empty() {
        return Err(format!("expected NAME=VALUE, got {s:?}"));
    }
    Ok((name.to_owned(), value))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn delimiters_take_kcat_escapes() {
        assert_eq!(parse_delimiter(":").unwrap().0, b":");
        assert_eq!(parse_delimiter("\\t").unwrap().0, b"\t");
        assert_eq!(parse_delimiter("a\\x00b").unwrap().0, b"a\0b");
        assert_eq!(parse_delimiter("::\\n").unwrap().0, b"::\n");
        assert!(parse_delimiter("").is_err());
        assert!(parse_delimiter("\\xZ").is_err());
        assert!(parse_delimiter("\\q").is_err());
    }

    #[test]
    fn split_at_the_first_delimiter_only() {
        let d = parse_delimiter("::").unwrap();
        let (k, v) = d.split(Bytes::from_static(b"k::v::w")).unwrap();
        assert_eq!((&k[..], &v[..]), (&b"k"[..], &b"v::w"[..]));
        let (k, v) = d.split(Bytes::from_static(b"::")).unwrap();
        assert!(k.is_empty() && v.is_empty());
        assert_eq!(d.split(Bytes::from_static(b"k:v")).unwrap_err(), "k:v");
    }

    #[test]
    fn headers_split_at_the_first_equals_sign() {
        let (n, v) = parse_header("a=b=c").unwrap();
        assert_eq!((n.as_str(), v.as_deref()), ("a", Some(&b"b=c"[..])));
        assert_eq!(parse_header("flag").unwrap().1, None);
        assert_eq!(parse_header("e=").unwrap().1.as_deref(), Some(&b""[..]));
        assert!(parse_header("=v").is_err());
    }
}
