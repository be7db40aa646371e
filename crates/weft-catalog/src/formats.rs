//! File datasets: JSON, YAML, CSV, Parquet, Arrow IPC, text and bytes.

use std::sync::Arc;

use arrow_array::RecordBatch;
use serde_json::Value;
use weft_pipeline::{Data, DataType};

use crate::file::FileTarget;
use crate::{CatalogError, Dataset, DatasetInfo, LoadType};

/// The on-disk format of a [`FileDataset`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// JSON (serde).
    Json,
    /// YAML (serde).
    Yaml,
    /// CSV rows (serde, header row by default).
    Csv,
    /// Apache Parquet (Arrow record batches).
    Parquet,
    /// Arrow IPC file format.
    ArrowIpc,
    /// UTF-8 text as `String`.
    Text,
    /// Raw bytes as `Vec<u8>`.
    Bytes,
}

/// A dataset stored in one file (optionally versioned).
pub struct FileDataset {
    /// Where it lives.
    pub target: FileTarget,
    /// How it is encoded.
    pub format: Format,
    /// The configured type name.
    pub type_name: String,
    /// The `filepath` as configured.
    pub filepath: String,
    /// `load_args` from the catalog.
    pub load_args: Value,
    /// `save_args` from the catalog.
    pub save_args: Value,
}

fn erase<'a, 'de, D: serde::Deserializer<'de> + 'a>(d: D) -> Box<dyn erased_serde::Deserializer<'de> + 'a> {
    Box::new(<dyn erased_serde::Deserializer>::erase(d))
}

/// JSON row objects as one Arrow table, column types inferred from the
/// rows; zero rows give a table with no columns.
pub fn rows_to_batch(rows: &[Value]) -> Result<RecordBatch, String> {
    if rows.is_empty() {
        return Ok(RecordBatch::new_empty(Arc::new(arrow_schema::Schema::empty())));
    }
    let schema = arrow_json::reader::infer_json_schema_from_iterator(rows.iter().map(|r| Ok(r.clone())))
        .map_err(|e| e.to_string())?;
    let mut decoder = arrow_json::ReaderBuilder::new(Arc::new(schema))
        .with_batch_size(rows.len())
        .build_decoder()
        .map_err(|e| e.to_string())?;
    decoder.serialize(rows).map_err(|e| e.to_string())?;
    decoder
        .flush()
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "no rows decoded".to_string())
}

/// An Arrow table as the JSON text of a list of row objects (`[]` for no rows).
pub fn batch_to_json(batch: &RecordBatch) -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    {
        let mut writer = arrow_json::ArrayWriter::new(&mut buf);
        writer.write(batch).map_err(|e| e.to_string())?;
        writer.finish().map_err(|e| e.to_string())?;
    }
    if buf.is_empty() {
        buf = b"[]".to_vec();
    }
    Ok(buf)
}

