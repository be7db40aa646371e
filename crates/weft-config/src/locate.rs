//! Where a key of a section is written: file and line, for errors found
//! after loading (the catalog's unknown types and keys, for example).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::{BASE_ENV, ConfigError, ConfigLoader, yaml};

/// The files that define each top-level key of one section, with their
/// text, so that a key path can be located without parsing again.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// std::fs::create_dir_all(dir.path().join("base")).unwrap();
/// std::fs::write(dir.path().join("base/catalog.yml"), "cars:\n  type: nope\n").unwrap();
/// let loader = weft_config::ConfigLoader::new(dir.path(), None, serde_json::Value::Null);
/// let locator = weft_config::KeyLocator::new(&loader, "catalog").unwrap();
/// let (file, line) = locator.locate(&["cars", "type"]).unwrap();
/// assert!(file.ends_with("base/catalog.yml"));
/// assert_eq!(line, 2);
/// ```
#[derive(Clone, Debug, Default)]
pub struct KeyLocator {
    /// Top-level key → files defining it, the one in effect last
    /// (base first, then the run environment).
    keys: BTreeMap<String, Vec<PathBuf>>,
    texts: BTreeMap<PathBuf, String>,
}

impl KeyLocator {
    /// Reads the files of `section` (base and the loader's run environment),
    /// as the loader would. Files that do not parse are skipped (the loader
    /// reports them).
    pub fn new(loader: &ConfigLoader, section: &str) -> Result<Self, ConfigError> {
        let mut out = KeyLocator::default();
        let conf = loader.conf_source();
        let mut envs = vec![conf.join(BASE_ENV)];
        if loader.env() != BASE_ENV {
            envs.push(conf.join(loader.env()));
        }
        for env_dir in envs {
            for file in loader.files(&env_dir, section)? {
                let text = std::fs::read_to_string(&file).map_err(|source| ConfigError::Io {
                    path: file.clone(),
                    source,
                })?;
                if let Ok(serde_json::Value::Object(map)) = yaml::parse_text(&text, &file) {
                    for key in map.keys() {
                        out.keys.entry(key.clone()).or_default().push(file.clone());
                    }
                }
                out.texts.insert(file, text);
            }
        }
        Ok(out)
    }

    /// The file and 1-based line of a key path (`["cars"]`,
    /// `["cars", "type"]`): the run environment's definition first, then
    /// base's; a key that cannot be found falls back to its nearest
    /// ancestor. `None` when the top-level key is in no file.
    pub fn locate(&self, path: &[&str]) -> Option<(PathBuf, usize)> {
        let files = self.keys.get(*path.first()?)?;
        (1..=path.len()).rev().find_map(|n| {
            files.iter().rev().find_map(|file| {
                let text = self.texts.get(file)?;
                yaml::line_of(text, &path[..n]).map(|line| (file.clone(), line))
            })
        })
    }

    /// The file that defines a top-level key (the one in effect).
    pub fn file_of(&self, key: &str) -> Option<&Path> {
        self.keys.get(key)?.last().map(PathBuf::as_path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_definition_wins_and_missing_keys_fall_back_to_their_entry() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("base/sub")).unwrap();
        std::fs::create_dir_all(dir.path().join("prod")).unwrap();
        std::fs::write(
            dir.path().join("base/catalog.yml"),
            "# comment\na:\n  type: x\nb:\n  type: y\n  filepath: b.json\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("base/sub/catalog_broken.yml"), "c: [unclosed\n").unwrap();
        std::fs::write(dir.path().join("prod/catalog.yml"), "\n\nb:\n  type: z\n").unwrap();
        let loader = ConfigLoader::new(dir.path(), Some("prod"), serde_json::Value::Null);
        let loc = KeyLocator::new(&loader, "catalog").unwrap();
        let base = dir.path().join("base/catalog.yml");
        let prod = dir.path().join("prod/catalog.yml");
        assert_eq!(loc.locate(&["a"]), Some((base.clone(), 2)));
        assert_eq!(loc.locate(&["a", "type"]), Some((base.clone(), 3)));
        // The run environment's definition is the one in effect.
        assert_eq!(loc.locate(&["b", "type"]), Some((prod.clone(), 4)));
        // A key only base has is still found there.
        assert_eq!(loc.locate(&["b", "filepath"]), Some((base.clone(), 6)));
        // A missing key falls back to its entry.
        assert_eq!(loc.locate(&["a", "nope"]), Some((base.clone(), 2)));
        assert_eq!(loc.file_of("b"), Some(prod.as_path()));
        // Unparsable files and unknown keys locate nothing.
        assert_eq!(loc.locate(&["c"]), None);
        assert_eq!(loc.locate(&["zzz"]), None);
        assert_eq!(loc.locate(&[]), None);
    }
}
