//! The source record of a `dir:` mirror (see [`crate::adoption`]): the key `repomirror.source` in the
//! bare repository's own `config` file — only that file, never the user's or the system's — read and
//! written with gix-config. A write goes through `config.lock`, as `git config` does: written, fsynced,
//! renamed over `config`.

use std::io::Write;
use std::path::Path;

use crate::adoption::SourceRecord;
use crate::target::TargetError;

/// The git config key that records the source of a `dir:` mirror.
pub const KEY: &str = "repomirror.source";

fn config_error(path: &Path, message: impl std::fmt::Display) -> TargetError {
    TargetError::Local {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

fn load(git_dir: &Path) -> Result<gix::config::File, TargetError> {
    let path = git_dir.join("config");
    gix::config::File::from_path_no_includes(path.clone(), gix::config::Source::Local)
        .map_err(|err| config_error(&path, format!("the git config could not be read: {err}")))
}

/// What the mirror at `git_dir` records.
pub fn read(git_dir: &Path) -> Result<SourceRecord, TargetError> {
    Ok(match load(git_dir)?.string(KEY) {
        Some(url) if !url.is_empty() => SourceRecord::Names(url.to_string()),
        _ => SourceRecord::Missing,
    })
}

/// Records `source_url` as the source of the mirror at `git_dir`.
pub fn write(git_dir: &Path, source_url: &str) -> Result<(), TargetError> {
    let mut config = load(git_dir)?;
    config
        .set_raw_value(KEY, source_url)
        .map_err(|err| config_error(git_dir, format!("{KEY} could not be set: {err}")))?;
    let path = git_dir.join("config");
    let lock = git_dir.join("config.lock");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&lock)
        .map_err(|err| config_error(&lock, err))?;
    let written = config
        .write_to(&mut file)
        .and_then(|()| file.flush())
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::rename(&lock, &path));
    if let Err(err) = written {
        let _ = std::fs::remove_file(&lock);
        return Err(config_error(&path, err));
    }
    if let Ok(dir) = std::fs::File::open(git_dir) {
        dir.sync_all().map_err(|err| config_error(git_dir, err))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_written_beside_the_existing_config_and_read_back() {
        let dir = tempfile::tempdir().expect("temp dir");
        let repo = dir.path().join("x.git");
        gix::init_bare(&repo).expect("init");
        assert_eq!(read(&repo).ok(), Some(SourceRecord::Missing));
        write(&repo, "https://github.com/alphagov/x.git").expect("write");
        assert_eq!(
            read(&repo).ok(),
            Some(SourceRecord::Names(
                "https://github.com/alphagov/x.git".into()
            ))
        );
        // The rest of the config survives, and git reads the repository as before.
        let reopened = gix::open(&repo).expect("still a repository");
        assert!(reopened.is_bare());
        write(&repo, "https://github.com/alphagov/y.git").expect("rewrite");
        assert_eq!(
            read(&repo).ok(),
            Some(SourceRecord::Names(
                "https://github.com/alphagov/y.git".into()
            ))
        );
        assert!(!repo.join("config.lock").exists());
    }
}