impl FileDataset {
    fn load_err(&self, path: &std::path::Path, message: impl ToString) -> CatalogError {
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

    fn csv_delimiter(args: &Value) -> u8 {
        args.get("delimiter")
            .or_else(|| args.get("sep"))
            .and_then(Value::as_str)
            .and_then(|s| s.bytes().next())
            .unwrap_or(b',')
    }

    fn has_header(args: &Value) -> bool {
        args.get("has_header").and_then(Value::as_bool).unwrap_or(true)
    }

    fn serializable<'a>(&self, data: &'a Data) -> Result<&'a dyn erased_serde::Serialize, CatalogError> {
        data.as_serialize().ok_or_else(|| {
            self.save_err(format!(
                "values of type `{}` cannot be written as {:?}; declare the type with serde_data! or use a memory dataset",
                data.type_name(),
                self.format
            ))
        })
    }

    fn decode_serde(
        &self,
        path: &std::path::Path,
        request: Option<&DataType>,
        de: Box<dyn erased_serde::Deserializer<'_> + '_>,
    ) -> Result<Data, CatalogError> {
        let mut de = de;
        match request.filter(|r| r.is_decodable()) {
            Some(ty) => ty.decode(&mut *de).map_err(|e| self.load_err(path, e)),
            None => erased_serde::deserialize::<Value>(&mut *de)
                .map(Data::new)
                .map_err(|e| self.load_err(path, e)),
        }
    }

    fn load_csv(
        &self,
        path: &std::path::Path,
        bytes: &[u8],
        request: Option<&DataType>,
    ) -> Result<Data, CatalogError> {
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(Self::csv_delimiter(&self.load_args))
            .has_headers(Self::has_header(&self.load_args))
            .from_reader(bytes);
        let headers: Vec<String> = if Self::has_header(&self.load_args) {
            let headers: Vec<String> = reader
                .headers()
                .map_err(|e| self.load_err(path, e))?
                .iter()
                .map(str::to_string)
                .collect();
            let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
            for (i, h) in headers.iter().enumerate() {
                if let Some(first) = seen.insert(h.as_str(), i) {
                    return Err(CatalogError::DuplicateColumn {
                        dataset: self.target.dataset.clone(),
                        path: path.to_path_buf(),
                        column: h.clone(),
                        first: first + 1,
                        second: i + 1,
                    });
                }
            }
            headers
        } else {
            Vec::new()
        };
        let rows: Vec<csv::StringRecord> = reader
            .records()
            .collect::<Result<_, _>>()
            .map_err(|e| self.load_err(path, e))?;
        let headers = if headers.is_empty() {
            (0..rows.first().map_or(0, |r| r.len()))
                .map(|i| i.to_string())
                .collect()
        } else {
            headers
        };
        let table = crate::csv_de::Table {
            headers: &headers,
            rows: &rows,
        };
        self.decode_serde(path, request, erase(table))
    }

    fn save_csv(&self, data: &Data) -> Result<(), CatalogError> {
        let json = serde_json::to_value(self.serializable(data)?).map_err(|e| self.save_err(e))?;
        let Value::Array(rows) = json else {
            return Err(self.save_err("CSV needs a list of rows (objects or lists)"));
        };
        let delimiter = Self::csv_delimiter(&self.save_args);
        let header = Self::has_header(&self.save_args);
        self.target
            .write_with(|w| {
                let mut out = csv::WriterBuilder::new().delimiter(delimiter).from_writer(w);
                let cell = |v: &Value| match v {
                    Value::Null => String::new(),
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let columns: Vec<String> = match rows.first() {
                    Some(Value::Object(m)) => m.keys().cloned().collect(),
                    _ => Vec::new(),
                };
                if header && !columns.is_empty() {
                    out.write_record(&columns).map_err(|e| e.to_string())?;
                }
                for (i, row) in rows.iter().enumerate() {
                    let record: Vec<String> = match row {
                        Value::Object(m) => columns
                            .iter()
                            .map(|c| m.get(c).map(cell).unwrap_or_default())
                            .collect(),
                        Value::Array(items) => items.iter().map(cell).collect(),
                        other => {
                            return Err(format!(
                                "row {}: expected an object or a list, got {other}",
                                i + 1
                            ));
                        }
                    };
                    out.write_record(&record).map_err(|e| e.to_string())?;
                }
                out.flush().map_err(|e| e.to_string())
            })
            .map(|_| ())
    }

    fn table_to_request(
        &self,
        path: &std::path::Path,
        batch: RecordBatch,
        request: Option<&DataType>,
    ) -> Result<Data, CatalogError> {
        let batch_type = DataType::of::<RecordBatch>();
        match request {
            Some(ty) if *ty != batch_type && ty.is_decodable() => {
                let buf = batch_to_json(&batch).map_err(|e| self.load_err(path, e))?;
                let mut de = serde_json::Deserializer::from_slice(&buf);
                ty.decode(&mut <dyn erased_serde::Deserializer>::erase(&mut de))
                    .map_err(|e| self.load_err(path, e))
            }
            _ => Ok(Data::new(batch)),
        }
    }

    fn to_batch(&self, data: &Data) -> Result<RecordBatch, CatalogError> {
        if let Some(batch) = data.downcast_ref::<RecordBatch>() {
            return Ok(batch.clone());
        }
        let json = serde_json::to_value(self.serializable(data)?).map_err(|e| self.save_err(e))?;
        let Value::Array(rows) = json else {
            return Err(self.save_err("a table needs a RecordBatch or a list of row objects"));
        };
        if rows.is_empty() {
            return Err(self.save_err("cannot infer a table schema from zero rows"));
        }
        rows_to_batch(&rows).map_err(|e| self.save_err(e))
    }

    fn load_parquet(
        &self,
        path: &std::path::Path,
        bytes: Vec<u8>,
        request: Option<&DataType>,
    ) -> Result<Data, CatalogError> {
        let builder =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))
                .map_err(|e| self.load_err(path, e))?;
        let schema = builder.schema().clone();
        let reader = builder.build().map_err(|e| self.load_err(path, e))?;
        self.one_table(path, &schema, reader, request)
    }

    /// Concatenates a reader's batches into one table, then converts it to
    /// the requested type.
    fn one_table<E: std::fmt::Display>(
        &self,
        path: &std::path::Path,
        schema: &arrow_schema::SchemaRef,
        batches: impl Iterator<Item = Result<RecordBatch, E>>,
        request: Option<&DataType>,
    ) -> Result<Data, CatalogError> {
        let batches: Vec<RecordBatch> = batches
            .collect::<Result<_, _>>()
            .map_err(|e| self.load_err(path, e))?;
        let batch =
            arrow_select::concat::concat_batches(schema, &batches).map_err(|e| self.load_err(path, e))?;
        self.table_to_request(path, batch, request)
    }

    fn load_ipc(
        &self,
        path: &std::path::Path,
        bytes: Vec<u8>,
        request: Option<&DataType>,
    ) -> Result<Data, CatalogError> {
        let reader = arrow_ipc::reader::FileReader::try_new(std::io::Cursor::new(bytes), None)
            .map_err(|e| self.load_err(path, e))?;
        let schema = reader.schema();
        self.one_table(path, &schema, reader, request)
    }
}

