//! Excel datasets for weft's catalog: `pandas.ExcelDataset` (and
//! `excel.ExcelDataset`) loads `.xlsx`, `.xlsm`, `.xls`, `.xlsb` and `.ods`
//! workbooks with [calamine] and saves `.xlsx` with [rust_xlsxwriter].
//!
//! Kedro's (pandas') argument names:
//!
//! - `load_args.sheet_name`: a sheet's name or 0-based index (default 0,
//!   the first sheet); a list of names/indices, or `null` for every sheet,
//!   loads a map of sheet name → rows.
//! - `load_args.header`: the 0-based row (after `skiprows`) that holds the
//!   column names (default 0); `null` for none (columns are named `0`,
//!   `1`, ...).
//! - `load_args.skiprows`: rows skipped at the top of each sheet (default 0).
//! - `save_args.sheet_name`: the sheet a list of rows is written to
//!   (default `Sheet1`); a map of sheet name → rows writes one sheet each.
//!
//! One sheet loads as rows: typed rows (any serde-backed type the node
//! asks for, like CSV), an Arrow `RecordBatch` (column types inferred), or
//! JSON rows (objects keyed by column). Cells: numbers (integral floats
//! become integers), text, booleans, dates as ISO 8601 text, empty cells
//! as `null`; an error cell (`#DIV/0!`) is a load error naming the sheet
//! and cell. Saves go through the catalog's file target, so versioning,
//! run-scoped paths, object storage and atomic replacement work as for
//! every file dataset.

use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;

use arrow_array::RecordBatch;
use calamine::{Data as Cell, Reader};
use serde_json::{Map, Value};
use weft_catalog::file::FileTarget;
use weft_catalog::{CatalogError, Dataset, DatasetInfo, DatasetSpec, DatasetTypeRegistry, LoadType};
use weft_pipeline::{Data, DataType};

/// The type names this crate registers.
pub const TYPE_NAMES: &[&str] = &["pandas.ExcelDataset", "excel.ExcelDataset"];

/// Registers the Excel dataset types in `registry` (a name registered twice
/// is an error).
pub fn register(registry: &mut DatasetTypeRegistry) -> Result<(), CatalogError> {
    for name in TYPE_NAMES {
        registry.register(name, Arc::new(factory))?;
    }
    Ok(())
}

fn factory(spec: &DatasetSpec<'_>) -> Result<Arc<dyn Dataset>, String> {
    let (target, filepath) = spec.file_target("filepath")?;
    let load_args = spec.args("load_args")?;
    let save_args = spec.args("save_args")?;
    let load = LoadOptions::parse(&load_args).map_err(|e| format!("load_args: {e}"))?;
    let sheet = match save_args.get("sheet_name") {
        None | Some(Value::Null) => "Sheet1".to_string(),
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 31 => s.clone(),
        Some(other) => {
            return Err(format!(
                "save_args.sheet_name: expected a sheet name of 1 to 31 characters, got {other}"
            ));
        }
    };
    Ok(Arc::new(ExcelDataset {
        target,
        type_name: spec.type_name.to_string(),
        filepath,
        load,
        save_sheet: sheet,
    }))
}

/// Which sheets a load reads.
#[derive(Clone, Debug, PartialEq)]
enum SheetChoice {
    /// One sheet: its rows.
    One(SheetRef),
    /// Several sheets (or all, `None`): a map of name → rows.
    Many(Option<Vec<SheetRef>>),
}

#[derive(Clone, Debug, PartialEq)]
enum SheetRef {
    Name(String),
    Index(usize),
}

