//! Shared test fixtures: a small project on disk.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

pub const PIPELINES: &str = r#"
__default__:
  nodes:
    - name: inc
      func: add_one
      inputs: params:start
      outputs: incremented
    - name: total
      func: sum
      inputs: [incremented, params:offset]
      outputs: total
    - name: save
      func: identity
      inputs: total
      outputs: result
      tags: [persist]
slow:
  nodes:
    - name: wait
      func: sleep_ms
      inputs: [params:delay, params:start]
      outputs: waited
broken:
  nodes:
    - name: ok_first
      func: identity
      inputs: params:start
      outputs: first_out
    - name: boom
      func: fail
      inputs: first_out
      outputs: never
"#;

pub fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// A project with parameters, a versioned JSON output and three pipelines.
pub fn project() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    write(&root, "weft.toml", "[project]\nname = \"fixture\"\n");
    write(&root, "pipelines.yml", PIPELINES);
    write(
        &root,
        "conf/base/parameters.yml",
        "start: 1\noffset: 10\ndelay: 0\n",
    );
    write(
        &root,
        "conf/base/catalog.yml",
        "result:\n  type: json.JSONDataset\n  filepath: data/result.json\n  versioned: true\nfirst_out:\n  type: json.JSONDataset\n  filepath: data/first.json\n  versioned: true\n",
    );
    std::fs::create_dir_all(root.join("conf/local")).unwrap();
    (dir, root)
}