impl Dataset for FileDataset {
    fn load(&self, request: Option<&DataType>) -> Result<Data, CatalogError> {
        let (path, bytes) = self.target.read()?;
        match self.format {
            Format::Json => {
                let mut de = serde_json::Deserializer::from_slice(&bytes);
                let data = self.decode_serde(&path, request, erase(&mut de))?;
                de.end().map_err(|e| self.load_err(&path, e))?;
                Ok(data)
            }
            Format::Yaml => {
                let text = String::from_utf8(bytes).map_err(|e| self.load_err(&path, e))?;
                let mut out = None;
                let mut options = serde_saphyr::Options::default();
                options.strict_booleans = true;
                serde_saphyr::with_deserializer_from_str_with_options(&text, options, |de| {
                    out = Some(self.decode_serde(&path, request, erase(de)));
                    Ok(())
                })
                .map_err(|e| self.load_err(&path, e))?;
                out.unwrap_or_else(|| Err(self.load_err(&path, "empty YAML document")))
            }
            Format::Csv => self.load_csv(&path, &bytes, request),
            Format::Parquet => self.load_parquet(&path, bytes, request),
            Format::ArrowIpc => self.load_ipc(&path, bytes, request),
            Format::Text => Ok(Data::new(
                String::from_utf8(bytes).map_err(|e| self.load_err(&path, e))?,
            )),
            Format::Bytes => Ok(Data::new(bytes)),
        }
    }

    fn save(&self, data: &Data) -> Result<(), CatalogError> {
        match self.format {
            Format::Json => {
                let value = self.serializable(data)?;
                let pretty = self.save_args.get("indent").is_some_and(|v| !v.is_null());
                self.target
                    .write_with(|w| {
                        let r = if pretty {
                            serde_json::to_writer_pretty(&mut *w, value)
                        } else {
                            serde_json::to_writer(&mut *w, value)
                        };
                        r.map_err(|e| e.to_string())?;
                        w.write_all(b"\n").map_err(|e| e.to_string())
                    })
                    .map(|_| ())
            }
            Format::Yaml => {
                let value = serde_json::to_value(self.serializable(data)?).map_err(|e| self.save_err(e))?;
                let text = serde_saphyr::to_string(&value).map_err(|e| self.save_err(e))?;
                self.target
                    .write_with(|w| w.write_all(text.as_bytes()).map_err(|e| e.to_string()))
                    .map(|_| ())
            }
            Format::Csv => self.save_csv(data),
            Format::Parquet => {
                let batch = self.to_batch(data)?;
                self.target
                    .write_with(|w| {
                        let mut writer = parquet::arrow::ArrowWriter::try_new(w, batch.schema(), None)
                            .map_err(|e| e.to_string())?;
                        writer.write(&batch).map_err(|e| e.to_string())?;
                        writer.close().map(|_| ()).map_err(|e| e.to_string())
                    })
                    .map(|_| ())
            }
            Format::ArrowIpc => {
                let batch = self.to_batch(data)?;
                self.target
                    .write_with(|w| {
                        let mut writer = arrow_ipc::writer::FileWriter::try_new(w, &batch.schema())
                            .map_err(|e| e.to_string())?;
                        writer.write(&batch).map_err(|e| e.to_string())?;
                        writer.finish().map_err(|e| e.to_string())
                    })
                    .map(|_| ())
            }
            Format::Text => {
                let text = match data.downcast_ref::<String>() {
                    Some(s) => s.clone(),
                    None => match data.to_json() {
                        Ok(Value::String(s)) => s,
                        _ => {
                            return Err(
                                self.save_err(format!("text needs a String, got `{}`", data.type_name()))
                            );
                        }
                    },
                };
                self.target
                    .write_with(|w| w.write_all(text.as_bytes()).map_err(|e| e.to_string()))
                    .map(|_| ())
            }
            Format::Bytes => {
                let bytes = data
                    .downcast_ref::<Vec<u8>>()
                    .ok_or_else(|| {
                        self.save_err(format!("bytes needs a Vec<u8>, got `{}`", data.type_name()))
                    })?
                    .clone();
                self.target
                    .write_with(|w| w.write_all(&bytes).map_err(|e| e.to_string()))
                    .map(|_| ())
            }
        }
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
        match self.format {
            Format::Json | Format::Yaml | Format::Csv => LoadType::Decodes,
            Format::Parquet | Format::ArrowIpc => LoadType::Table,
            Format::Text => LoadType::Exact(DataType::of::<String>()),
            Format::Bytes => LoadType::Exact(DataType::of::<Vec<u8>>()),
        }
    }

    fn file_target(&self) -> Option<&FileTarget> {
        Some(&self.target)
    }
}
