//! RTSP authentication as cameras do it: HTTP Basic and Digest (RFC 2617, MD5, with or without
//! `qop=auth`), challenged by `401 Unauthorized` with `WWW-Authenticate`.

use base64::Engine as _;
use md5::{Digest as _, Md5};

const REALM: &str = "mediagraph-test-camera";

/// Which challenges the camera offers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthScheme {
    Basic,
    Digest,
    /// Both challenges; clients pick Digest.
    #[default]
    Any,
}

#[derive(Clone, Debug)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

#[derive(Debug)]
pub struct Auth {
    credentials: Credentials,
    scheme: AuthScheme,
    nonce: String,
}

fn md5_hex(s: &str) -> String {
    Md5::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Auth {
    pub fn new(credentials: Credentials, scheme: AuthScheme) -> Self {
        Self {
            credentials,
            scheme,
            nonce: format!("{:032x}", rand::random::<u128>()),
        }
    }

    /// Values of the `WWW-Authenticate` headers of a 401 response.
    pub fn challenges(&self) -> Vec<String> {
        let digest = format!("Digest realm=\"{REALM}\", nonce=\"{}\"", self.nonce);
        let basic = format!("Basic realm=\"{REALM}\"");
        match self.scheme {
            AuthScheme::Basic => vec![basic],
            AuthScheme::Digest => vec![digest],
            AuthScheme::Any => vec![digest, basic],
        }
    }

    /// Whether the `Authorization` header value authorizes `method`.
    pub fn check(&self, method: &str, authorization: Option<&str>) -> bool {
        let Some(value) = authorization else {
            return false;
        };
        let (kind, rest) = value.trim().split_once(' ').unwrap_or((value, ""));
        if kind.eq_ignore_ascii_case("basic") && self.scheme != AuthScheme::Digest {
            let expected = format!(
                "{}:{}",
                self.credentials.username, self.credentials.password
            );
            return base64::engine::general_purpose::STANDARD
                .decode(rest.trim())
                .is_ok_and(|d| d == expected.as_bytes());
        }
        if kind.eq_ignore_ascii_case("digest") && self.scheme != AuthScheme::Basic {
            return self.check_digest(method, rest);
        }
        false
    }

    fn check_digest(&self, method: &str, params: &str) -> bool {
        let params = parse_params(params);
        let get = |k: &str| {
            params
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.as_str())
        };
        let (Some(user), Some(realm), Some(nonce), Some(uri), Some(response)) = (
            get("username"),
            get("realm"),
            get("nonce"),
            get("uri"),
            get("response"),
        ) else {
            return false;
        };
        if user != self.credentials.username || realm != REALM || nonce != self.nonce {
            return false;
        }
        let ha1 = md5_hex(&format!("{user}:{REALM}:{}", self.credentials.password));
        let ha2 = md5_hex(&format!("{method}:{uri}"));
        let expected = match (get("qop"), get("nc"), get("cnonce")) {
            (Some(qop), Some(nc), Some(cnonce)) => {
                md5_hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}"))
            }
            _ => md5_hex(&format!("{ha1}:{nonce}:{ha2}")),
        };
        expected.eq_ignore_ascii_case(response)
    }
}

/// Parses `k=v, k="v, quoted", ...` auth parameters.
fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some((name, after)) = rest.split_once('=') else {
            break;
        };
        let name = name.trim().trim_start_matches(',').trim().to_owned();
        let after = after.trim_start();
        let (value, remaining) = if let Some(q) = after.strip_prefix('"') {
            match q.find('"') {
                Some(end) => (q[..end].to_owned(), &q[end + 1..]),
                None => (q.to_owned(), ""),
            }
        } else {
            match after.find(',') {
                Some(end) => (after[..end].trim().to_owned(), &after[end..]),
                None => (after.trim().to_owned(), ""),
            }
        };
        out.push((name, value));
        rest = remaining.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(scheme: AuthScheme) -> Auth {
        Auth::new(
            Credentials {
                username: "admin".into(),
                password: "s3cret".into(),
            },
            scheme,
        )
    }

    #[test]
    fn basic_accepts_only_the_right_password() {
        let a = auth(AuthScheme::Basic);
        assert!(a.check("DESCRIBE", Some("Basic YWRtaW46czNjcmV0")));
        assert!(!a.check("DESCRIBE", Some("Basic YWRtaW46d3Jvbmc=")));
        assert!(!a.check("DESCRIBE", None));
        assert!(!auth(AuthScheme::Digest).check("DESCRIBE", Some("Basic YWRtaW46czNjcmV0")));
    }

    #[test]
    fn digest_with_and_without_qop() {
        let a = auth(AuthScheme::Digest);
        let ha1 = md5_hex(&format!("admin:{REALM}:s3cret"));
        let ha2 = md5_hex("DESCRIBE:rtsp://h/cam1");
        let plain = md5_hex(&format!("{ha1}:{}:{ha2}", a.nonce));
        let header = format!(
            "Digest username=\"admin\", realm=\"{REALM}\", nonce=\"{}\", uri=\"rtsp://h/cam1\", response=\"{plain}\"",
            a.nonce
        );
        assert!(a.check("DESCRIBE", Some(&header)));
        assert!(
            !a.check("SETUP", Some(&header)),
            "method is part of the hash"
        );
        let qop = md5_hex(&format!("{ha1}:{}:00000001:abc:auth:{ha2}", a.nonce));
        let header = format!(
            "Digest username=\"admin\", realm=\"{REALM}\", nonce=\"{}\", uri=\"rtsp://h/cam1\", qop=auth, nc=00000001, cnonce=\"abc\", response=\"{qop}\"",
            a.nonce
        );
        assert!(a.check("DESCRIBE", Some(&header)));
    }
}
