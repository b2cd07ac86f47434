//! The settings' documentation rendered from their definitions: the README's settings table (between
//! `<!-- settings-table:start -->` and `<!-- settings-table:end -->`) and the part of `run --help` about
//! environment-only settings. Tests hold the README and `--help` to these.

use super::definitions::{DefaultValue, Setting, ALL};

/// The README's settings table, rows in definition order.
pub fn readme_table() -> String {
    let mut table = String::from("| variable | flag | default | meaning |\n|---|---|---|---|\n");
    for setting in ALL {
        let mut variable = format!("`{}`", setting.variable);
        for old in setting.old_names {
            variable.push_str(&format!(" (old name `{old}`)"));
        }
        let flag = match setting.flag {
            Some(flag) if setting.has_flag() => format!("`--{flag}`"),
            _ => "—".to_owned(),
        };
        let default = match setting.default {
            DefaultValue::Required => "required".to_owned(),
            DefaultValue::Unset => "none".to_owned(),
            DefaultValue::Empty => "empty".to_owned(),
            other => format!("`{}`", other.shown().unwrap_or_default()),
        };
        table.push_str(&format!(
            "| {variable} | {flag} | {default} | {} |\n",
            meaning(setting)
        ));
    }
    table
}

/// The README's "meaning": its own text, or the help line starting in lower case (unless its first word
/// is a name such as GitHub or CodeCommit).
fn meaning(setting: &Setting) -> String {
    if !setting.meaning.is_empty() {
        return setting.meaning.to_owned();
    }
    let first_word = setting.help.split(' ').next().unwrap_or_default();
    let mut chars = setting.help.chars();
    match chars.next() {
        Some(first) if !first_word.chars().skip(1).any(char::is_uppercase) => {
            first.to_lowercase().chain(chars).collect()
        }
        _ => setting.help.to_owned(),
    }
}

/// What `run --help` and `status --help` say after the flags: the settings without a flag.
pub fn environment_only_help() -> String {
    let mut text = String::from(
        "Every flag also reads the environment variable shown with it (the flag wins; blank counts as unset).\n\nEnvironment only:\n",
    );
    for setting in ALL.iter().filter(|s| !s.has_flag() && !s.secret) {
        let default = setting.default.shown().unwrap_or_else(|| "required".into());
        text.push_str(&format!(
            "  {}={}\n          {} [default: {default}]\n",
            setting.variable, setting.value_name, setting.help
        ));
    }
    text.push_str("\nCredentials (environment only, never shown):\n");
    for setting in ALL.iter().filter(|s| s.secret) {
        text.push_str(&format!(
            "  {}={}\n          {}\n",
            setting.variable, setting.value_name, setting.help
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;
    use crate::cli::Cli;

    const START: &str = "<!-- settings-table:start -->\n";
    const END: &str = "<!-- settings-table:end -->";

    #[test]
    fn the_readme_table_is_the_definitions() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
        let readme = std::fs::read_to_string(path).expect("README.md is readable");
        let start = readme.find(START).expect("README has the start marker") + START.len();
        let end = readme[start..]
            .find(END)
            .expect("README has the end marker")
            + start;
        let rendered = readme_table();
        assert!(
            readme[start..end].trim() == rendered.trim(),
            "the README's settings table differs from the definitions; paste this between the markers:\n\n{rendered}"
        );
        assert_eq!(
            readme.matches(START.trim()).count(),
            1,
            "one settings table in the README"
        );
    }

    /// The help of each argument, by its long flag.
    fn help_blocks(subcommand: &str) -> Vec<(String, String)> {
        let mut cli = Cli::command();
        let help = cli
            .find_subcommand_mut(subcommand)
            .expect("the subcommand exists")
            .render_help()
            .to_string();
        let options = help.split("Options:").nth(1).expect("help lists options");
        let mut blocks: Vec<(String, String)> = Vec::new();
        for line in options.lines() {
            let trimmed = line.trim_start();
            if trimmed.starts_with('-') {
                let flag = trimmed
                    .split([' ', '[', '<', ','])
                    .find(|word| word.starts_with("--"))
                    .unwrap_or(trimmed)
                    .to_owned();
                blocks.push((flag, line.to_owned()));
            } else if let Some((_, text)) = blocks.last_mut() {
                text.push_str(line);
            }
        }
        blocks
    }

    #[test]
    fn help_shows_every_flag_of_the_definitions_with_its_default() {
        for subcommand in ["run", "status"] {
            let blocks = help_blocks(subcommand);
            for (flag, _) in &blocks {
                let known = ["--repo", "--json", "--help"].contains(&flag.as_str())
                    || ALL.iter().any(|s| {
                        s.has_flag() && s.flag.map(|f| format!("--{f}")) == Some(flag.clone())
                    });
                assert!(
                    known,
                    "{subcommand} --help shows {flag}, which no definition has"
                );
            }
            for setting in ALL.iter().filter(|s| s.has_flag()) {
                let flag = format!("--{}", setting.flag.unwrap_or_default());
                let block = blocks
                    .iter()
                    .find(|(f, _)| *f == flag)
                    .map(|(_, text)| text.as_str())
                    .unwrap_or_else(|| panic!("{subcommand} --help lacks {flag}"));
                let default = match setting.default.shown() {
                    Some(default) => format!("[default: {default}]"),
                    None => "[required]".to_owned(),
                };
                assert!(
                    block.contains(setting.help) && block.contains(&default),
                    "{subcommand} --help, {flag}: {default} and the help line expected in {block:?}"
                );
                assert!(
                    block.contains(&format!("[env: {}", setting.variable)),
                    "{block}"
                );
            }
            let mut cli = Cli::command();
            let help = cli
                .find_subcommand_mut(subcommand)
                .expect("the subcommand exists")
                .render_help()
                .to_string();
            for setting in ALL.iter().filter(|s| !s.has_flag()) {
                assert!(
                    help.contains(setting.variable),
                    "{subcommand} --help lacks {}",
                    setting.variable
                );
            }
        }
    }
}
