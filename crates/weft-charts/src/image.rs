//! `matplotlib.MatplotlibDataset`: a [`Chart`] drawn as PNG or SVG with
//! plotters, text in the vendored DejaVu Sans.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use plotters::coord::Shift;
use plotters::prelude::*;
use serde_json::Value;
use weft_catalog::file::FileTarget;
use weft_catalog::{CatalogError, Dataset, DatasetInfo, DatasetSpec, LoadType};
use weft_pipeline::{Data, DataType};

use crate::chart::{Chart, ChartKind, PlotlyFigure, XValue};

/// DejaVu Sans (Bitstream Vera licence, `fonts/DejaVuSans-LICENSE.txt`).
static FONT: &[u8] = include_bytes!("../fonts/DejaVuSans.ttf");

/// The font family every text is drawn in.
const FAMILY: &str = "sans-serif";

/// Plotly's colorway, one colour a series.
const COLORS: &[(u8, u8, u8)] = &[
    (0x63, 0x6e, 0xfa),
    (0xef, 0x55, 0x3b),
    (0x00, 0xcc, 0x96),
    (0xab, 0x63, 0xfa),
    (0xff, 0xa1, 0x5a),
    (0x19, 0xd3, 0xf3),
    (0xff, 0x66, 0x92),
    (0xb6, 0xe8, 0x80),
    (0xff, 0x97, 0xff),
    (0xfe, 0xcb, 0x52),
];

fn color(i: usize) -> RGBColor {
    let (r, g, b) = COLORS[i % COLORS.len()];
    RGBColor(r, g, b)
}

/// Registers the vendored font with plotters once.
fn font_ready() -> Result<(), String> {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    READY
        .get_or_init(|| {
            plotters::style::register_font(FAMILY, FontStyle::Normal, FONT)
                .map_err(|_| "the vendored DejaVu Sans font did not load".to_string())
        })
        .clone()
}

/// The image format a file is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageFormat {
    /// PNG (RGB, 8 bits).
    Png,
    /// SVG (text kept as text).
    Svg,
}

impl ImageFormat {
    fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "png" => Some(ImageFormat::Png),
            "svg" => Some(ImageFormat::Svg),
            _ => None,
        }
    }
}

/// Draws `chart` as `format` bytes.
pub fn render(chart: &Chart, format: ImageFormat) -> Result<Vec<u8>, String> {
    chart.validate()?;
    font_ready()?;
    let size = (chart.width, chart.height);
    match format {
        ImageFormat::Svg => {
            let mut svg = String::new();
            {
                let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
                draw(&root, chart)?;
                root.present().map_err(|e| e.to_string())?;
            }
            Ok(svg.into_bytes())
        }
        ImageFormat::Png => {
            let (w, h) = (chart.width as usize, chart.height as usize);
            let mut rgb = vec![0u8; w * h * 3];
            {
                let root = BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
                draw(&root, chart)?;
                root.present().map_err(|e| e.to_string())?;
            }
            let mut out = Vec::new();
            let mut encoder = png::Encoder::new(&mut out, chart.width, chart.height);
            encoder.set_color(png::ColorType::Rgb);
            encoder.set_depth(png::BitDepth::Eight);
            let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
            writer.write_image_data(&rgb).map_err(|e| e.to_string())?;
            writer.finish().map_err(|e| e.to_string())?;
            Ok(out)
        }
    }
}

/// How `x` is laid out: categories at 0, 1, 2, ... or numbers.
enum XAxis {
    Categories(Vec<String>),
    Numbers(f64, f64),
}

fn x_text(v: &XValue) -> String {
    match v {
        XValue::Text(s) => s.clone(),
        XValue::Number(n) => format_number(*n),
    }
}

fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

