//! Which of the listed repositories a run mirrors: topic, include/exclude patterns, archived, forks,
//! and an explicit `--repo` subset.

use regex::Regex;

use super::SourceRepo;

/// The selection settings.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub topic: Option<String>,
    pub include: Option<Regex>,
    pub exclude: Option<Regex>,
    pub include_archived: bool,
    pub include_forks: bool,
    /// Only these names (`--repo`, or a manual invocation's `repos`); empty means all.
    pub only: Vec<String>,
}

/// The outcome of selecting.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub repos: Vec<SourceRepo>,
    /// Names asked for with `only` that the listing does not hold (or that the filters leave out), with why.
    pub missing: Vec<(String, String)>,
}

/// Applies `filter` to a listing, keeping the listing's order.
pub fn select(listing: Vec<SourceRepo>, filter: &Filter) -> Selection {
    let mut selection = Selection::default();
    let left_out_because = |repo: &SourceRepo| -> Option<String> {
        if repo.disabled {
            return Some("it is disabled on GitHub".into());
        }
        if repo.archived && !filter.include_archived {
            return Some("it is archived (set MIRROR_INCLUDE_ARCHIVED=true)".into());
        }
        if repo.fork && !filter.include_forks {
            return Some("it is a fork (set MIRROR_INCLUDE_FORKS=true)".into());
        }
        if let Some(topic) = &filter.topic {
            if !repo.topics.iter().any(|t| t.eq_ignore_ascii_case(topic)) {
                return Some(format!("it does not carry the topic {topic:?}"));
            }
        }
        if let Some(include) = &filter.include {
            if !include.is_match(&repo.name) {
                return Some(format!(
                    "MIRROR_INCLUDE ({}) does not match it",
                    include.as_str()
                ));
            }
        }
        if let Some(exclude) = &filter.exclude {
            if exclude.is_match(&repo.name) {
                return Some(format!("MIRROR_EXCLUDE ({}) matches it", exclude.as_str()));
            }
        }
        None
    };
    let mut found = std::collections::HashMap::new();
    for repo in listing {
        let wanted = filter.only.is_empty()
            || filter
                .only
                .iter()
                .any(|n| n.eq_ignore_ascii_case(&repo.name));
        if !wanted {
            continue;
        }
        let why = left_out_because(&repo);
        found.insert(repo.name.to_ascii_lowercase(), why.clone());
        if why.is_none() {
            selection.repos.push(repo);
        }
    }
    for name in &filter.only {
        match found.get(&name.to_ascii_lowercase()) {
            None => selection
                .missing
                .push((name.clone(), "the source does not list it".into())),
            Some(Some(why)) => selection
                .missing
                .push((name.clone(), format!("it is left out: {why}"))),
            Some(None) => {}
        }
    }
    selection
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(name: &str) -> SourceRepo {
        SourceRepo {
            name: name.into(),
            topics: vec!["govuk".into()],
            ..SourceRepo::default()
        }
    }

    fn names(selection: &Selection) -> Vec<&str> {
        selection.repos.iter().map(|r| r.name.as_str()).collect()
    }

    #[test]
    fn filters_compose() {
        let mut archived = repo("old");
        archived.archived = true;
        let mut fork = repo("forked");
        fork.fork = true;
        let mut untagged = repo("other");
        untagged.topics.clear();
        let mut disabled = repo("disabled");
        disabled.disabled = true;
        let listing = vec![
            repo("whitehall"),
            repo("smart-answers"),
            archived,
            fork,
            untagged,
            disabled,
            repo("calendars"),
        ];

        let all = select(
            listing.clone(),
            &Filter {
                topic: Some("govuk".into()),
                ..Filter::default()
            },
        );
        assert_eq!(names(&all), vec!["whitehall", "smart-answers", "calendars"]);

        let wide = select(
            listing.clone(),
            &Filter {
                include_archived: true,
                include_forks: true,
                ..Filter::default()
            },
        );
        assert_eq!(
            names(&wide),
            vec![
                "whitehall",
                "smart-answers",
                "old",
                "forked",
                "other",
                "calendars"
            ]
        );

        let patterns = select(
            listing.clone(),
            &Filter {
                include: Some(Regex::new("^(white|smart|cal)").unwrap()),
                exclude: Some(Regex::new("answers").unwrap()),
                ..Filter::default()
            },
        );
        assert_eq!(names(&patterns), vec!["whitehall", "calendars"]);
    }

    #[test]
    fn explicit_subsets_report_what_is_missing() {
        let mut archived = repo("old");
        archived.archived = true;
        let listing = vec![repo("whitehall"), repo("calendars"), archived];
        let selection = select(
            listing,
            &Filter {
                only: vec!["Calendars".into(), "nope".into(), "old".into()],
                ..Filter::default()
            },
        );
        assert_eq!(names(&selection), vec!["calendars"]);
        assert_eq!(selection.missing.len(), 2);
        assert_eq!(selection.missing[0].0, "nope");
        assert!(selection.missing[1].1.contains("archived"));
    }
}
