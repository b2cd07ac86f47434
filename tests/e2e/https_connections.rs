//! Git over HTTPS, sources and targets alike: certificates are checked against the system's trusted
//! roots (here a test authority given by `SSL_CERT_FILE`), and a certificate from anyone else is
//! refused before any credential or object is sent.

use crate::support::fixtures::{assert_fsck, assert_same_refs, refs_of};
use crate::support::tls_front::{TestCa, TlsFront};
use crate::support::World;

#[tokio::test(flavor = "multi_thread")]
async fn https_sources_and_targets_are_verified_against_the_trusted_roots() {
    let world = World::new().await;
    let repo = world.source("whitehall");
    let first = repo.commit("main", "a.txt", "1");
    repo.annotated_tag("v1", &first, "v1");
    let target = world.target_repo("whitehall");

    let trusted = TestCa::create(world.dir.path(), "trusted-ca");
    let source_front = TlsFront::start(&trusted, world.source_server.addr()).await;
    let target_front = TlsFront::start(&trusted, world.target_server.addr()).await;
    world.change_listing(|listing| {
        for fake in listing.iter_mut() {
            fake.clone_url = source_front.url(&format!("{}.git", fake.name));
        }
    });
    let target_template = target_front.url("{name}.git");
    let args = ["run", "--json", "--target", target_template.as_str()];
    let trusting = |ca: &TestCa| vec![("SSL_CERT_FILE", ca.ca_file.display().to_string())];
    let env_of = |pairs: &[(&'static str, String)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect::<Vec<_>>()
    };

    let out = world.run_with(&args, &env_of(&trusting(&trusted))).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    out.assert_no_secrets();
    assert_eq!(out.repo("whitehall")["status"], "updated");
    assert_same_refs(&repo.bare, &target);
    assert_fsck(&target);

    let again = world.run_with(&args, &env_of(&trusting(&trusted))).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.repo("whitehall")["status"], "up_to_date");

    // The same servers, but the binary trusts another authority only: refused, nothing changes.
    let stranger = TestCa::create(world.dir.path(), "another-ca");
    repo.commit("main", "a.txt", "2");
    let before = refs_of(&target);
    world.source_server.clear_requests();
    world.target_server.clear_requests();
    let refused = world.run_with(&args, &env_of(&trusting(&stranger))).await;
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    refused.assert_no_secrets();
    let entry = refused.repo("whitehall");
    assert_eq!(entry["status"], "failed", "{entry:#}");
    let error = entry["error"].as_str().unwrap_or_default().to_lowercase();
    assert!(
        error.contains("certificate"),
        "the error says the certificate was refused: {entry:#}"
    );
    assert_eq!(refs_of(&target), before, "the target is unchanged");
    assert!(
        world.source_server.requests().is_empty() && world.target_server.requests().is_empty(),
        "no request reached a server whose certificate was refused"
    );
}