/// Padded `(min, max)` of `values` (`(0, 1)` when empty or flat).
fn span(values: impl Iterator<Item = f64>, include_zero: bool) -> (f64, f64) {
    let (mut lo, mut hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if include_zero {
        lo = lo.min(0.0);
        hi = hi.max(0.0);
    }
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    if (hi - lo).abs() < f64::EPSILON {
        return (lo - 1.0, hi + 1.0);
    }
    let pad = (hi - lo) * 0.05;
    (if include_zero && lo == 0.0 { 0.0 } else { lo - pad }, hi + pad)
}

/// A histogram's bins: `(start, width, counts)` per series.
fn histogram(chart: &Chart) -> Result<(f64, f64, Vec<Vec<u64>>), String> {
    let bins = chart.bins.unwrap_or(10) as usize;
    let mut all = Vec::new();
    let mut per_series = Vec::new();
    for (i, s) in chart.series.iter().enumerate() {
        let values: Vec<f64> =
            s.x.iter()
                .map(|v| match v {
                    XValue::Number(n) => Ok(*n),
                    XValue::Text(t) => Err(format!(
                        "series {}: a histogram counts numbers, got the text `{t}`",
                        i + 1
                    )),
                })
                .collect::<Result<_, _>>()?;
        all.extend(values.iter().copied());
        per_series.push(values);
    }
    let lo = all.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = all.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
    let width = if hi > lo { (hi - lo) / bins as f64 } else { 1.0 };
    let counts = per_series
        .iter()
        .map(|values| {
            let mut c = vec![0u64; bins];
            for v in values {
                let b = (((v - lo) / width).floor() as usize).min(bins - 1);
                c[b] += 1;
            }
            c
        })
        .collect();
    Ok((lo, width, counts))
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, chart: &Chart) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let hist = if chart.kind == ChartKind::Histogram {
        Some(histogram(chart)?)
    } else {
        None
    };
    let categorical = chart.kind == ChartKind::Bar
        || (chart.kind != ChartKind::Histogram
            && chart
                .series
                .iter()
                .any(|s| s.x.iter().any(|v| matches!(v, XValue::Text(_)))));
    let x_axis = if categorical {
        let mut cats: Vec<String> = Vec::new();
        for s in &chart.series {
            for v in &s.x {
                let t = x_text(v);
                if !cats.contains(&t) {
                    cats.push(t);
                }
            }
        }
        XAxis::Categories(cats)
    } else if let Some((lo, width, counts)) = &hist {
        let bins = counts.first().map_or(1, Vec::len);
        XAxis::Numbers(*lo, lo + width * bins as f64)
    } else {
        let (lo, hi) = span(
            chart.series.iter().flat_map(|s| {
                s.x.iter().filter_map(|v| match v {
                    XValue::Number(n) => Some(*n),
                    XValue::Text(_) => None,
                })
            }),
            false,
        );
        XAxis::Numbers(lo, hi)
    };
    let (x0, x1) = match &x_axis {
        XAxis::Categories(c) => (-0.5, c.len().max(1) as f64 - 0.5),
        XAxis::Numbers(lo, hi) => (*lo, *hi),
    };
    let (y0, y1) = match &hist {
        Some((_, _, counts)) => span(counts.iter().flatten().map(|c| *c as f64), true),
        None => span(
            chart.series.iter().flat_map(|s| s.y.iter().copied()),
            chart.kind == ChartKind::Bar,
        ),
    };
    let mut builder = ChartBuilder::on(root);
    builder
        .margin(12)
        .x_label_area_size(if chart.x_title.is_some() { 48 } else { 30 })
        .y_label_area_size(if chart.y_title.is_some() { 64 } else { 48 });
    if let Some(title) = &chart.title {
        builder.caption(title, (FAMILY, 22));
    }
    let mut ctx = builder.build_cartesian_2d(x0..x1, y0..y1).map_err(e)?;
    let category_label = |v: &f64| -> String {
        match &x_axis {
            XAxis::Categories(c) => {
                let i = v.round();
                if (v - i).abs() < 1e-6 && i >= 0.0 {
                    c.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            }
            XAxis::Numbers(..) => format_number(*v),
        }
    };
    let y_label = |v: &f64| format_number(*v);
    {
        let mut mesh = ctx.configure_mesh();
        mesh.label_style((FAMILY, 12))
            .axis_desc_style((FAMILY, 14))
            .x_label_formatter(&category_label)
            .y_label_formatter(&y_label)
            .light_line_style(RGBColor(235, 235, 235));
        if let XAxis::Categories(c) = &x_axis {
            mesh.x_labels(c.len().max(1) + 1).disable_x_mesh();
        }
        if let Some(t) = &chart.x_title {
            mesh.x_desc(t);
        }
        if let Some(t) = &chart.y_title {
            mesh.y_desc(t);
        }
        mesh.draw().map_err(e)?;
    }
    let n = chart.series.len().max(1);
    for (i, s) in chart.series.iter().enumerate() {
        let c = color(i);
        let drawn = match chart.kind {
            ChartKind::Bar => {
                let XAxis::Categories(cats) = &x_axis else {
                    return Err("internal: bars need categories".into());
                };
                let w = 0.8 / n as f64;
                let bars: Vec<_> =
                    s.x.iter()
                        .zip(&s.y)
                        .filter_map(|(x, y)| {
                            let at = cats.iter().position(|c| *c == x_text(x))? as f64;
                            let left = at - 0.4 + w * i as f64;
                            Some(Rectangle::new([(left, 0.0), (left + w, *y)], c.filled()))
                        })
                        .collect();
                ctx.draw_series(bars).map_err(e)?
            }
            ChartKind::Line | ChartKind::Scatter => {
                let points: Vec<(f64, f64)> = s
                    .x
                    .iter()
                    .zip(&s.y)
                    .filter_map(|(x, y)| {
                        let at = match (&x_axis, x) {
                            (XAxis::Categories(cats), x) => cats.iter().position(|c| *c == x_text(x))? as f64,
                            (XAxis::Numbers(..), XValue::Number(n)) => *n,
                            (XAxis::Numbers(..), XValue::Text(_)) => return None,
                        };
                        Some((at, *y))
                    })
                    .collect();
                if chart.kind == ChartKind::Line {
                    ctx.draw_series(LineSeries::new(points, c.stroke_width(2)))
                        .map_err(e)?
                } else {
                    ctx.draw_series(points.into_iter().map(|p| Circle::new(p, 4, c.filled())))
                        .map_err(e)?
                }
            }
            ChartKind::Histogram => {
                let Some((lo, width, counts)) = &hist else {
                    return Err("internal: a histogram has bins".into());
                };
                let bars: Vec<_> = counts[i]
                    .iter()
                    .enumerate()
                    .map(|(b, count)| {
                        let left = lo + width * b as f64;
                        Rectangle::new([(left, 0.0), (left + width, *count as f64)], c.filled())
                    })
                    .collect();
                ctx.draw_series(bars).map_err(e)?
            }
        };
        if let Some(name) = &s.name {
            drawn
                .label(name)
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled()));
        }
    }
    if chart.series.iter().any(|s| s.name.is_some()) {
        ctx.configure_series_labels()
            .label_font((FAMILY, 12))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(e)?;
    }
    Ok(())
}

