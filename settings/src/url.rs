//! The `url` setting: where the service is.

use alloc::string::String;

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

/// A parsed service URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub scheme: Scheme,
    /// `host[:port]`.
    pub authority: String,
    /// A path prefix without a trailing `/` (empty for the root).
    pub base_path: String,
}

/// Parses `http(s)://host[:port][/base/path]`.
///
/// Error messages describe the problem without repeating the URL, which may hold secrets in
/// places we refuse (user info).
pub fn parse(url: &str) -> Result<Endpoint, String> {
    let url = url.trim();
    let (scheme, rest) = if let Some(rest) = strip_prefix_ignore_case(url, "http://") {
        (Scheme::Http, rest)
    } else if let Some(rest) = strip_prefix_ignore_case(url, "https://") {
        (Scheme::Https, rest)
    } else {
        return Err("`url` must start with http:// or https://".into());
    };
    if rest.contains(['?', '#']) {
        return Err("`url` must not have a query or fragment".into());
    }
    let (authority, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    if authority.contains('@') {
        return Err("`url` must not carry credentials; use the `token` setting".into());
    }
    if authority.is_empty() {
        return Err("`url` has no host".into());
    }
    if authority
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '\\')
    {
        return Err("`url` host contains whitespace or control characters".into());
    }
    check_port(authority)?;
    if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("`url` path contains whitespace or control characters".into());
    }
    Ok(Endpoint {
        scheme,
        authority: authority.into(),
        base_path: path.trim_end_matches('/').into(),
    })
}

/// A port, where the host has one, is a number from 1 to 65535: `host:` and `host:99999`
/// would otherwise pass here and fail at the first call as a host that cannot be resolved.
fn check_port(authority: &str) -> Result<(), String> {
    // An IPv6 literal's colons are inside its brackets.
    let after_host = match authority.rfind(']') {
        Some(end) => authority.get(end + 1..).unwrap_or_default(),
        None => authority,
    };
    let Some((_, port)) = after_host.rsplit_once(':') else {
        return Ok(());
    };
    let digits = !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit());
    match port.parse::<u16>() {
        Ok(port) if digits && port > 0 => Ok(()),
        _ => Err("`url` port must be a number from 1 to 65535".into()),
    }
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| text.get(prefix.len()..))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts_ports_and_base_paths() {
        assert_eq!(
            parse("http://127.0.0.1:8787").unwrap(),
            Endpoint {
                scheme: Scheme::Http,
                authority: "127.0.0.1:8787".into(),
                base_path: "".into()
            }
        );
        let e = parse("HTTPS://kv.example/api/kv/").unwrap();
        assert_eq!(e.scheme, Scheme::Https);
        assert_eq!(e.authority, "kv.example");
        assert_eq!(e.base_path, "/api/kv");
    }

    #[test]
    fn rejects_without_echoing_the_url() {
        let error = parse("http://user:hunter2@host").unwrap_err();
        assert!(!error.contains("hunter2"));
        assert!(parse("ftp://host").is_err());
        assert!(parse("http://").is_err());
        assert!(parse("http://host/?x=1").is_err());
        assert!(parse("http://ho st/").is_err());
        assert!(parse("").is_err());
    }

    #[test]
    fn ports_are_checked() {
        for bad in [
            "http://127.0.0.1:",
            "http://127.0.0.1:99999",
            "http://127.0.0.1:0",
            "http://127.0.0.1:-1",
            "http://127.0.0.1:80a",
            "http://127.0.0.1:+80",
            "http://[::1]:",
            "http://[::1]:70000",
        ] {
            let error = parse(bad).unwrap_err();
            assert!(error.contains("port"), "{bad}: {error}");
        }
        for good in [
            "http://127.0.0.1:1",
            "http://h:65535/x",
            "http://[::1]:8080",
            "http://[::1]",
        ] {
            assert!(parse(good).is_ok(), "{good}");
        }
    }
}
