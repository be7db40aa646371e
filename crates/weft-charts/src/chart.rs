//! The chart values nodes return: a small [`Chart`] spec and a
//! [`PlotlyFigure`].

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// What a [`Chart`] draws.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChartKind {
    /// Bars, one per `x` category (grouped when there are several series).
    Bar,
    /// Lines through the points of each series.
    Line,
    /// Markers at the points of each series.
    Scatter,
    /// The distribution of each series' `x` values in [`Chart::bins`] bins.
    Histogram,
}

/// One `x` value: a number, or a category (text).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum XValue {
    /// A number.
    Number(f64),
    /// A category.
    Text(String),
}

impl From<f64> for XValue {
    fn from(v: f64) -> Self {
        XValue::Number(v)
    }
}

impl From<&str> for XValue {
    fn from(v: &str) -> Self {
        XValue::Text(v.to_string())
    }
}

impl XValue {
    fn to_json(&self) -> Value {
        match self {
            XValue::Number(n) => json!(n),
            XValue::Text(s) => json!(s),
        }
    }
}

/// One series of a [`Chart`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// The legend entry (no legend when no series has one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The `x` values (for a histogram: the values counted).
    #[serde(default)]
    pub x: Vec<XValue>,
    /// The `y` values, one per `x` (unused by a histogram).
    #[serde(default)]
    pub y: Vec<f64>,
}

/// A chart spec a node returns to `matplotlib.MatplotlibDataset` (drawn as
/// PNG or SVG) or `plotly.JSONDataset` (converted to a Plotly figure).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Chart {
    /// What to draw.
    pub kind: ChartKind,
    /// The series drawn.
    #[serde(default)]
    pub series: Vec<Series>,
    /// The title above the plot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The `x` axis title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x_title: Option<String>,
    /// The `y` axis title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y_title: Option<String>,
    /// Width in pixels (default 640).
    #[serde(default = "default_width")]
    pub width: u32,
    /// Height in pixels (default 480).
    #[serde(default = "default_height")]
    pub height: u32,
    /// Histogram bins (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bins: Option<u32>,
}

fn default_width() -> u32 {
    640
}

fn default_height() -> u32 {
    480
}

impl Chart {
    /// An empty chart of `kind`, 640 × 480.
    pub fn new(kind: ChartKind) -> Self {
        Chart {
            kind,
            series: Vec::new(),
            title: None,
            x_title: None,
            y_title: None,
            width: default_width(),
            height: default_height(),
            bins: None,
        }
    }

    /// The chart with a title.
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }

    /// The chart with axis titles.
    pub fn axes(mut self, x: impl Into<String>, y: impl Into<String>) -> Self {
        self.x_title = Some(x.into());
        self.y_title = Some(y.into());
        self
    }

    /// The chart with a size in pixels.
    pub fn size(mut self, width: u32, height: u32) -> Self {
        self.width = width;
        self.height = height;
        self
    }

    /// The chart with one more series.
    pub fn series(mut self, name: Option<&str>, x: Vec<XValue>, y: Vec<f64>) -> Self {
        self.series.push(Series {
            name: name.map(str::to_string),
            x,
            y,
        });
        self
    }

    /// Whether the chart can be drawn: a size from 16 to 8,192 pixels a
    /// side, one `y` per `x` (except histograms), at least one bin.
    pub fn validate(&self) -> Result<(), String> {
        for (side, v) in [("width", self.width), ("height", self.height)] {
            if !(16..=8192).contains(&v) {
                return Err(format!("chart {side} must be 16 to 8192 pixels, got {v}"));
            }
        }
        if self.bins == Some(0) {
            return Err("chart bins must be 1 or more".into());
        }
        for (i, s) in self.series.iter().enumerate() {
            if self.kind != ChartKind::Histogram && s.x.len() != s.y.len() {
                return Err(format!(
                    "series {} ({}): {} x values but {} y values",
                    i + 1,
                    s.name.as_deref().unwrap_or("unnamed"),
                    s.x.len(),
                    s.y.len()
                ));
            }
            if s.y.iter().any(|v| !v.is_finite())
                || s.x
                    .iter()
                    .any(|v| matches!(v, XValue::Number(n) if !n.is_finite()))
            {
                return Err(format!("series {}: values must be finite numbers", i + 1));
            }
        }
        Ok(())
    }

    /// The chart as a Plotly figure (one trace a series; titles in the
    /// layout; the size as `layout.width`/`height`).
    pub fn to_plotly(&self) -> PlotlyFigure {
        let data = self
            .series
            .iter()
            .map(|s| {
                let x: Vec<Value> = s.x.iter().map(XValue::to_json).collect();
                let mut trace = match self.kind {
                    ChartKind::Bar => json!({"type": "bar", "x": x, "y": s.y}),
                    ChartKind::Line => json!({"type": "scatter", "mode": "lines", "x": x, "y": s.y}),
                    ChartKind::Scatter => json!({"type": "scatter", "mode": "markers", "x": x, "y": s.y}),
                    ChartKind::Histogram => {
                        let mut t = json!({"type": "histogram", "x": x});
                        if let Some(bins) = self.bins {
                            t["nbinsx"] = json!(bins);
                        }
                        t
                    }
                };
                if let Some(name) = &s.name {
                    trace["name"] = json!(name);
                }
                trace
            })
            .collect();
        let mut layout = Map::new();
        if let Some(t) = &self.title {
            layout.insert("title".into(), json!({"text": t}));
        }
        if let Some(t) = &self.x_title {
            layout.insert("xaxis".into(), json!({"title": {"text": t}}));
        }
        if let Some(t) = &self.y_title {
            layout.insert("yaxis".into(), json!({"title": {"text": t}}));
        }
        layout.insert("width".into(), json!(self.width));
        layout.insert("height".into(), json!(self.height));
        PlotlyFigure { data, layout }
    }
}

/// A Plotly figure as JSON: `{"data": [traces], "layout": {...}}`, what
/// `plotly.io.read_json` reads and plotly.js draws.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PlotlyFigure {
    /// The traces.
    pub data: Vec<Value>,
    /// The layout.
    #[serde(default)]
    pub layout: Map<String, Value>,
}

impl PlotlyFigure {
    /// A figure from JSON, checking its shape: an object with a `data`
    /// list of trace objects and an optional `layout` object.
    pub fn from_json(value: Value) -> Result<Self, String> {
        let Value::Object(map) = value else {
            return Err("a Plotly figure is an object with `data` (a list of traces) and `layout`".into());
        };
        match map.get("data") {
            Some(Value::Array(traces)) if traces.iter().all(Value::is_object) => {}
            Some(_) => return Err("a Plotly figure's `data` must be a list of trace objects".into()),
            None => return Err("a Plotly figure needs `data` (a list of traces)".into()),
        }
        if let Some(l) = map.get("layout")
            && !l.is_object()
            && !l.is_null()
        {
            return Err("a Plotly figure's `layout` must be an object".into());
        }
        let mut map = map;
        if map.get("layout").is_some_and(Value::is_null) {
            map.remove("layout");
        }
        serde_json::from_value(Value::Object(map)).map_err(|e| e.to_string())
    }
}

weft_pipeline::serde_data!(Chart, PlotlyFigure);
