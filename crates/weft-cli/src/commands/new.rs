//! `weft new NAME`: scaffold a project.

use std::path::Path;

use anyhow::{Context as _, bail};

use crate::Io;
use crate::error::{EXIT_OK, UsageError};

const SCAFFOLD_PIPELINES: &str = r#"# Pipelines declared in YAML; `func` names a registered function.
# Built-ins: noop, identity, add_one, sum, concat, sleep_ms, spin_ms, fill_mb, fail, abort.
__default__:
  nodes:
    - name: increment
      func: add_one
      inputs: params:start
      outputs: incremented
    - name: total
      func: sum
      inputs: [incremented, params:offset]
      outputs: total
"#;

const SCAFFOLD_CATALOG: &str = r#"# Datasets by name. Anything not declared here is kept in memory.
total:
  type: json.JSONDataset
  filepath: data/total.json
  versioned: true
"#;

const SCAFFOLD_PARAMETERS: &str = "start: 41\noffset: 0.5\n";

/// Why `name` cannot name a project, if it cannot: a project name is
/// letters, digits, `_` and `-`, not starting with `-` (it is the
/// directory's name and is written into `weft.toml`).
pub(super) fn check_name(name: &str) -> Result<(), UsageError> {
    let valid = !name.is_empty()
        && !name.starts_with('-')
        && name.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-');
    if valid {
        return Ok(());
    }
    Err(UsageError::new(format!(
        "invalid project name {name:?}: use letters, digits, `_` and `-` (not empty, not starting \
         with `-`, no path separators, quotes, dots or spaces); it names the project's directory"
    )))
}

/// Scaffolds `<parent>/<name>`.
pub(super) fn new_project(parent: &Path, name: &str, io: &mut Io<'_>) -> anyhow::Result<u8> {
    check_name(name)?;
    let root = parent.join(name);
    if root.exists() {
        bail!("`{name}` already exists; choose another name");
    }
    let files: [(&str, String); 7] = [
        (
            "weft.toml",
            format!("[project]\nname = \"{name}\"\ndefault_pipeline = \"__default__\"\n"),
        ),
        ("pipelines.yml", SCAFFOLD_PIPELINES.into()),
        ("conf/base/catalog.yml", SCAFFOLD_CATALOG.into()),
        ("conf/base/parameters.yml", SCAFFOLD_PARAMETERS.into()),
        ("conf/local/.gitkeep", String::new()),
        ("data/.gitkeep", String::new()),
        (
            ".gitignore",
            "/data/*\n!/data/.gitkeep\n/.weft/\n/logs/\n/conf/local/credentials*\n".into(),
        ),
    ];
    for (path, content) in files {
        let path = root.join(path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(&path, content).with_context(|| format!("writing {}", path.display()))?;
    }
    writeln!(io.err, "created project `{name}`; try: weft --project {name} run")?;
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scaffold(parent: &Path, name: &str) -> (anyhow::Result<u8>, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut io = Io {
            out: &mut out,
            err: &mut err,
            progress_bars: false,
            signals: false,
            prompt: None,
        };
        let r = new_project(parent, name, &mut io);
        (r, String::from_utf8_lossy(&err).into_owned())
    }

    #[test]
    fn bad_names_are_usage_errors_that_say_what_a_name_is() {
        let tmp = tempfile::tempdir().unwrap();
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "../up",
            "a\\b",
            "with\"quote",
            "it's",
            "a b",
            "-x",
            "new\nline",
            "x.y",
        ] {
            let (r, _) = scaffold(tmp.path(), bad);
            let e = r.expect_err(bad);
            assert_eq!(crate::error::exit_code(&e), crate::EXIT_USAGE, "{bad:?}");
            assert!(e.to_string().contains("letters, digits"), "{bad:?}: {e}");
        }
        assert_eq!(
            std::fs::read_dir(tmp.path()).unwrap().count(),
            0,
            "nothing written"
        );
    }

    #[test]
    fn good_names_land_verbatim_in_weft_toml() {
        let tmp = tempfile::tempdir().unwrap();
        for good in ["demo", "my_project-2", "Ünïcode"] {
            let (r, err) = scaffold(tmp.path(), good);
            assert_eq!(r.unwrap(), EXIT_OK, "{err}");
            let toml = std::fs::read_to_string(tmp.path().join(good).join("weft.toml")).unwrap();
            assert!(toml.contains(&format!("name = \"{good}\"")), "{toml}");
            let settings = weft_session::ProjectSettings::load(&tmp.path().join(good)).unwrap();
            assert_eq!(settings.project.name, good);
        }
        let (r, _) = scaffold(tmp.path(), "demo");
        assert_eq!(crate::error::exit_code(&r.unwrap_err()), crate::EXIT_FAILURE);
    }
}
