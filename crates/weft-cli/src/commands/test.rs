//! `weft test`: the project's pipeline tests (see `weft_testing`).

use std::path::PathBuf;

use weft_session::{Project, ProjectCode};

use super::*;
use crate::error::{EXIT_FAILURE, EXIT_OK};

/// The case files: the ones given, else `tests/*.yml|yaml`, sorted.
fn case_files(edge: &Edge<'_>, args: &TestArgs) -> Result<Vec<PathBuf>, UsageError> {
    if !args.files.is_empty() {
        return Ok(args
            .files
            .iter()
            .map(|f| {
                if f.is_absolute() || f.exists() {
                    f.clone()
                } else {
                    edge.project.join(f)
                }
            })
            .collect());
    }
    let dir = edge.project.join("tests");
    let entries = std::fs::read_dir(&dir).map_err(|e| {
        UsageError::caused_by(
            format!("no test files given and {} cannot be read", dir.display()),
            e,
        )
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml" || x == "yaml"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(UsageError::new(format!(
            "no test files: {} has no *.yml or *.yaml",
            dir.display()
        )));
    }
    Ok(files)
}

pub(super) fn test(
    edge: &Edge<'_>,
    args: &TestArgs,
    code: ProjectCode,
    io: &mut Io<'_>,
) -> anyhow::Result<u8> {
    let files = case_files(edge, args)?;
    let mut cases = Vec::new();
    for file in &files {
        let loaded = weft_testing::load_cases(file).map_err(|e| UsageError::new(e.to_string()))?;
        cases.extend(loaded.into_iter().map(|c| (file.clone(), c)));
    }
    let session = super::inspect::open_for_inspection(edge, &args.session, code)?;
    let project = Project::open(&edge.project)?;
    let settings = crate::settings::resolve(&args.session, None, edge.environment, &project)?;
    let parameters = project
        .config_loader(
            args.session.conf_source.as_deref(),
            &settings.env,
            serde_json::json!({}),
        )?
        .with_environment(settings.variables.clone())
        .parameters()?;
    let (mut passed, mut failed) = (0usize, 0usize);
    for (file, case) in &cases {
        let outcome = weft_testing::run_case(session.pipelines(), &parameters, case)
            .map_err(|e| UsageError::new(format!("{}: {e}", file.display())))?;
        let shown = file.strip_prefix(&edge.project).unwrap_or(file);
        writeln!(
            io.out,
            "{}: {}",
            shown.display(),
            weft_testing::describe(&outcome)
        )?;
        if outcome.passed() {
            passed += 1;
        } else {
            failed += 1;
        }
    }
    writeln!(
        io.out,
        "{} cases: {passed} passed, {failed} failed ({} files)",
        passed + failed,
        files.len()
    )?;
    Ok(if failed == 0 { EXIT_OK } else { EXIT_FAILURE })
}
