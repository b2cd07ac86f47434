//! Exhaustive tests of the plan: every kind of change under every policy.

use super::*;
use crate::refs::RefValue;

fn oid(n: u8) -> ObjectId {
    ObjectId::from_bytes_or_panic(&[n; 20])
}

fn refs(entries: &[(&str, u8)]) -> RefMap {
    entries
        .iter()
        .map(|(name, n)| (name.to_string(), RefValue::direct(oid(*n))))
        .collect()
}

fn policy() -> Policy {
    Policy {
        prune: true,
        protected: vec![],
        diverged: DivergedPolicy::Overwrite,
        max_refs_per_push: 4000,
        refuses_40_hex_branch_names: false,
        backup_stamp: "20261121T100000Z".into(),
    }
}

fn kinds(plan: &Plan) -> Vec<(&str, ChangeKind)> {
    plan.changes
        .iter()
        .map(|c| (c.name.as_str(), c.kind))
        .collect()
}

fn commands(plan: &Plan) -> Vec<(String, ObjectId, ObjectId)> {
    plan.all_batches()
        .flat_map(|b| &b.commands)
        .map(|c| (c.name.clone(), c.old, c.new))
        .collect()
}

#[test]
fn identical_sides_need_nothing() {
    let side = refs(&[("refs/heads/main", 1), ("refs/tags/v1", 2)]);
    let plan = plan(&side, &side, &Ancestry::new(), &policy());
    assert!(plan.is_up_to_date());
    assert!(plan.changes.is_empty());
}

#[test]
fn empty_target_gets_everything_created_with_one_fetch() {
    let source = refs(&[
        ("refs/heads/main", 1),
        ("refs/heads/dev", 2),
        ("refs/tags/v1", 1),
    ]);
    let plan = plan(&source, &RefMap::new(), &Ancestry::new(), &policy());
    assert_eq!(
        kinds(&plan),
        vec![
            ("refs/heads/dev", ChangeKind::Create),
            ("refs/heads/main", ChangeKind::Create),
            ("refs/tags/v1", ChangeKind::Create)
        ]
    );
    assert_eq!(plan.batches.len(), 1);
    assert_eq!(plan.batches[0].wants, vec![oid(1), oid(2)]);
    assert!(plan.batches[0].haves.is_empty());
    assert!(plan.batches[0].commands.iter().all(|c| c.old.is_null()));
}

#[test]
fn fast_forward_is_an_update_and_sends_target_tips_as_haves() {
    let source = refs(&[("refs/heads/main", 2)]);
    let target = refs(&[("refs/heads/main", 1), ("refs/heads/other", 9)]);
    let ancestry = Ancestry::from([((oid(1), oid(2)), true)]);
    let mut p = policy();
    p.prune = false;
    let plan = plan(&source, &target, &ancestry, &p);
    assert_eq!(kinds(&plan), vec![("refs/heads/main", ChangeKind::Update)]);
    assert_eq!(plan.batches[0].wants, vec![oid(2)]);
    assert_eq!(plan.batches[0].haves, vec![oid(1), oid(9)]);
}

