//! The settings as the command line and the environment give them: clap arguments built from the
//! definitions (for `run`, `status` and the Lambda's environment), and the one reader `resolve` takes
//! every value through — the flag, else the variable, else its old names; blank counts as unset.

use std::collections::BTreeMap;
use std::fmt;

use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches};

use super::definitions::{DefaultValue, Kind, Setting, ALL};
use super::{docs, SettingsError};

/// The values the command line gave (clap also fills in each flag's own variable), by variable.
#[derive(Clone, Default)]
pub struct SettingsArgs {
    given: BTreeMap<&'static str, String>,
}

impl SettingsArgs {
    /// The same settings with `setting` given `value`, as its flag would.
    pub fn with(mut self, setting: &'static Setting, value: &str) -> Self {
        self.given.insert(setting.variable, value.to_owned());
        self
    }
}

/// Names only: a value may carry credentials (a URL's userinfo).
impl fmt::Debug for SettingsArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SettingsArgs")
            .field("given", &self.given.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The clap argument of a setting that has a flag.
fn argument(setting: &'static Setting, flag: &'static str) -> Arg {
    let mut help = setting.help.to_owned();
    match setting.default.shown() {
        Some(default) => help.push_str(&format!(" [default: {default}]")),
        None => help.push_str(" [required]"),
    }
    for old in setting.old_names {
        help.push_str(&format!(" [old name: {old}]"));
    }
    let arg = Arg::new(setting.variable)
        .long(flag)
        .env(setting.variable)
        .hide_env_values(true)
        .value_name(setting.value_name)
        .value_parser(clap::value_parser!(String))
        .action(ArgAction::Set)
        .help(help);
    match setting.kind {
        Kind::Switch => arg.num_args(0..=1).default_missing_value("true"),
        Kind::Text | Kind::Number { .. } => arg,
    }
}

impl Args for SettingsArgs {
    fn augment_args(cmd: Command) -> Command {
        let cmd = ALL.iter().fold(cmd, |cmd, setting| match setting.flag {
            Some(flag) if setting.has_flag() => cmd.arg(argument(setting, flag)),
            _ => cmd,
        });
        cmd.after_help(docs::environment_only_help())
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for SettingsArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut args = SettingsArgs::default();
        args.update_from_arg_matches(matches)?;
        Ok(args)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        for setting in ALL.iter().filter(|s| s.has_flag()) {
            let value = matches
                .try_get_one::<String>(setting.variable)
                .map_err(|err| {
                    clap::Error::raw(
                        clap::error::ErrorKind::ArgumentConflict,
                        format!("{setting}: {err}\n"),
                    )
                })?;
            if let Some(value) = value {
                self.given.insert(setting.variable, value.clone());
            }
        }
        Ok(())
    }
}

/// Reads settings by their definitions: the flag, else the variable, else its old names.
pub(super) struct Reader<'a> {
    given: &'a BTreeMap<&'static str, String>,
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl<'a> Reader<'a> {
    pub(super) fn new(args: &'a SettingsArgs, env: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Reader {
            given: &args.given,
            env,
        }
    }

    /// The value as given, untrimmed (credentials are taken as they are); blank counts as unset.
    pub(super) fn raw(&self, setting: &Setting) -> Option<String> {
        let flag = setting
            .has_flag()
            .then(|| self.given.get(setting.variable).cloned())
            .flatten();
        flag.into_iter()
            .chain(
                std::iter::once(setting.variable)
                    .chain(setting.old_names.iter().copied())
                    .filter_map(|name| (self.env)(name)),
            )
            .find(|value| !value.trim().is_empty())
    }

    /// The value, trimmed; `None` when unset.
    pub(super) fn text(&self, setting: &Setting) -> Option<String> {
        self.raw(setting).map(|value| value.trim().to_owned())
    }

    /// The value, or the definition's default text (empty when the default is unset or empty).
    pub(super) fn text_or_default(&self, setting: &Setting) -> String {
        self.text(setting).unwrap_or_else(|| match setting.default {
            DefaultValue::Text(text) => text.to_owned(),
            _ => String::new(),
        })
    }

    /// The value of a setting the run cannot do without.
    pub(super) fn required(&self, setting: &'static Setting) -> Result<String, SettingsError> {
        self.text(setting).ok_or(SettingsError::Missing { setting })
    }

    /// A switch: `true`/`1`/`yes`/`on` or `false`/`0`/`no`/`off`, else the default.
    pub(super) fn switch(&self, setting: &'static Setting) -> Result<bool, SettingsError> {
        match self
            .text(setting)
            .map(|v| v.to_ascii_lowercase())
            .as_deref()
        {
            None => Ok(matches!(setting.default, DefaultValue::Switch(true))),
            Some("true" | "1" | "yes" | "on") => Ok(true),
            Some("false" | "0" | "no" | "off") => Ok(false),
            Some(other) => Err(invalid(setting, other, "use true or false")),
        }
    }

    /// A number within the definition's bounds, or its default (`None` when it has none).
    pub(super) fn number(&self, setting: &'static Setting) -> Result<Option<u64>, SettingsError> {
        let Some(value) = self.text(setting) else {
            return Ok(match setting.default {
                DefaultValue::Number(n) => Some(n),
                _ => None,
            });
        };
        let (min, max) = match setting.kind {
            Kind::Number { min, max } => (min, max),
            Kind::Text | Kind::Switch => (0, u64::MAX),
        };
        match value.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(invalid(
                setting,
                &value,
                &format!("use a whole number from {min} to {max}"),
            )),
        }
    }

    /// A number that always has a value (its definition has a numeric default).
    pub(super) fn number_or_default(
        &self,
        setting: &'static Setting,
    ) -> Result<u64, SettingsError> {
        Ok(self.number(setting)?.unwrap_or_default())
    }
}

/// `setting`'s value is wrong; a secret's value is never repeated.
pub(super) fn invalid(setting: &'static Setting, value: &str, why: &str) -> SettingsError {
    if setting.secret {
        SettingsError::InvalidSecret {
            setting,
            why: why.to_owned(),
        }
    } else {
        SettingsError::Invalid {
            setting,
            value: value.to_owned(),
            why: why.to_owned(),
        }
    }
}