impl SheetRef {
    fn parse(v: &Value) -> Result<Self, String> {
        match v {
            Value::String(s) => Ok(SheetRef::Name(s.clone())),
            Value::Number(n) => n
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .map(SheetRef::Index)
                .ok_or_else(|| format!("a sheet index must be 0 or more, got {n}")),
            other => Err(format!("expected a sheet name or index, got {other}")),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
struct LoadOptions {
    sheets: SheetChoice,
    header: Option<usize>,
    skip_rows: usize,
}

impl LoadOptions {
    fn parse(args: &Value) -> Result<Self, String> {
        let sheets = match args.get("sheet_name") {
            None => SheetChoice::One(SheetRef::Index(0)),
            Some(Value::Null) => SheetChoice::Many(None),
            Some(Value::Array(items)) => SheetChoice::Many(Some(
                items
                    .iter()
                    .map(SheetRef::parse)
                    .collect::<Result<_, _>>()
                    .map_err(|e| format!("sheet_name: {e}"))?,
            )),
            Some(v) => SheetChoice::One(SheetRef::parse(v).map_err(|e| format!("sheet_name: {e}"))?),
        };
        let header = match args.get("header") {
            None => Some(0),
            Some(Value::Null) => None,
            Some(v) => Some(
                v.as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| format!("header: expected a row number (0 or more) or null, got {v}"))?,
            ),
        };
        let skip_rows = match args.get("skiprows") {
            None | Some(Value::Null) => 0,
            Some(v) => v
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| format!("skiprows: expected a number of rows (0 or more), got {v}"))?,
        };
        Ok(LoadOptions {
            sheets,
            header,
            skip_rows,
        })
    }
}

/// A workbook in one file (optionally versioned).
pub struct ExcelDataset {
    target: FileTarget,
    type_name: String,
    filepath: String,
    load: LoadOptions,
    save_sheet: String,
}

impl ExcelDataset {
    fn load_err(&self, path: &Path, message: impl ToString) -> CatalogError {
        CatalogError::Load {
            dataset: self.target.dataset.clone(),
            path: Some(path.to_path_buf()),
            message: message.to_string(),
        }
    }

    fn save_err(&self, message: impl ToString) -> CatalogError {
        CatalogError::Save {
            dataset: self.target.dataset.clone(),
            path: Some(self.target.save_file()),
            message: message.to_string(),
        }
    }

    /// One sheet's rows as JSON objects (or lists of cells without a header).
    fn sheet_rows(
        &self,
        path: &Path,
        sheet: &str,
        range: &calamine::Range<Cell>,
    ) -> Result<Vec<Value>, CatalogError> {
        let (first_row, first_col) = range.start().unwrap_or((0, 0));
        let mut rows = range.rows().enumerate().skip(self.load.skip_rows);
        let columns: Vec<String> = match self.load.header {
            Some(h) => {
                let mut names = Vec::new();
                // Rows between skiprows and the header row are skipped too.
                for _ in 0..h {
                    rows.next();
                }
                if let Some((r, header)) = rows.next() {
                    for (c, cell) in header.iter().enumerate() {
                        let name = match cell_value(cell) {
                            Ok(Value::String(s)) => s,
                            Ok(Value::Null) => format!("Unnamed: {c}"),
                            Ok(other) => other.to_string(),
                            Err(e) => {
                                return Err(
                                    self.load_err(path, cell_error(sheet, first_row, first_col, r, c, &e))
                                );
                            }
                        };
                        if names.contains(&name) {
                            return Err(self.load_err(
                                path,
                                format!("sheet `{sheet}`: column `{name}` appears twice in the header row"),
                            ));
                        }
                        names.push(name);
                    }
                }
                names
            }
            None => Vec::new(),
        };
        let mut out = Vec::new();
        for (r, row) in rows {
            if row.iter().all(|c| matches!(c, Cell::Empty)) {
                continue;
            }
            let mut values = Vec::with_capacity(row.len());
            for (c, cell) in row.iter().enumerate() {
                values.push(
                    cell_value(cell).map_err(|e| {
                        self.load_err(path, cell_error(sheet, first_row, first_col, r, c, &e))
                    })?,
                );
            }
            if self.load.header.is_some() {
                let mut object = Map::new();
                for (i, v) in values.into_iter().enumerate() {
                    let key = columns.get(i).cloned().unwrap_or_else(|| format!("Unnamed: {i}"));
                    object.insert(key, v);
                }
                out.push(Value::Object(object));
            } else {
                let object: Map<String, Value> = values
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| (i.to_string(), v))
                    .collect();
                out.push(Value::Object(object));
            }
        }
        Ok(out)
    }

    fn to_request(
        &self,
        path: &Path,
        value: Value,
        request: Option<&DataType>,
    ) -> Result<Data, CatalogError> {
        let batch = DataType::of::<RecordBatch>();
        match request {
            Some(ty) if *ty == batch => {
                let Value::Array(rows) = value else {
                    return Err(self.load_err(
                        path,
                        "several sheets load as a map of sheet name to rows, not as one RecordBatch",
                    ));
                };
                weft_catalog::rows_to_batch(&rows)
                    .map(Data::new)
                    .map_err(|e| self.load_err(path, e))
            }
            Some(ty) if ty.is_decodable() => ty
                .decode(&mut <dyn erased_serde::Deserializer>::erase(value))
                .map_err(|e| self.load_err(path, e)),
            _ => Ok(Data::new(value)),
        }
    }
}

