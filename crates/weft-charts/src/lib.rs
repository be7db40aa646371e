//! Chart datasets for weft's catalog, under Kedro's type names and weft's
//! short names:
//!
//! - `matplotlib.MatplotlibDataset` (`charts.ImageDataset`): a [`Chart`]
//!   spec a node returns, drawn as PNG or SVG (by the file's extension, or
//!   `save_args.format`) with [plotters], text in the vendored DejaVu Sans.
//!   A load returns the file's bytes (`Vec<u8>`).
//! - `plotly.JSONDataset` (`charts.PlotlyJSONDataset`): a [`PlotlyFigure`]
//!   (or a [`Chart`], converted; or any JSON `{"data": [...], "layout": {...}}`)
//!   saved as Plotly figure JSON; loads as a [`PlotlyFigure`].
//! - `plotly.PlotlyDataset` (`charts.PlotlyDataset`): the node returns rows
//!   (serde rows, a `RecordBatch`, or a map of column → values) and
//!   `plotly_args` (`type: bar|line|scatter`, `fig: {x, y, orientation,
//!   title}`, `layout: {...}`) builds the figure plotly express would, then
//!   applies `layout` as `fig.update_layout` does.
//!
//! Every one writes through the catalog's file target, so versioning
//! (`versioned: true`), run-scoped paths, object storage and atomic
//! replacement work as for every file dataset. Arguments weft does not
//! support are errors naming the dataset and the field.

mod chart;
mod image;
mod plotly;

use std::sync::Arc;

use weft_catalog::{CatalogError, DatasetTypeRegistry};

pub use chart::{Chart, ChartKind, PlotlyFigure, Series, XValue};
pub use image::{ImageFormat, MatplotlibDataset, render};
pub use plotly::PlotlyJsonDataset;

/// The image dataset's type names (Kedro's, then weft's).
pub const IMAGE_TYPE_NAMES: &[&str] = &["matplotlib.MatplotlibDataset", "charts.ImageDataset"];
/// The Plotly figure JSON dataset's type names.
pub const PLOTLY_JSON_TYPE_NAMES: &[&str] = &["plotly.JSONDataset", "charts.PlotlyJSONDataset"];
/// The rows-to-figure dataset's type names.
pub const PLOTLY_TYPE_NAMES: &[&str] = &["plotly.PlotlyDataset", "charts.PlotlyDataset"];

/// Registers the chart dataset types in `registry` (a name registered twice
/// is an error).
pub fn register(registry: &mut DatasetTypeRegistry) -> Result<(), CatalogError> {
    for name in IMAGE_TYPE_NAMES {
        registry.register(name, Arc::new(image::factory))?;
    }
    for name in PLOTLY_JSON_TYPE_NAMES {
        registry.register(name, Arc::new(plotly::json_factory))?;
    }
    for name in PLOTLY_TYPE_NAMES {
        registry.register(name, Arc::new(plotly::plotly_factory))?;
    }
    Ok(())
}
