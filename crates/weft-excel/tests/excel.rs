//! Excel datasets on real files: workbooks written by rust_xlsxwriter (as
//! a user's spreadsheet would be) and by the dataset itself, read back
//! through a catalog built from YAML-like entries.

use std::path::Path;

use serde_json::{Value, json};
use std::collections::BTreeMap;

use weft_catalog::{BuildOptions, Catalog, CatalogConfig, CatalogError, DatasetTypeRegistry};
use weft_pipeline::{Data, DataType};

fn registry() -> DatasetTypeRegistry {
    let mut r = DatasetTypeRegistry::with_builtins();
    weft_excel::register(&mut r).unwrap();
    r
}

fn try_catalog(root: &Path, entries: Value) -> Result<Catalog, CatalogError> {
    CatalogConfig::parse(&entries, &json!({}), &registry())?.build(&BuildOptions {
        project_dir: root.to_path_buf(),
        save_version: "v1".into(),
        load_versions: BTreeMap::new(),
        parameters: Value::Null,
        run_scope: None,
    })
}

fn catalog(root: &Path, entries: Value) -> Catalog {
    try_catalog(root, entries).unwrap()
}

/// A workbook like one a person saves: a title row, a header, mixed cells.
fn user_workbook(path: &Path) {
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    sheet.set_name("shuttles").unwrap();
    sheet.write_string(0, 0, "Shuttle fleet, 2026").unwrap();
    for (c, h) in ["id", "engine", "capacity", "approved"].iter().enumerate() {
        sheet.write_string(1, c as u16, *h).unwrap();
    }
    sheet.write_number(2, 0, 1.0).unwrap();
    sheet.write_string(2, 1, "Quantum").unwrap();
    sheet.write_number(2, 2, 4.5).unwrap();
    sheet.write_boolean(2, 3, true).unwrap();
    sheet.write_number(3, 0, 2.0).unwrap();
    sheet.write_string(3, 1, "Plasma").unwrap();
    sheet.write_number(3, 2, 7.0).unwrap();
    sheet.write_boolean(3, 3, false).unwrap();
    let other = book.add_worksheet();
    other.set_name("notes").unwrap();
    other.write_string(0, 0, "note").unwrap();
    other.write_string(1, 0, "checked").unwrap();
    book.save(path).unwrap();
}

#[test]
fn a_users_sheet_loads_as_rows_with_skiprows_and_a_header() {
    let dir = tempfile::tempdir().unwrap();
    user_workbook(&dir.path().join("shuttles.xlsx"));
    let cat = catalog(
        dir.path(),
        json!({"shuttles": {"type": "pandas.ExcelDataset", "filepath": "shuttles.xlsx",
               "load_args": {"sheet_name": "shuttles", "skiprows": 1}}}),
    );
    let rows = cat.load("shuttles", None).unwrap();
    assert_eq!(
        rows.to_json().unwrap(),
        json!([
            {"id": 1, "engine": "Quantum", "capacity": 4.5, "approved": true},
            {"id": 2, "engine": "Plasma", "capacity": 7, "approved": false}
        ])
    );
    // As an Arrow table.
    let batch = cat
        .load("shuttles", Some(&DataType::of::<arrow_array::RecordBatch>()))
        .unwrap();
    let batch = batch.downcast_ref::<arrow_array::RecordBatch>().unwrap();
    assert_eq!((batch.num_rows(), batch.num_columns()), (2, 4));
}

#[test]
fn sheet_name_null_or_a_list_loads_a_map_of_sheets() {
    let dir = tempfile::tempdir().unwrap();
    user_workbook(&dir.path().join("book.xlsx"));
    let cat = catalog(
        dir.path(),
        json!({
            "all": {"type": "pandas.ExcelDataset", "filepath": "book.xlsx", "load_args": {"sheet_name": null, "header": null}},
            "some": {"type": "excel.ExcelDataset", "filepath": "book.xlsx", "load_args": {"sheet_name": [1]}},
            "by_index": {"type": "pandas.ExcelDataset", "filepath": "book.xlsx", "load_args": {"sheet_name": 1}}
        }),
    );
    let all = cat.load("all", None).unwrap().to_json().unwrap();
    assert_eq!(
        all.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["shuttles", "notes"]
    );
    assert_eq!(all["notes"], json!([{"0": "note"}, {"0": "checked"}]));
    let some = cat.load("some", None).unwrap().to_json().unwrap();
    assert_eq!(some, json!({"notes": [{"note": "checked"}]}));
    assert_eq!(
        cat.load("by_index", None).unwrap().to_json().unwrap(),
        json!([{"note": "checked"}])
    );
}

