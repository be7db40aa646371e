//! `plotly.JSONDataset` (a Plotly figure as JSON) and `plotly.PlotlyDataset`
//! (a figure built from rows with `plotly_args`, as Kedro's does).

use std::path::Path;
use std::sync::Arc;

use arrow_array::RecordBatch;
use serde_json::{Map, Value, json};
use weft_catalog::file::FileTarget;
use weft_catalog::{CatalogError, Dataset, DatasetInfo, DatasetSpec, LoadType};
use weft_pipeline::{Data, DataType};

use crate::chart::{Chart, PlotlyFigure};

/// Plotly express' first colour (the `plotly` template's colorway).
const PX_COLOR: &str = "#636efa";

/// Which figure file a dataset writes: a figure as saved, or one built from rows.
#[derive(Clone, Debug, PartialEq)]
enum Mode {
    /// `plotly.JSONDataset`: the node returns the figure.
    Json,
    /// `plotly.PlotlyDataset`: the node returns rows.
    Rows(PlotlyArgs),
}

/// `plotly_args`: the plotly express call Kedro makes.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PlotlyArgs {
    kind: PxKind,
    x: String,
    y: String,
    orientation: Option<String>,
    title: Option<String>,
    layout: Map<String, Value>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum PxKind {
    Bar,
    Line,
    Scatter,
}

