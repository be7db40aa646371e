//! `weft new NAME`: scaffold a project.

use anyhow::{Context as _, bail};

const SCAFFOLD_PIPELINES: &str = r#"# Pipelines declared in YAML; `func` names a registered function.
# Built-ins: noop, identity, add_one, sum, concat, sleep_ms, spin_ms, fail.
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

pub(super) fn new_project(name: &str) -> anyhow::Result<u8> {
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        bail!("invalid project name `{name}`: use a plain directory name");
    }
    let root = std::path::Path::new(name);
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
        std::fs::create_dir_all(path.parent().expect("has parent"))?;
        std::fs::write(&path, content).with_context(|| format!("writing {}", path.display()))?;
    }
    eprintln!("created project `{name}`; try: weft --project {name} run");
    Ok(0)
}