fn cell_error(sheet: &str, first_row: u32, first_col: u32, r: usize, c: usize, message: &str) -> String {
    let row = first_row as usize + r + 1;
    let col = first_col as usize + c;
    format!("sheet `{sheet}`, cell {}{row}: {message}", column_letters(col))
}

/// `0` → `A`, `25` → `Z`, `26` → `AA`.
fn column_letters(mut col: usize) -> String {
    let mut letters = Vec::new();
    loop {
        letters.push(b'A' + (col % 26) as u8);
        if col < 26 {
            break;
        }
        col = col / 26 - 1;
    }
    letters.reverse();
    String::from_utf8(letters).unwrap_or_default()
}

fn cell_value(cell: &Cell) -> Result<Value, String> {
    Ok(match cell {
        Cell::Empty => Value::Null,
        Cell::Int(i) => Value::from(*i),
        Cell::Float(f) => {
            if f.fract() == 0.0 && f.abs() < 9.0e15 {
                Value::from(*f as i64)
            } else {
                serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number)
            }
        }
        Cell::String(s) => Value::String(s.clone()),
        Cell::Bool(b) => Value::Bool(*b),
        Cell::DateTime(dt) => Value::String(excel_serial_to_iso(dt.as_f64(), dt.is_datetime())?),
        Cell::DateTimeIso(s) | Cell::DurationIso(s) => Value::String(s.clone()),
        Cell::Error(e) => return Err(format!("the cell holds the error {e}")),
    })
}

/// An Excel serial date (days since 1899-12-30, the fraction the time of
/// day) as ISO 8601: a date, or a date and time when it has one.
fn excel_serial_to_iso(serial: f64, is_datetime: bool) -> Result<String, String> {
    if !serial.is_finite() || !(0.0..3_000_000.0).contains(&serial) {
        return Err(format!("date serial {serial} is out of range"));
    }
    if !is_datetime {
        // A duration: seconds.
        return Ok(format!("PT{}S", (serial * 86_400.0).round()));
    }
    let days = serial.floor() as i64;
    let seconds = ((serial - serial.floor()) * 86_400.0).round() as i64;
    let epoch = jiff::civil::date(1899, 12, 30).at(0, 0, 0, 0);
    let at = epoch
        .checked_add(jiff::Span::new().days(days).seconds(seconds))
        .map_err(|e| format!("date serial {serial}: {e}"))?;
    Ok(if seconds == 0 {
        at.date().to_string()
    } else {
        at.to_string()
    })
}

impl Dataset for ExcelDataset {
    fn load(&self, request: Option<&DataType>) -> Result<Data, CatalogError> {
        let (path, bytes) = self.target.read()?;
        let mut book = calamine::open_workbook_auto_from_rs(Cursor::new(bytes)).map_err(|e| {
            self.load_err(
                &path,
                format!("not a workbook calamine can read (.xlsx, .xlsm, .xls, .xlsb, .ods): {e}"),
            )
        })?;
        let names = book.sheet_names();
        let resolve = |r: &SheetRef| -> Result<String, CatalogError> {
            match r {
                SheetRef::Name(n) if names.contains(n) => Ok(n.clone()),
                SheetRef::Name(n) => {
                    Err(self.load_err(&path, format!("no sheet `{n}`; the workbook has {names:?}")))
                }
                SheetRef::Index(i) => names.get(*i).cloned().ok_or_else(|| {
                    self.load_err(
                        &path,
                        format!(
                            "no sheet at index {i}; the workbook has {} sheet(s): {names:?}",
                            names.len()
                        ),
                    )
                }),
            }
        };
        let mut read = |name: &str| -> Result<Vec<Value>, CatalogError> {
            let range = book
                .worksheet_range(name)
                .map_err(|e| self.load_err(&path, format!("sheet `{name}`: {e}")))?;
            self.sheet_rows(&path, name, &range)
        };
        let value = match &self.load.sheets {
            SheetChoice::One(r) => {
                let name = resolve(r)?;
                Value::Array(read(&name)?)
            }
            SheetChoice::Many(choice) => {
                let chosen: Vec<String> = match choice {
                    None => names.clone(),
                    Some(refs) => refs.iter().map(&resolve).collect::<Result<_, _>>()?,
                };
                let mut map = Map::new();
                for name in chosen {
                    let rows = read(&name)?;
                    map.insert(name, Value::Array(rows));
                }
                Value::Object(map)
            }
        };
        self.to_request(&path, value, request)
    }

