//! Server-to-server authentication: `X-Auth-Token` + `X-Store-Hash` (current) or the legacy
//! `authToken` header alone. Presented tokens are compared, never logged or echoed.

use axum::http::HeaderMap;

use super::reply::{self, ApiReply};
use super::SandboxStore;

const X_AUTH_TOKEN: &str = "x-auth-token";
const X_STORE_HASH: &str = "x-store-hash";
const LEGACY_AUTH_TOKEN: &str = "authtoken";

/// The store hash the request is authenticated for, or the 401 to answer.
pub(crate) fn authenticate<'a>(
    stores: &'a [SandboxStore],
    headers: &HeaderMap,
) -> Result<&'a str, ApiReply> {
    let token = header(headers, X_AUTH_TOKEN)?;
    let hash = header(headers, X_STORE_HASH)?;
    let legacy = header(headers, LEGACY_AUTH_TOKEN)?;

    // The docs warn that mixing the styles "will have unexpected results"; refusing it
    // outright makes a client that sends both fail here rather than in production.
    if legacy.is_some() && (token.is_some() || hash.is_some()) {
        return Err(reply::unauthorized(
            "Send either X-Auth-Token with X-Store-Hash or the legacy authToken header, not both",
        ));
    }
    let matched = match (token, hash, legacy) {
        (Some(token), Some(hash), None) => stores
            .iter()
            .find(|store| secure_eq(&store.token, token) && store.store_hash == hash),
        (None, None, Some(legacy)) => stores
            .iter()
            .find(|store| secure_eq(&store.legacy_token, legacy)),
        (Some(_), None, None) => {
            return Err(reply::unauthorized(
                "X-Store-Hash header is required with X-Auth-Token",
            ))
        }
        (None, Some(_), None) => {
            return Err(reply::unauthorized(
                "X-Auth-Token header is required with X-Store-Hash",
            ))
        }
        _ => return Err(reply::unauthorized("Missing authentication headers")),
    };
    matched
        .map(|store| store.store_hash.as_str())
        .ok_or_else(|| reply::unauthorized("Invalid access token or store hash"))
}

/// A header as text; an empty value counts as absent, a non-UTF-8 one is refused.
fn header<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, ApiReply> {
    match headers.get(name) {
        None => Ok(None),
        Some(value) => match value.to_str() {
            Ok("") => Ok(None),
            Ok(text) => Ok(Some(text)),
            Err(_) => Err(reply::unauthorized("Invalid authentication header")),
        },
    }
}

/// Comparison whose time does not depend on where the strings differ.
fn secure_eq(expected: &str, presented: &str) -> bool {
    let (expected, presented) = (expected.as_bytes(), presented.as_bytes());
    let mut difference = expected.len() ^ presented.len();
    for (index, byte) in presented.iter().enumerate() {
        let other = expected.get(index).copied().unwrap_or(0);
        difference |= usize::from(byte ^ other);
    }
    difference == 0
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderName, HeaderValue, StatusCode};

    use super::*;

    fn stores() -> Vec<SandboxStore> {
        vec![
            SandboxStore::new("alpha", "alpha-token", "alpha-legacy"),
            SandboxStore::new("beta", "beta-token", "beta-legacy"),
        ]
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(
                HeaderName::from_static(name),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn status(result: Result<&str, ApiReply>) -> StatusCode {
        result.err().map_or(StatusCode::OK, |reply| reply.status)
    }

    #[test]
    fn accepts_each_style_alone() {
        let stores = stores();
        let current = headers(&[("x-auth-token", "beta-token"), ("x-store-hash", "beta")]);
        assert_eq!(authenticate(&stores, &current).ok(), Some("beta"));
        let legacy = headers(&[("authtoken", "alpha-legacy")]);
        assert_eq!(authenticate(&stores, &legacy).ok(), Some("alpha"));
    }

    #[test]
    fn refuses_wrong_missing_mismatched_or_mixed_credentials() {
        let stores = stores();
        let cases: &[&[(&'static str, &str)]] = &[
            &[],
            &[("x-auth-token", "wrong"), ("x-store-hash", "alpha")],
            &[("x-auth-token", "alpha-token"), ("x-store-hash", "beta")],
            &[("x-auth-token", "alpha-token")],
            &[("x-store-hash", "alpha")],
            &[("authtoken", "alpha-token")],
            &[
                ("x-auth-token", "alpha-token"),
                ("x-store-hash", "alpha"),
                ("authtoken", "alpha-legacy"),
            ],
        ];
        for case in cases {
            assert_eq!(
                status(authenticate(&stores, &headers(case))),
                StatusCode::UNAUTHORIZED,
                "{case:?}"
            );
        }
    }

    #[test]
    fn error_never_echoes_the_token() {
        let stores = stores();
        let presented = headers(&[("x-auth-token", "secret-guess"), ("x-store-hash", "alpha")]);
        let Err(reply) = authenticate(&stores, &presented) else {
            panic!("must be refused")
        };
        assert!(!format!("{:?}", reply.body).contains("secret-guess"));
        assert!(!format!("{:?}", stores[0]).contains("alpha-token"));
    }

    #[test]
    fn secure_eq_is_equality() {
        assert!(secure_eq("abc", "abc"));
        assert!(!secure_eq("abc", "abd"));
        assert!(!secure_eq("abc", "ab"));
        assert!(!secure_eq("ab", "abc"));
        assert!(!secure_eq("", "a"));
    }
}