impl PlotlyArgs {
    fn parse(args: &Value) -> Result<Self, String> {
        let Value::Object(map) = args else {
            return Err("plotly_args: expected a map with `type`, `fig` and `layout`".into());
        };
        for key in map.keys() {
            if !["type", "fig", "layout"].contains(&key.as_str()) {
                return Err(format!(
                    "plotly_args.{key}: unknown argument (expected `type`, `fig`, `layout`)"
                ));
            }
        }
        let kind = match map.get("type").and_then(Value::as_str) {
            Some("bar") => PxKind::Bar,
            Some("line") => PxKind::Line,
            Some("scatter") => PxKind::Scatter,
            Some(other) => {
                return Err(format!(
                    "plotly_args.type: expected bar, line or scatter, got `{other}`"
                ));
            }
            None => return Err("plotly_args.type: required (bar, line or scatter)".into()),
        };
        let fig = match map.get("fig") {
            Some(Value::Object(f)) => f.clone(),
            Some(other) => return Err(format!("plotly_args.fig: expected a map, got {other}")),
            None => return Err("plotly_args.fig: required (a map with `x` and `y`)".into()),
        };
        let column = |key: &str| -> Result<String, String> {
            match fig.get(key) {
                Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
                Some(other) => Err(format!(
                    "plotly_args.fig.{key}: expected a column name, got {other}"
                )),
                None => Err(format!("plotly_args.fig.{key}: required (a column name)")),
            }
        };
        let x = column("x")?;
        let y = column("y")?;
        let orientation = match fig.get("orientation") {
            None | Some(Value::Null) => None,
            Some(Value::String(o)) if o == "h" || o == "v" => Some(o.clone()),
            Some(other) => {
                return Err(format!(
                    "plotly_args.fig.orientation: expected h or v, got {other}"
                ));
            }
        };
        let title = match fig.get("title") {
            None | Some(Value::Null) => None,
            Some(Value::String(t)) => Some(t.clone()),
            Some(other) => return Err(format!("plotly_args.fig.title: expected text, got {other}")),
        };
        for key in fig.keys() {
            if !["x", "y", "orientation", "title"].contains(&key.as_str()) {
                return Err(format!(
                    "plotly_args.fig.{key}: not supported (weft builds figures from `x`, `y`, `orientation` and `title`)"
                ));
            }
        }
        let layout = match map.get("layout") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(l)) => l.clone(),
            Some(other) => return Err(format!("plotly_args.layout: expected a map, got {other}")),
        };
        Ok(PlotlyArgs {
            kind,
            x,
            y,
            orientation,
            title,
            layout,
        })
    }

    /// The figure plotly express builds from `rows`, then
    /// `fig.update_layout(layout)`.
    pub(crate) fn figure(&self, rows: &[Map<String, Value>]) -> Result<PlotlyFigure, String> {
        let column = |name: &str| -> Result<Vec<Value>, String> {
            rows.iter()
                .enumerate()
                .map(|(i, row)| {
                    row.get(name).cloned().ok_or_else(|| {
                        let mut have: Vec<&str> = row.keys().map(String::as_str).collect();
                        have.sort_unstable();
                        format!("row {}: no column `{name}` (the row has {have:?})", i + 1)
                    })
                })
                .collect()
        };
        let x = column(&self.x)?;
        let y = column(&self.y)?;
        let hovertemplate = format!("{}=%{{x}}<br>{}=%{{y}}<extra></extra>", self.x, self.y);
        let orientation = self.orientation.clone().unwrap_or_else(|| "v".into());
        let trace = match self.kind {
            PxKind::Bar => json!({
                "alignmentgroup": "True",
                "hovertemplate": hovertemplate,
                "legendgroup": "",
                "marker": {"color": PX_COLOR, "pattern": {"shape": ""}},
                "name": "",
                "offsetgroup": "",
                "orientation": orientation,
                "showlegend": false,
                "textposition": "auto",
                "x": x,
                "xaxis": "x",
                "y": y,
                "yaxis": "y",
                "type": "bar",
            }),
            PxKind::Line => json!({
                "hovertemplate": hovertemplate,
                "legendgroup": "",
                "line": {"color": PX_COLOR, "dash": "solid"},
                "marker": {"symbol": "circle"},
                "mode": "lines",
                "name": "",
                "orientation": orientation,
                "showlegend": false,
                "x": x,
                "xaxis": "x",
                "y": y,
                "yaxis": "y",
                "type": "scatter",
            }),
            PxKind::Scatter => json!({
                "hovertemplate": hovertemplate,
                "legendgroup": "",
                "marker": {"color": PX_COLOR, "symbol": "circle"},
                "mode": "markers",
                "name": "",
                "orientation": orientation,
                "showlegend": false,
                "x": x,
                "xaxis": "x",
                "y": y,
                "yaxis": "y",
                "type": "scatter",
            }),
        };
        let mut layout = json!({
            "xaxis": {"anchor": "y", "domain": [0.0, 1.0], "title": {"text": self.x}},
            "yaxis": {"anchor": "x", "domain": [0.0, 1.0], "title": {"text": self.y}},
            "legend": {"tracegrouporder": "normal"},
            "margin": {"t": 60},
        });
        if self.kind == PxKind::Bar {
            layout["barmode"] = json!("relative");
        }
        if let Some(t) = &self.title {
            layout["title"] = json!({"text": t});
        }
        let Value::Object(mut layout) = layout else {
            return Err("internal: the layout is an object".into());
        };
        update_layout(&mut layout, &self.layout);
        Ok(PlotlyFigure {
            data: vec![trace],
            layout,
        })
    }
}

/// Layout containers whose properties plotly's `update_layout` reaches
/// with "magic underscores" (`xaxis_title` → `xaxis.title`).
const MAGIC_ROOTS: &[&str] = &[
    "xaxis",
    "yaxis",
    "title",
    "legend",
    "font",
    "margin",
    "hoverlabel",
    "coloraxis",
];

/// `fig.update_layout(updates)`: nested maps merge, magic underscores
/// expand under [`MAGIC_ROOTS`], and a text `title` becomes `{"text": ...}`.
fn update_layout(layout: &mut Map<String, Value>, updates: &Map<String, Value>) {
    for (key, value) in updates {
        let path: Vec<&str> = match key.split_once('_') {
            Some((root, _)) if MAGIC_ROOTS.contains(&root) || is_axis(root) => key.split('_').collect(),
            _ => vec![key.as_str()],
        };
        merge_at(layout, &path, value);
    }
}

