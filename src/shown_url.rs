//! URLs as they may be shown — in errors, logs, reports and records: without userinfo (`user:password@`),
//! query or fragment (`?access_token=…`), whatever the case of the scheme. Every URL that came from
//! settings, a secret or a peer goes through [`shown`] before it is displayed.

/// `url` without userinfo, query or fragment. Text that is not a URL is returned without anything
/// after a `?` or `#` and without anything before an `@` in its first path segment.
pub fn shown(url: &str) -> String {
    let url = url.trim();
    let without_query = url.split(['?', '#']).next().unwrap_or_default();
    let (scheme, rest) = match without_query.find("://") {
        Some(end) => without_query.split_at(end + 3),
        None => ("", without_query),
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}{}", &rest[at + 1..]),
        None => without_query.to_owned(),
    }
}

/// The scheme of `url`, lower-cased (`HTTPS://…` → `https`), if it has one.
pub fn scheme(url: &str) -> Option<String> {
    let end = url.trim().find("://")?;
    Some(url.trim()[..end].to_ascii_lowercase())
}

/// The host of an `http(s)://` URL, without port or userinfo, lower-cased.
pub fn host(url: &str) -> Option<String> {
    let url = url.trim();
    let rest = &url[url.find("://")? + 3..];
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = if let Some(bracketed) = authority.strip_prefix('[') {
        bracketed.split(']').next().unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// Whether credentials may be sent to `url`: over `https://`, or over `http://` only to a loopback
/// host (`localhost`, `127.0.0.0/8`, `::1`), where nothing crosses a network.
pub fn may_carry_credentials(url: &str) -> bool {
    match scheme(url).as_deref() {
        Some("https") => true,
        Some("http") => host(url).is_some_and(|host| {
            host == "localhost"
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_in_urls_are_never_shown() {
        for (url, expected) in [
            (
                "https://x-access-token:ghp_secret@github.com/alphagov/whitehall.git",
                "https://github.com/alphagov/whitehall.git",
            ),
            ("HTTPS://u:hunter2@h/{name}", "HTTPS://h/{name}"),
            (
                "https://git.example.com/{name}.git?access_token=hunter2",
                "https://git.example.com/{name}.git",
            ),
            ("http://h/x#hunter2", "http://h/x"),
            ("u:hunter2@h/x", "h/x"),
            ("https://h/a@b", "https://h/a@b"),
            ("dir:mirrors", "dir:mirrors"),
        ] {
            assert_eq!(shown(url), expected, "{url}");
        }
        assert_eq!(scheme("HTTP://h").as_deref(), Some("http"));
        assert_eq!(scheme("dir:x"), None);
    }

    #[test]
    fn credentials_go_over_http_only_to_loopback() {
        for ok in [
            "https://api.github.com",
            "HTTPS://git.example.com/{name}",
            "http://127.0.0.1:8080/x",
            "http://localhost/x",
            "http://[::1]:9/x",
            "http://127.1.2.3/x",
        ] {
            assert!(may_carry_credentials(ok), "{ok}");
        }
        for refused in [
            "http://git.example.com/{name}",
            "HTTP://10.0.0.1/x",
            "http://localhost.example.com/x",
            "http://u:p@127.0.0.1.evil.com/x",
            "ftp://127.0.0.1/x",
        ] {
            assert!(!may_carry_credentials(refused), "{refused}");
        }
        assert_eq!(
            host("https://u:p@Example.COM:443/x").as_deref(),
            Some("example.com")
        );
    }
}