#[test]
fn saved_rows_and_maps_of_sheets_load_back_and_saves_are_versioned() {
    let dir = tempfile::tempdir().unwrap();
    let cat = catalog(
        dir.path(),
        json!({
            "report": {"type": "pandas.ExcelDataset", "filepath": "out/report.xlsx", "versioned": true,
                       "save_args": {"sheet_name": "r2"}, "load_args": {"sheet_name": "r2"}},
            "book": {"type": "pandas.ExcelDataset", "filepath": "out/book.xlsx", "load_args": {"sheet_name": null}}
        }),
    );
    let rows = json!([{"model": "lr", "r2": 0.91}, {"model": "rf", "r2": 0.87, "note": "deep"}]);
    cat.save("report", Data::new(rows.clone())).unwrap();
    assert!(dir.path().join("out/report.xlsx/v1/report.xlsx").is_file());
    assert_eq!(
        cat.load("report", None).unwrap().to_json().unwrap(),
        json!([{"model": "lr", "r2": 0.91, "note": null}, {"model": "rf", "r2": 0.87, "note": "deep"}])
    );
    let sheets = json!({"a": [{"x": 1}], "b": [{"y": "two"}]});
    cat.save("book", Data::new(sheets.clone())).unwrap();
    assert_eq!(cat.load("book", None).unwrap().to_json().unwrap(), sheets);
}

#[test]
fn bad_files_arguments_and_cells_are_errors_naming_the_place() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("not.xlsx"), "this is text").unwrap();
    user_workbook(&dir.path().join("book.xlsx"));
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    sheet.set_name("twice").unwrap();
    sheet.write_string(0, 0, "a").unwrap();
    sheet.write_string(0, 1, "a").unwrap();
    sheet.write_number(1, 0, 1.0).unwrap();
    book.save(dir.path().join("twice.xlsx")).unwrap();
    let cat = catalog(
        dir.path(),
        json!({
            "text": {"type": "pandas.ExcelDataset", "filepath": "not.xlsx"},
            "missing_sheet": {"type": "pandas.ExcelDataset", "filepath": "book.xlsx", "load_args": {"sheet_name": "nope"}},
            "far_sheet": {"type": "pandas.ExcelDataset", "filepath": "book.xlsx", "load_args": {"sheet_name": 5}},
            "twice": {"type": "pandas.ExcelDataset", "filepath": "twice.xlsx"},
        }),
    );
    let err = cat.load("text", None).unwrap_err().to_string();
    assert!(
        err.contains("not a workbook") && err.contains("not.xlsx"),
        "{err}"
    );
    let err = cat.load("missing_sheet", None).unwrap_err().to_string();
    assert!(
        err.contains("no sheet `nope`") && err.contains("shuttles"),
        "{err}"
    );
    let err = cat.load("far_sheet", None).unwrap_err().to_string();
    assert!(err.contains("no sheet at index 5"), "{err}");
    let err = cat.load("twice", None).unwrap_err().to_string();
    assert!(err.contains("sheet `twice`: column `a` appears twice"), "{err}");

    // Bad arguments are configuration errors, named at build time.
    let config = json!({"bad": {"type": "pandas.ExcelDataset", "filepath": "book.xlsx", "load_args": {"skiprows": -1}}});
    let err = try_catalog(dir.path(), config)
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("skiprows") && err.contains("bad"), "{err}");

    // A value that is not rows cannot be saved, and nothing is written.
    let cat = catalog(
        dir.path(),
        json!({"out": {"type": "pandas.ExcelDataset", "filepath": "out.xlsx"}}),
    );
    let err = cat.save("out", Data::new(json!(42))).unwrap_err().to_string();
    assert!(err.contains("a workbook needs rows"), "{err}");
    assert!(!dir.path().join("out.xlsx").exists());
}

#[test]
fn registering_the_excel_types_twice_is_refused() {
    let mut r = registry();
    assert!(weft_excel::register(&mut r).is_err());
}