    fn save(&self, data: &Data) -> Result<(), CatalogError> {
        let json = if let Some(batch) = data.downcast_ref::<RecordBatch>() {
            batch_to_rows(batch).map_err(|e| self.save_err(e))?
        } else {
            let value = data.as_serialize().ok_or_else(|| {
                self.save_err(format!(
                    "values of type `{}` cannot be written to a workbook; save rows (a list of objects), a RecordBatch, or a map of sheet name to rows",
                    data.type_name()
                ))
            })?;
            serde_json::to_value(value).map_err(|e| self.save_err(e))?
        };
        let sheets: Vec<(String, Vec<Value>)> = match json {
            Value::Array(rows) => vec![(self.save_sheet.clone(), rows)],
            Value::Object(map) if map.values().all(Value::is_array) && !map.is_empty() => map
                .into_iter()
                .map(|(k, v)| (k, v.as_array().cloned().unwrap_or_default()))
                .collect(),
            _ => {
                return Err(self.save_err(
                    "a workbook needs rows (a list of objects or lists) or a map of sheet name to rows",
                ));
            }
        };
        let mut book = rust_xlsxwriter::Workbook::new();
        for (name, rows) in &sheets {
            write_sheet(&mut book, name, rows).map_err(|e| self.save_err(format!("sheet `{name}`: {e}")))?;
        }
        let bytes = book.save_to_buffer().map_err(|e| self.save_err(e))?;
        self.target
            .write_with(|w| w.write_all(&bytes).map_err(|e| e.to_string()))
            .map(|_| ())
    }

    fn exists(&self) -> Result<bool, CatalogError> {
        self.target.try_exists()
    }

    fn describe(&self) -> DatasetInfo {
        DatasetInfo {
            name: self.target.dataset.clone(),
            type_name: self.type_name.clone(),
            filepath: Some(self.filepath.clone()),
            versioned: self.target.versioned,
            pattern: None,
        }
    }

    fn load_type(&self) -> LoadType {
        LoadType::Table
    }

    fn file_target(&self) -> Option<&FileTarget> {
        Some(&self.target)
    }
}

fn batch_to_rows(batch: &RecordBatch) -> Result<Value, String> {
    let json = weft_catalog::batch_to_json(batch)?;
    serde_json::from_slice(&json).map_err(|e| e.to_string())
}

fn write_sheet(book: &mut rust_xlsxwriter::Workbook, name: &str, rows: &[Value]) -> Result<(), String> {
    let sheet = book.add_worksheet();
    sheet.set_name(name).map_err(|e| e.to_string())?;
    // Columns in first-seen order over every row object.
    let mut columns: Vec<String> = Vec::new();
    for row in rows {
        if let Value::Object(m) = row {
            for k in m.keys() {
                if !columns.contains(k) {
                    columns.push(k.clone());
                }
            }
        }
    }
    let header = !columns.is_empty();
    if header {
        for (c, name) in columns.iter().enumerate() {
            sheet
                .write_string(0, col_index(c)?, name)
                .map_err(|e| e.to_string())?;
        }
    }
    for (i, row) in rows.iter().enumerate() {
        let r =
            u32::try_from(i + usize::from(header)).map_err(|_| "too many rows for a sheet".to_string())?;
        let cells: Vec<&Value> = match row {
            Value::Object(m) => columns.iter().map(|c| m.get(c).unwrap_or(&Value::Null)).collect(),
            Value::Array(items) => items.iter().collect(),
            other => {
                return Err(format!(
                    "row {}: expected an object or a list, got {other}",
                    i + 1
                ));
            }
        };
        for (c, v) in cells.into_iter().enumerate() {
            let c = col_index(c)?;
            let written = match v {
                Value::Null => continue,
                Value::Bool(b) => sheet.write_boolean(r, c, *b).map(|_| ()),
                Value::Number(n) => sheet
                    .write_number(r, c, n.as_f64().unwrap_or(f64::NAN))
                    .map(|_| ()),
                Value::String(s) => sheet.write_string(r, c, s).map(|_| ()),
                nested => sheet.write_string(r, c, nested.to_string()).map(|_| ()),
            };
            written.map_err(|e| format!("row {}: {e}", i + 1))?;
        }
    }
    Ok(())
}

fn col_index(c: usize) -> Result<u16, String> {
    u16::try_from(c)
        .ok()
        .filter(|c| *c < 16_384)
        .ok_or_else(|| "more than 16,384 columns".to_string())
}