/// `xaxis2`, `yaxis3`, ...
fn is_axis(root: &str) -> bool {
    ["xaxis", "yaxis"].iter().any(|a| {
        root.strip_prefix(a)
            .is_some_and(|n| n.chars().all(|c| c.is_ascii_digit()))
    })
}

fn merge_at(map: &mut Map<String, Value>, path: &[&str], value: &Value) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    if rest.is_empty() {
        let value = if *first == "title" && value.is_string() {
            json!({"text": value})
        } else {
            value.clone()
        };
        match (map.get_mut(*first), value) {
            (Some(Value::Object(existing)), Value::Object(new)) => {
                let updates = new;
                update_nested(existing, &updates);
            }
            (_, value) => {
                map.insert((*first).to_string(), value);
            }
        }
        return;
    }
    let entry = map
        .entry((*first).to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        // `title: "x"` then `title_font_size`: the text moves under `text`.
        let old = std::mem::replace(entry, Value::Object(Map::new()));
        if let (Value::String(_), Value::Object(m)) = (&old, &mut *entry) {
            m.insert("text".into(), old);
        }
    }
    if let Value::Object(inner) = entry {
        merge_at(inner, rest, value);
    }
}

fn update_nested(existing: &mut Map<String, Value>, updates: &Map<String, Value>) {
    for (k, v) in updates {
        merge_at(existing, &[k.as_str()], v);
    }
}

/// The rows a node saved: a RecordBatch, a list of row objects, or a map
/// of column → values.
fn rows_of(data: &Data) -> Result<Vec<Map<String, Value>>, String> {
    let json = if let Some(batch) = data.downcast_ref::<RecordBatch>() {
        let bytes = weft_catalog::batch_to_json(batch)?;
        serde_json::from_slice(&bytes).map_err(|e| e.to_string())?
    } else {
        data.to_json().map_err(|e| e.to_string())?
    };
    match json {
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, row)| match row {
                Value::Object(m) => Ok(m),
                other => Err(format!("row {}: expected an object of columns, got {other}", i + 1)),
            })
            .collect(),
        Value::Object(columns) if columns.values().all(Value::is_array) && !columns.is_empty() => {
            let len = columns.values().map(|c| c.as_array().map_or(0, Vec::len)).max().unwrap_or(0);
            let mut rows = vec![Map::new(); len];
            for (name, column) in &columns {
                let values = column.as_array().map(Vec::as_slice).unwrap_or_default();
                if values.len() != len {
                    return Err(format!(
                        "column `{name}` has {} values, other columns {len}",
                        values.len()
                    ));
                }
                for (row, v) in rows.iter_mut().zip(values) {
                    row.insert(name.clone(), v.clone());
                }
            }
            Ok(rows)
        }
        _ => Err(
            "plotly.PlotlyDataset builds its figure from rows: save a table (rows, a RecordBatch, or a map of column to values); save a ready figure with plotly.JSONDataset"
                .into(),
        ),
    }
}

pub(crate) fn json_factory(spec: &DatasetSpec<'_>) -> Result<Arc<dyn Dataset>, String> {
    build(spec, Mode::Json)
}

pub(crate) fn plotly_factory(spec: &DatasetSpec<'_>) -> Result<Arc<dyn Dataset>, String> {
    let args = spec
        .config
        .get("plotly_args")
        .ok_or("plotly_args: required for plotly.PlotlyDataset (type, fig, layout)")?;
    let args = PlotlyArgs::parse(args)?;
    build(spec, Mode::Rows(args))
}