pub(crate) fn factory(spec: &DatasetSpec<'_>) -> Result<Arc<dyn Dataset>, String> {
    let (target, filepath) = spec.file_target("filepath")?;
    let save_args = spec.args("save_args")?;
    let mut format = None;
    for (key, v) in save_args.as_object().into_iter().flatten() {
        match (key.as_str(), v) {
            ("format", Value::String(f)) => {
                format = Some(
                    ImageFormat::parse(f)
                        .ok_or_else(|| format!("save_args.format: expected png or svg, got `{f}`"))?,
                );
            }
            _ => {
                return Err(format!(
                    "save_args.{key}: not supported (weft draws charts itself; only `format: png|svg` applies)"
                ));
            }
        }
    }
    let format = match format {
        Some(f) => f,
        None => Path::new(&filepath)
            .extension()
            .and_then(|e| e.to_str())
            .and_then(ImageFormat::parse)
            .ok_or_else(|| {
                format!("filepath: `{filepath}` must end in .png or .svg (or set save_args.format)")
            })?,
    };
    let load_args = spec.args("load_args")?;
    if let Some((key, _)) = load_args.as_object().and_then(|m| m.iter().next()) {
        return Err(format!(
            "load_args.{key}: unknown argument (an image loads as its bytes)"
        ));
    }
    Ok(Arc::new(MatplotlibDataset {
        target,
        type_name: spec.type_name.to_string(),
        filepath,
        format,
    }))
}

/// A chart image in one file (optionally versioned). Saves draw a
/// [`Chart`]; loads return the file's bytes (`Vec<u8>`).
pub struct MatplotlibDataset {
    target: FileTarget,
    type_name: String,
    filepath: String,
    format: ImageFormat,
}

impl MatplotlibDataset {
    fn save_err(&self, message: impl ToString) -> CatalogError {
        CatalogError::Save {
            dataset: self.target.dataset.clone(),
            path: Some(self.target.save_file()),
            message: message.to_string(),
        }
    }

    fn chart(&self, data: &Data) -> Result<Chart, String> {
        if let Some(c) = data.downcast_ref::<Chart>() {
            return Ok(c.clone());
        }
        if data.is::<PlotlyFigure>() {
            return Err(
                "a Plotly figure is not drawn to an image here; save it with plotly.JSONDataset, or return a weft_charts::Chart".into(),
            );
        }
        let converted = data.convert_to(&DataType::of::<Chart>()).map_err(|e| {
            format!(
                "matplotlib.MatplotlibDataset draws a chart spec (weft_charts::Chart: kind, series, titles, size): {e}"
            )
        })?;
        converted
            .downcast_ref::<Chart>()
            .cloned()
            .ok_or_else(|| "internal: the converted value is a Chart".to_string())
    }
}

impl Dataset for MatplotlibDataset {
    fn load(&self, request: Option<&DataType>) -> Result<Data, CatalogError> {
        let (path, bytes) = self.target.read()?;
        match request {
            None => Ok(Data::new(bytes)),
            Some(ty) if *ty == DataType::of::<Vec<u8>>() => Ok(Data::new(bytes)),
            Some(ty) => Err(CatalogError::Load {
                dataset: self.target.dataset.clone(),
                path: Some(path),
                message: format!("a chart image loads as its bytes (Vec<u8>), not as `{ty}`"),
            }),
        }
    }

    fn save(&self, data: &Data) -> Result<(), CatalogError> {
        let chart = self.chart(data).map_err(|e| self.save_err(e))?;
        let bytes = render(&chart, self.format).map_err(|e| self.save_err(e))?;
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
        LoadType::Exact(DataType::of::<Vec<u8>>())
    }

    fn file_target(&self) -> Option<&FileTarget> {
        Some(&self.target)
    }
}
