//! Who may change state through the console. Reads are open to whoever reaches the port (it
//! binds to loopback unless told otherwise); every action needs:
//! - the admin token (`--http-admin-token-file`) as `Authorization: Bearer TOKEN`, which a
//!   browser never sends on its own, so another site's page cannot borrow it;
//! - the CSRF token: the `cb_csrf` cookie the page was given, echoed in `X-CSRF-Token`
//!   (double submit: a page of another origin can neither read the cookie nor set the header);
//! - no `Origin` of another host, where the browser gives one.
//!
//! Without a token file the console is read-only and every action says so.

use axum::http::{header, HeaderMap, StatusCode};

/// The cookie that carries the CSRF token, and the header that must echo it.
pub const CSRF_COOKIE: &str = "cb_csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";

pub struct Guard {
    admin_token: Option<String>,
}

impl Guard {
    pub fn new(admin_token: Option<String>) -> Self {
        Guard { admin_token }
    }

    pub fn read_only(&self) -> bool {
        self.admin_token.is_none()
    }

    /// Whether the request may change state; if not, its status and why.
    pub fn allow(&self, headers: &HeaderMap) -> Result<(), (StatusCode, String)> {
        let Some(token) = &self.admin_token else {
            return Err((StatusCode::FORBIDDEN, "the console is read-only: start it with --http-admin-token-file to allow actions".into()));
        };
        let given = text(headers, header::AUTHORIZATION.as_str()).and_then(|v| v.strip_prefix("Bearer "));
        if !given.is_some_and(|given| same(given.as_bytes(), token.as_bytes())) {
            return Err((StatusCode::UNAUTHORIZED, "an action needs the admin token (Authorization: Bearer TOKEN)".into()));
        }
        let cookie = text(headers, header::COOKIE.as_str()).and_then(|c| cookie_value(c, CSRF_COOKIE));
        let echoed = text(headers, CSRF_HEADER);
        match (cookie, echoed) {
            (Some(cookie), Some(echoed)) if !cookie.is_empty() && same(cookie.as_bytes(), echoed.as_bytes()) => {}
            _ => return Err((StatusCode::FORBIDDEN, format!("CSRF check failed: the {CSRF_HEADER} header must echo the {CSRF_COOKIE} cookie"))),
        }
        if let (Some(origin), Some(host)) = (text(headers, header::ORIGIN.as_str()), text(headers, header::HOST.as_str())) {
            let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
            if origin_host != host {
                return Err((StatusCode::FORBIDDEN, format!("an action from origin {origin} is refused on {host}")));
            }
        }
        Ok(())
    }
}

fn text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The value of cookie `name` in a Cookie header.
fn cookie_value<'a>(cookies: &'a str, name: &str) -> Option<&'a str> {
    cookies.split(';').filter_map(|c| c.trim().split_once('=')).find(|(k, _)| *k == name).map(|(_, v)| v)
}

/// Compares without stopping at the first difference, so the time taken tells nothing of
/// how much of a guess was right.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// A fresh CSRF token: 16 random bytes in hex, from the kernel.
pub fn new_csrf_token() -> String {
    let mut bytes = [0u8; 16];
    // SAFETY: the buffer is ours and its length is passed with it.
    let got = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    assert_eq!(got, bytes.len() as isize, "getrandom gave {got} of {} bytes", bytes.len());
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, v.parse().expect("a header value"));
        }
        map
    }

    const GOOD: [(&str, &str); 4] =
        [("authorization", "Bearer s3cret"), ("cookie", "a=1; cb_csrf=abc"), ("x-csrf-token", "abc"), ("host", "127.0.0.1:8080")];

    /// The right token, cookie and echo pass; each one missing or wrong is refused with its
    /// own status; a read-only console refuses everything.
    #[test]
    fn actions_need_token_csrf_and_origin() {
        let guard = Guard::new(Some("s3cret".into()));
        assert_eq!(guard.allow(&headers(&GOOD)), Ok(()));
        let with = |i: usize, v: (&'static str, &str)| {
            let mut h = GOOD;
            h[i] = v;
            guard.allow(&headers(&h)).map_err(|(status, _)| status)
        };
        assert_eq!(with(0, ("authorization", "Bearer nope")), Err(StatusCode::UNAUTHORIZED));
        assert_eq!(with(0, ("authorization", "s3cret")), Err(StatusCode::UNAUTHORIZED));
        assert_eq!(with(2, ("x-csrf-token", "abd")), Err(StatusCode::FORBIDDEN));
        assert_eq!(with(1, ("cookie", "cb_csrf=")), Err(StatusCode::FORBIDDEN));
        let mut from_elsewhere = headers(&GOOD);
        from_elsewhere.insert("origin", "https://evil.example".parse().expect("a value"));
        assert_eq!(guard.allow(&from_elsewhere).map_err(|(s, _)| s), Err(StatusCode::FORBIDDEN));
        let mut same_origin = headers(&GOOD);
        same_origin.insert("origin", "http://127.0.0.1:8080".parse().expect("a value"));
        assert_eq!(guard.allow(&same_origin), Ok(()));
        let read_only = Guard::new(None);
        assert!(read_only.read_only());
        assert_eq!(read_only.allow(&headers(&GOOD)).map_err(|(s, _)| s), Err(StatusCode::FORBIDDEN));
    }

    #[test]
    fn csrf_tokens_differ() {
        let (a, b) = (new_csrf_token(), new_csrf_token());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }
}