fn build(spec: &DatasetSpec<'_>, mode: Mode) -> Result<Arc<dyn Dataset>, String> {
    let (target, filepath) = spec.file_target("filepath")?;
    let save_args = spec.args("save_args")?;
    let mut pretty = false;
    for (key, v) in save_args.as_object().into_iter().flatten() {
        match (key.as_str(), v) {
            ("pretty", Value::Bool(b)) => pretty = *b,
            ("pretty", other) => {
                return Err(format!("save_args.pretty: expected true or false, got {other}"));
            }
            // plotly.io.write_json's JSON engine: one output either way.
            ("engine", Value::String(_)) => {}
            _ => return Err(format!("save_args.{key}: unknown argument (expected `pretty`)")),
        }
    }
    let load_args = spec.args("load_args")?;
    if let Some((key, _)) = load_args.as_object().and_then(|m| m.iter().next()) {
        return Err(format!(
            "load_args.{key}: unknown argument (a figure loads as it was saved)"
        ));
    }
    Ok(Arc::new(PlotlyJsonDataset {
        target,
        type_name: spec.type_name.to_string(),
        filepath,
        mode,
        pretty,
    }))
}

/// A Plotly figure in one JSON file (optionally versioned): saved as given
/// (`plotly.JSONDataset`) or built from rows (`plotly.PlotlyDataset`).
pub struct PlotlyJsonDataset {
    target: FileTarget,
    type_name: String,
    filepath: String,
    mode: Mode,
    pretty: bool,
}

impl PlotlyJsonDataset {
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

    fn figure(&self, data: &Data) -> Result<PlotlyFigure, String> {
        match &self.mode {
            Mode::Rows(args) => args.figure(&rows_of(data)?),
            Mode::Json => {
                if let Some(f) = data.downcast_ref::<PlotlyFigure>() {
                    return Ok(f.clone());
                }
                if let Some(c) = data.downcast_ref::<Chart>() {
                    c.validate()?;
                    return Ok(c.to_plotly());
                }
                let json = data.to_json().map_err(|e| e.to_string())?;
                PlotlyFigure::from_json(json)
            }
        }
    }
}

impl Dataset for PlotlyJsonDataset {
    fn load(&self, request: Option<&DataType>) -> Result<Data, CatalogError> {
        let (path, bytes) = self.target.read()?;
        let json: Value =
            serde_json::from_slice(&bytes).map_err(|e| self.load_err(&path, format!("not JSON: {e}")))?;
        match request {
            None => PlotlyFigure::from_json(json)
                .map(Data::new)
                .map_err(|e| self.load_err(&path, e)),
            Some(ty) if *ty == DataType::of::<PlotlyFigure>() => PlotlyFigure::from_json(json)
                .map(Data::new)
                .map_err(|e| self.load_err(&path, e)),
            Some(ty) => ty.decode_json(&json).map_err(|e| self.load_err(&path, e)),
        }
    }

    fn save(&self, data: &Data) -> Result<(), CatalogError> {
        let figure = self.figure(data).map_err(|e| self.save_err(e))?;
        let bytes = if self.pretty {
            serde_json::to_vec_pretty(&figure)
        } else {
            serde_json::to_vec(&figure)
        }
        .map_err(|e| self.save_err(e))?;
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
        LoadType::Decodes
    }

    fn file_target(&self) -> Option<&FileTarget> {
        Some(&self.target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_layout_expands_magic_underscores_and_text_titles() {
        let mut layout = json!({"xaxis": {"anchor": "y", "title": {"text": "a"}}, "margin": {"t": 60}})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let updates = json!({"xaxis_title": "Shuttles", "title": "T", "title_font_size": 20,
                             "paper_bgcolor": "white", "margin": {"l": 5}});
        update_layout(&mut layout, updates.as_object().unwrap_or(&Map::new()));
        assert_eq!(
            Value::Object(layout),
            json!({"xaxis": {"anchor": "y", "title": {"text": "Shuttles"}}, "margin": {"t": 60, "l": 5},
                   "title": {"text": "T", "font": {"size": 20}}, "paper_bgcolor": "white"})
        );
    }
}