#[test]
fn diverged_branch_under_each_policy() {
    let source = refs(&[("refs/heads/main", 2)]);
    let target = refs(&[("refs/heads/main", 1)]);
    for (answer, why) in [
        (Some(false), "not an ancestor"),
        (None, "could not be decided"),
    ] {
        let ancestry: Ancestry = answer.map(|a| ((oid(1), oid(2)), a)).into_iter().collect();

        let overwrite = plan(&source, &target, &ancestry, &policy());
        assert_eq!(
            kinds(&overwrite),
            vec![("refs/heads/main", ChangeKind::Force)]
        );
        assert_eq!(
            commands(&overwrite),
            vec![("refs/heads/main".into(), oid(1), oid(2))]
        );

        let mut p = policy();
        p.diverged = DivergedPolicy::Keep;
        let keep = plan(&source, &target, &ancestry, &p);
        assert_eq!(kinds(&keep), vec![("refs/heads/main", ChangeKind::Keep)]);
        assert!(keep.changes[0].reason.as_deref().unwrap().contains(why));
        assert!(keep.is_up_to_date(), "a kept ref is not pushed");

        p.diverged = DivergedPolicy::Backup;
        let backup = plan(&source, &target, &ancestry, &p);
        assert_eq!(kinds(&backup), vec![("refs/heads/main", ChangeKind::Force)]);
        assert_eq!(
            commands(&backup),
            vec![
                (
                    "refs/mirror-backup/20261121T100000Z/heads/main".into(),
                    null(),
                    oid(1)
                ),
                ("refs/heads/main".into(), oid(1), oid(2)),
            ],
            "the backup is written before the overwrite"
        );
        assert_eq!(backup.backup_batches.len(), 1);
        assert_eq!(
            backup.backup_batches[0].commands[0].name,
            "refs/mirror-backup/20261121T100000Z/heads/main",
            "the backup travels in a push of its own, before the forced update"
        );
        assert!(
            backup.backup_batches[0].wants.is_empty(),
            "the backup needs no objects"
        );
        assert!(backup.changes[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("refs/mirror-backup/"));
        assert_eq!(backup.batches[0].wants, vec![oid(2)]);
    }
}

#[test]
fn a_backup_never_reuses_a_name_an_earlier_run_took() {
    let source = refs(&[("refs/heads/main", 2)]);
    let mut target = refs(&[("refs/heads/main", 1)]);
    // A run in the same second already backed up other refs under this stamp.
    target.insert(
        "refs/mirror-backup/20261121T100000Z/heads/main".into(),
        RefValue::direct(oid(7)),
    );
    target.insert(
        "refs/mirror-backup/20261121T100000Z-2/heads/x".into(),
        RefValue::direct(oid(8)),
    );
    let mut p = policy();
    p.diverged = DivergedPolicy::Backup;
    let planned = plan(&source, &target, &Ancestry::new(), &p);
    assert_eq!(
        planned.backups[0].name,
        "refs/mirror-backup/20261121T100000Z-3/heads/main"
    );
    assert!(planned
        .all_batches()
        .flat_map(|b| &b.commands)
        .all(|c| !target.contains_key(&c.name) || !c.old.is_null()));
}

#[test]
fn a_forced_update_waits_for_its_backup_to_be_confirmed() {
    let source = refs(&[("refs/heads/main", 2), ("refs/heads/other", 5)]);
    let target = refs(&[("refs/heads/main", 1), ("refs/heads/other", 4)]);
    let mut p = policy();
    p.diverged = DivergedPolicy::Backup;
    p.max_refs_per_push = 1;
    let planned = plan(&source, &target, &Ancestry::new(), &p);
    assert_eq!(planned.backup_batches.len(), 2);
    let main_backup = "refs/mirror-backup/20261121T100000Z/heads/main";
    let other_backup = "refs/mirror-backup/20261121T100000Z/heads/other";

    // The target took the backup of `other` but refused the one of `main`.
    let mut after = target.clone();
    after.insert(other_backup.into(), RefValue::direct(oid(4)));
    let mut confirmed = planned.clone();
    confirmed.withhold_unbacked(
        &after,
        &[(main_backup.into(), "pre-receive hook declined".into())],
        1,
    );
    assert_eq!(
        kinds(&confirmed),
        vec![
            ("refs/heads/main", ChangeKind::Keep),
            ("refs/heads/other", ChangeKind::Force)
        ]
    );
    let reason = confirmed.changes[0].reason.as_deref().unwrap();
    assert!(
        reason.contains("pre-receive hook declined") && reason.contains(main_backup),
        "{reason}"
    );
    let forced: Vec<_> = confirmed
        .batches
        .iter()
        .flat_map(|b| &b.commands)
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(forced, vec!["refs/heads/other"]);

    // A backup that was "accepted" but is not on the target is not trusted either.
    let mut silent = planned.clone();
    let mut half = target.clone();
    half.insert(other_backup.into(), RefValue::direct(oid(9)));
    silent.withhold_unbacked(&half, &[], 1);
    assert!(silent.batches.is_empty(), "{:?}", silent.batches);
    assert!(silent
        .changes
        .iter()
        .all(|c| c.kind == ChangeKind::Keep
            && c.reason.as_deref().unwrap().contains("does not show it")));

    // All confirmed: nothing changes.
    let mut all = target.clone();
    all.insert(main_backup.into(), RefValue::direct(oid(1)));
    all.insert(other_backup.into(), RefValue::direct(oid(4)));
    let mut fine = planned.clone();
    fine.withhold_unbacked(&all, &[], 1);
    assert_eq!(fine.batches, planned.batches);
    assert_eq!(fine.changes, planned.changes);
}

#[test]
fn moved_tags_are_diverged_whatever_the_ancestry() {
    let source = refs(&[("refs/tags/v1", 2)]);
    let target = refs(&[("refs/tags/v1", 1)]);
    let ancestry = Ancestry::from([((oid(1), oid(2)), true)]);
    assert_eq!(
        kinds(&plan(&source, &target, &ancestry, &policy())),
        vec![("refs/tags/v1", ChangeKind::Force)]
    );
    let mut p = policy();
    p.diverged = DivergedPolicy::Keep;
    assert_eq!(
        kinds(&plan(&source, &target, &ancestry, &p)),
        vec![("refs/tags/v1", ChangeKind::Keep)]
    );
    assert!(
        ancestry_questions(&source, &target).is_empty(),
        "tags need no ancestry"
    );
}

#[test]
fn deleted_refs_are_pruned_only_when_prune_is_on() {
    let source = refs(&[("refs/heads/main", 1)]);
    let target = refs(&[
        ("refs/heads/main", 1),
        ("refs/heads/gone", 2),
        ("refs/tags/old", 3),
    ]);
    let plan_on = plan(&source, &target, &Ancestry::new(), &policy());
    assert_eq!(
        kinds(&plan_on),
        vec![
            ("refs/heads/gone", ChangeKind::Delete),
            ("refs/tags/old", ChangeKind::Delete)
        ]
    );
    assert!(
        !plan_on.batches[0].sends_pack(),
        "a delete-only push sends no pack"
    );
    assert!(plan_on.batches[0].wants.is_empty());

    let mut p = policy();
    p.prune = false;
    let plan_off = plan(&source, &target, &Ancestry::new(), &p);
    assert!(plan_off.is_up_to_date());
    assert!(plan_off.changes.is_empty());
}

#[test]
fn refs_outside_heads_and_tags_and_backups_are_never_touched() {
    let source = refs(&[("refs/heads/main", 1), ("refs/pull/1/head", 5)]);
    let target = refs(&[
        ("refs/heads/main", 1),
        ("refs/mirror-backup/x/heads/main", 2),
        ("refs/notes/commits", 3),
        ("refs/pull/2/head", 4),
    ]);
    let plan = plan(&source, &target, &Ancestry::new(), &policy());
    assert!(plan.is_up_to_date());
    assert!(plan.changes.is_empty());
}

#[test]
fn a_source_without_refs_never_prunes() {
    let target = refs(&[
        ("refs/heads/main", 1),
        ("refs/tags/v1", 2),
        ("refs/notes/x", 3),
    ]);
    let plan = plan(&RefMap::new(), &target, &Ancestry::new(), &policy());
    assert!(plan.is_up_to_date());
    assert_eq!(
        kinds(&plan),
        vec![
            ("refs/heads/main", ChangeKind::Keep),
            ("refs/tags/v1", ChangeKind::Keep)
        ]
    );
    assert!(plan.changes[0]
        .reason
        .as_deref()
        .unwrap()
        .contains("no branches or tags"));
}

#[test]
fn empty_source_and_empty_target_are_up_to_date() {
    let plan = plan(&RefMap::new(), &RefMap::new(), &Ancestry::new(), &policy());
    assert!(plan.is_up_to_date());
    assert!(plan.changes.is_empty());
}

#[test]
fn protected_refs_are_never_created_updated_or_deleted() {
    let source = refs(&[
        ("refs/heads/main", 2),
        ("refs/heads/security/new", 7),
        ("refs/heads/security/moved", 8),
    ]);
    let target = refs(&[
        ("refs/heads/main", 1),
        ("refs/heads/security/fix", 3),
        ("refs/heads/security/moved", 4),
    ]);
    let mut p = policy();
    p.protected = vec![RefGlob::new("refs/heads/security/*")];
    let ancestry = Ancestry::from([((oid(1), oid(2)), true)]);
    let plan = plan(&source, &target, &ancestry, &p);
    assert_eq!(
        kinds(&plan),
        vec![
            ("refs/heads/main", ChangeKind::Update),
            ("refs/heads/security/fix", ChangeKind::Keep),
            ("refs/heads/security/moved", ChangeKind::Keep),
            ("refs/heads/security/new", ChangeKind::Keep),
        ]
    );
    assert_eq!(
        commands(&plan),
        vec![("refs/heads/main".into(), oid(1), oid(2))]
    );
    assert!(plan.changes[1]
        .reason
        .as_deref()
        .unwrap()
        .contains("refs/heads/security/*"));
}

#[test]
fn forty_hex_branch_names_are_skipped_only_for_targets_that_refuse_them() {
    let hex = "refs/heads/0123456789abcdef0123456789abcdef01234567";
    let source = refs(&[(hex, 1), ("refs/heads/main", 1)]);
    let mut p = policy();
    p.refuses_40_hex_branch_names = true;
    let refused = plan(&source, &RefMap::new(), &Ancestry::new(), &p);
    assert_eq!(
        kinds(&refused),
        vec![
            (hex, ChangeKind::Skip),
            ("refs/heads/main", ChangeKind::Create)
        ]
    );
    assert_eq!(commands(&refused).len(), 1);
    let accepted = plan(&source, &RefMap::new(), &Ancestry::new(), &policy());
    assert_eq!(commands(&accepted).len(), 2);
}

#[test]
fn large_changes_are_split_into_batches_that_chain_their_haves() {
    let mut entries: Vec<(String, u8)> = (0..10)
        .map(|i| (format!("refs/tags/t{i}"), 10 + i as u8))
        .collect();
    entries.push(("refs/heads/main".into(), 1));
    let source: RefMap = entries
        .iter()
        .map(|(n, o)| (n.clone(), RefValue::direct(oid(*o))))
        .collect();
    let target = refs(&[("refs/heads/gone", 9)]);
    let mut p = policy();
    p.max_refs_per_push = 4;
    let plan = plan(&source, &target, &Ancestry::new(), &p);
    assert_eq!(plan.batches.len(), 3);
    assert!(plan.batches.iter().all(|b| b.commands.len() <= 4));
    assert!(
        plan.batches[0].commands[0].is_delete(),
        "deletions go first"
    );
    assert_eq!(
        plan.batches[0].commands[1].name, "refs/heads/main",
        "then branches"
    );
    // Each batch's haves include what the earlier batches pushed.
    for (i, batch) in plan.batches.iter().enumerate().skip(1) {
        for earlier in &plan.batches[..i] {
            for c in earlier.commands.iter().filter(|c| !c.is_delete()) {
                assert!(batch.haves.contains(&c.new));
            }
        }
    }
    let all: Vec<_> = commands(&plan);
    assert_eq!(all.len(), 12);
}

#[test]
fn a_new_ref_on_an_object_the_target_has_needs_no_objects() {
    let source = refs(&[("refs/heads/main", 1), ("refs/tags/v1", 1)]);
    let target = refs(&[("refs/heads/main", 1)]);
    let plan = plan(&source, &target, &Ancestry::new(), &policy());
    assert_eq!(kinds(&plan), vec![("refs/tags/v1", ChangeKind::Create)]);
    assert!(plan.batches[0].wants.is_empty());
    assert!(
        plan.batches[0].sends_pack(),
        "a push with no new objects still sends the empty pack"
    );
}

#[test]
fn ancestry_questions_cover_changed_branches_only() {
    let source = refs(&[
        ("refs/heads/a", 2),
        ("refs/heads/b", 3),
        ("refs/heads/new", 4),
        ("refs/tags/t", 5),
    ]);
    let target = refs(&[("refs/heads/a", 1), ("refs/heads/b", 3), ("refs/tags/t", 6)]);
    assert_eq!(ancestry_questions(&source, &target), vec![(oid(1), oid(2))]);
}

#[test]
fn expected_target_applies_every_batch() {
    let source = refs(&[("refs/heads/main", 2)]);
    let target = refs(&[("refs/heads/main", 1), ("refs/heads/gone", 3)]);
    let plan = plan(
        &source,
        &target,
        &Ancestry::from([((oid(1), oid(2)), true)]),
        &policy(),
    );
    let expected = plan.expected_target(&target);
    assert_eq!(expected["refs/heads/main"], Some(oid(2)));
    assert_eq!(expected["refs/heads/gone"], None);
}

/// Properties that hold for every plan, over random refs on both sides, random ancestry answers and
/// random policies.
mod properties {
    use super::*;
    use proptest::prelude::*;

    const NAMES: [&str; 9] = [
        "refs/heads/main",
        "refs/heads/dev",
        "refs/heads/security/fix",
        "refs/heads/a/b",
        "refs/tags/v1",
        "refs/tags/v2",
        "refs/mirror-backup/old/heads/main",
        // Taken by an earlier run in the same second as this one.
        "refs/mirror-backup/20261201T070000Z/heads/main",
        "refs/pull/1/head",
    ];

    fn ref_map() -> impl Strategy<Value = RefMap> {
        proptest::collection::btree_map(
            proptest::sample::select(&NAMES[..]).prop_map(str::to_owned),
            (1u8..7).prop_map(|n| RefValue::direct(oid(n))),
            0..NAMES.len(),
        )
        .prop_map(|m| m.into_iter().collect())
    }

    fn policy_strategy() -> impl Strategy<Value = Policy> {
        (
            any::<bool>(),
            any::<bool>(),
            prop_oneof![
                Just(DivergedPolicy::Overwrite),
                Just(DivergedPolicy::Keep),
                Just(DivergedPolicy::Backup)
            ],
            1usize..5,
        )
            .prop_map(|(prune, protect, diverged, max)| Policy {
                prune,
                protected: if protect {
                    vec![RefGlob::new("refs/heads/security/*")]
                } else {
                    vec![]
                },
                diverged,
                max_refs_per_push: max,
                refuses_40_hex_branch_names: false,
                backup_stamp: "20261201T070000Z".into(),
            })
    }

    fn ancestry_strategy() -> impl Strategy<Value = Ancestry> {
        proptest::collection::hash_map((1u8..7, 1u8..7), any::<bool>(), 0..20).prop_map(|m| {
            m.into_iter()
                .map(|((a, b), answer)| ((oid(a), oid(b)), answer))
                .collect()
        })
    }

    fn all_commands(plan: &Plan) -> Vec<&Command> {
        plan.all_batches().flat_map(|b| &b.commands).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn an_empty_source_never_changes_anything(target in ref_map(), policy in policy_strategy()) {
            let plan = plan(&RefMap::new(), &target, &Ancestry::new(), &policy);
            prop_assert!(plan.is_up_to_date());
            prop_assert!(plan.changes.iter().all(|c| c.kind == ChangeKind::Keep));
        }

        #[test]
        fn protected_and_foreign_refs_are_never_in_any_command(
            source in ref_map(), target in ref_map(), ancestry in ancestry_strategy(),
            policy in policy_strategy(),
        ) {
            let plan = plan(&source, &target, &ancestry, &policy);
            for command in all_commands(&plan) {
                prop_assert!(
                    !policy.protected.iter().any(|g| g.matches(&command.name)),
                    "protected {} in a command", command.name
                );
                let is_backup = command.name.starts_with(BACKUP_NAMESPACE);
                prop_assert!(refs::is_mirrored(&command.name) || is_backup, "{}", command.name);
                if is_backup {
                    prop_assert!(!target.contains_key(&command.name), "an old backup is touched");
                }
            }
        }

        #[test]
        fn every_forced_branch_under_backup_has_its_backup_confirmed_first(
            source in ref_map(), target in ref_map(), ancestry in ancestry_strategy(),
            policy in policy_strategy(), confirmed in proptest::collection::vec(any::<bool>(), 8),
        ) {
            let mut plan = plan(&source, &target, &ancestry, &policy);
            // A non-fast-forward command in the plan (old not null, not known to be an ancestor).
            let forced = |c: &Command| {
                !c.old.is_null()
                    && !c.is_delete()
                    && refs::is_mirrored(&c.name)
                    && (c.name.starts_with(TAGS) || ancestry.get(&(c.old, c.new)) != Some(&true))
            };
            if policy.diverged == DivergedPolicy::Backup {
                for command in plan.batches.iter().flat_map(|b| &b.commands).filter(|c| forced(c)) {
                    let backup = plan.backups.iter().find(|b| b.of == command.name);
                    prop_assert!(backup.is_some(), "{} forced without a backup", command.name);
                    let backup = backup.unwrap();
                    prop_assert_eq!(backup.value, command.old);
                    prop_assert!(plan.backup_batches.iter().flat_map(|b| &b.commands)
                        .any(|c| c.name == backup.name && c.new == command.old));
                }
            } else {
                prop_assert!(plan.backup_batches.is_empty());
            }
            // The target confirms some backups and not others: only confirmed ones let their ref be forced.
            let mut after = target.clone();
            for (backup, ok) in plan.backups.iter().zip(confirmed.iter().cycle()) {
                if *ok {
                    after.insert(backup.name.clone(), RefValue::direct(backup.value));
                }
            }
            let backups = plan.backups.clone();
            plan.withhold_unbacked(&after, &[], policy.max_refs_per_push);
            for command in plan.batches.iter().flat_map(|b| &b.commands) {
                if let Some(backup) = backups.iter().find(|b| b.of == command.name) {
                    prop_assert_eq!(after.get(&backup.name).map(|v| v.oid), Some(backup.value));
                }
            }
            for backup in &backups {
                if !after.contains_key(&backup.name) {
                    let change = plan.changes.iter().find(|c| c.name == backup.of);
                    prop_assert_eq!(change.map(|c| c.kind), Some(ChangeKind::Keep));
                }
            }
        }

        #[test]
        fn wants_haves_and_batch_sizes_hold(
            source in ref_map(), target in ref_map(), ancestry in ancestry_strategy(),
            policy in policy_strategy(),
        ) {
            let plan = plan(&source, &target, &ancestry, &policy);
            let source_values: BTreeSet<ObjectId> = source.values().map(|v| v.oid).collect();
            let mut known: BTreeSet<ObjectId> = target.values().map(|v| v.oid).collect();
            for batch in plan.all_batches() {
                prop_assert!(batch.commands.len() <= policy.max_refs_per_push);
                prop_assert!(!batch.commands.is_empty());
                for want in &batch.wants {
                    prop_assert!(source_values.contains(want), "want {} is no source value", want);
                }
                for have in &batch.haves {
                    prop_assert!(known.contains(have), "have {} is neither a target value nor an earlier tip", have);
                }
                known.extend(batch.commands.iter().filter(|c| !c.is_delete()).map(|c| c.new));
            }
        }
    }
}
