//! The binary carries one HTTP and TLS stack: hyper 1 and rustls 0.23 (the AWS SDKs on their current
//! HTTPS client, not the legacy hyper 0.14 connector). Cargo.lock is held to that here, so that a
//! feature flag that brings the old stack back fails the build's tests.

/// `(name, version prefix)` of the legacy stack, each of which has had advisories published against it.
const LEGACY: [(&str, &str); 4] = [
    ("hyper", "0.14."),
    ("rustls", "0.21."),
    ("rustls-webpki", "0.101."),
    ("h2", "0.3."),
];

#[test]
fn the_lockfile_holds_no_legacy_http_or_tls_stack() {
    let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.lock"))
        .expect("Cargo.lock is readable");
    let mut found = Vec::new();
    let mut name = None;
    for line in lock.lines() {
        if let Some(value) = line.strip_prefix("name = ") {
            name = Some(value.trim_matches('"').to_owned());
        } else if let Some(version) = line.strip_prefix("version = ") {
            let version = version.trim_matches('"');
            if let Some(name) = name.take() {
                if LEGACY
                    .iter()
                    .any(|(legacy, prefix)| *legacy == name && version.starts_with(prefix))
                {
                    found.push(format!("{name} {version}"));
                }
            }
        }
    }
    assert!(found.is_empty(), "legacy crates in Cargo.lock: {found:?}");
}
