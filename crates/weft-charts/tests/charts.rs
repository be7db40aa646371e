//! Chart datasets on real files: PNG and SVG drawn by plotters, Plotly
//! figure JSON saved as given or built from rows with `plotly_args`,
//! versioned saves, bad arguments; and the catalog of Kedro's
//! `spaceflights-pandas` starter.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};
use weft_catalog::{BuildOptions, Catalog, CatalogConfig, CatalogError, DatasetTypeRegistry};
use weft_charts::{Chart, ChartKind, PlotlyFigure, XValue};
use weft_pipeline::{Data, DataType};

/// The registry weft-session's `default_dataset_types()` builds (minus the
/// object-store schemes): built-ins, Excel, charts, pickle.
fn registry() -> DatasetTypeRegistry {
    let mut r = DatasetTypeRegistry::with_builtins();
    weft_excel::register(&mut r).unwrap();
    weft_charts::register(&mut r).unwrap();
    weft_pickle::register(&mut r).unwrap();
    r
}

fn try_catalog(root: &Path, entries: Value, version: &str) -> Result<Catalog, CatalogError> {
    CatalogConfig::parse(&entries, &json!({}), &registry())?.build(&BuildOptions {
        project_dir: root.to_path_buf(),
        save_version: version.into(),
        load_versions: BTreeMap::new(),
        parameters: Value::Null,
        run_scope: None,
    })
}

fn bar_chart() -> Chart {
    Chart::new(ChartKind::Bar)
        .title("Passenger capacity")
        .axes("Shuttle type", "Average capacity")
        .size(400, 300)
        .series(
            Some("2026"),
            vec!["Type V5".into(), "Type F5".into(), "Type A1".into()],
            vec![4.5, 3.0, 6.25],
        )
}

/// The width and height in a PNG's IHDR chunk (after checking the signature).
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    assert_eq!(&bytes[12..16], b"IHDR", "IHDR is the first chunk");
    let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    (w, h)
}

#[test]
fn png_files_are_pngs_of_the_asked_size_with_ink_on_them() {
    let dir = tempfile::tempdir().unwrap();
    let cat = try_catalog(
        dir.path(),
        json!({
            "bar": {"type": "matplotlib.MatplotlibDataset", "filepath": "bar.png"},
            "line": {"type": "charts.ImageDataset", "filepath": "line.PNG"},
            "hist": {"type": "matplotlib.MatplotlibDataset", "filepath": "hist.png"},
        }),
        "v1",
    )
    .unwrap();
    cat.save("bar", Data::new(bar_chart())).unwrap();
    let line = Chart::new(ChartKind::Line)
        .title("Trend")
        .size(320, 200)
        .series(
            Some("a"),
            vec![1.0.into(), 2.0.into(), 3.0.into()],
            vec![1.0, 4.0, 9.0],
        )
        .series(
            Some("b"),
            vec![1.0.into(), 2.0.into(), 3.0.into()],
            vec![2.0, 3.0, 4.0],
        );
    cat.save("line", Data::new(line)).unwrap();
    let mut hist = Chart::new(ChartKind::Histogram).size(256, 128);
    hist.bins = Some(4);
    let hist = hist.series(
        None,
        [1.0, 1.5, 2.0, 2.0, 3.5, 4.0].map(XValue::from).to_vec(),
        vec![],
    );
    cat.save("hist", Data::new(hist)).unwrap();

    for (name, size) in [("bar", (400, 300)), ("line", (320, 200)), ("hist", (256, 128))] {
        let bytes = cat.load(name, None).unwrap();
        let bytes = bytes.downcast_ref::<Vec<u8>>().unwrap();
        assert_eq!(png_size(bytes), size, "{name}");
        // Decoded, the image has white background and coloured marks.
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes.clone()));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        let pixels = &buf[..info.buffer_size()];
        let white = pixels.chunks(3).filter(|p| p == &[255, 255, 255]).count();
        let blue = pixels.chunks(3).filter(|p| p == &[0x63, 0x6e, 0xfa]).count();
        assert!(white > pixels.len() / 3 / 3, "{name}: mostly white");
        assert!(
            blue > 50,
            "{name}: the first series is drawn in plotly blue ({blue} pixels)"
        );
    }
    let file = std::fs::read(dir.path().join("bar.png")).unwrap();
    assert_eq!(png_size(&file), (400, 300));
}

#[test]
fn svg_files_hold_the_title_and_axis_labels() {
    let dir = tempfile::tempdir().unwrap();
    let cat = try_catalog(
        dir.path(),
        json!({
            "bar": {"type": "matplotlib.MatplotlibDataset", "filepath": "plots/bar.svg"},
            "scatter": {"type": "matplotlib.MatplotlibDataset", "filepath": "plots/scatter.img",
                        "save_args": {"format": "svg"}},
        }),
        "v1",
    )
    .unwrap();
    cat.save("bar", Data::new(bar_chart())).unwrap();
    let svg = std::fs::read_to_string(dir.path().join("plots/bar.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("width=\"400\"") && svg.contains("height=\"300\""));
    for text in [
        "Passenger capacity",
        "Shuttle type",
        "Average capacity",
        "Type V5",
        "Type A1",
        "2026",
    ] {
        assert!(has_text(&svg, text), "{text} in {svg}");
    }
    // A chart given as JSON (an untyped node's output) is drawn too.
    let scatter = json!({"kind": "scatter", "title": "Speed vs range", "x_title": "speed", "y_title": "range",
                         "series": [{"x": [1, 2, 3], "y": [3, 1, 2]}]});
    cat.save("scatter", Data::new(scatter)).unwrap();
    let svg = std::fs::read_to_string(dir.path().join("plots/scatter.img")).unwrap();
    assert!(
        has_text(&svg, "Speed vs range") && has_text(&svg, "speed") && has_text(&svg, "range"),
        "{svg}"
    );
    assert_eq!(svg.matches("<circle").count(), 3, "three markers");
}

/// Whether an SVG has a `<text>` element reading `text`.
fn has_text(svg: &str, text: &str) -> bool {
    svg.contains(&format!(">{text}<")) || svg.contains(&format!(">\n{text}\n<"))
}

/// The small table the Plotly tests draw.
fn shuttles() -> Value {
    json!([
        {"shuttle_type": "Type V5", "passenger_capacity": 4.5, "engines": 1},
        {"shuttle_type": "Type F5", "passenger_capacity": 3.0, "engines": 2},
        {"shuttle_type": "Type A1", "passenger_capacity": 6.0, "engines": 3},
    ])
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn plotly_args_build_the_figure_plotly_express_builds() {
    let dir = tempfile::tempdir().unwrap();
    let cat = try_catalog(
        dir.path(),
        json!({
            "hbar": {"type": "plotly.PlotlyDataset", "filepath": "hbar.json",
                "plotly_args": {"type": "bar", "fig": {"x": "shuttle_type", "y": "passenger_capacity", "orientation": "h"},
                    "layout": {"xaxis_title": "Shuttles", "yaxis_title": "Average passenger capacity", "title": "Shuttle Passenger capacity"}}},
            "bar": {"type": "plotly.PlotlyDataset", "filepath": "bar.json",
                "plotly_args": {"type": "bar", "fig": {"x": "shuttle_type", "y": "passenger_capacity"}}},
            "line": {"type": "charts.PlotlyDataset", "filepath": "line.json",
                "plotly_args": {"type": "line", "fig": {"x": "engines", "y": "passenger_capacity", "title": "By engines"}}},
            "scatter": {"type": "plotly.PlotlyDataset", "filepath": "scatter.json",
                "plotly_args": {"type": "scatter", "fig": {"x": "engines", "y": "passenger_capacity"},
                    "layout": {"width": 500, "xaxis": {"range": [0, 4]}}}},
        }),
        "v1",
    )
    .unwrap();
    for name in ["hbar", "bar", "line", "scatter"] {
        cat.save(name, Data::new(shuttles())).unwrap();
    }
    let types = json!(["Type V5", "Type F5", "Type A1"]);
    let capacity = json!([4.5, 3.0, 6.0]);
    let bar_trace = |orientation: &str| {
        json!({"alignmentgroup": "True",
            "hovertemplate": "shuttle_type=%{x}<br>passenger_capacity=%{y}<extra></extra>",
            "legendgroup": "", "marker": {"color": "#636efa", "pattern": {"shape": ""}}, "name": "",
            "offsetgroup": "", "orientation": orientation, "showlegend": false, "textposition": "auto",
            "x": types, "xaxis": "x", "y": capacity, "yaxis": "y", "type": "bar"})
    };
    assert_eq!(
        read_json(&dir.path().join("hbar.json")),
        json!({"data": [bar_trace("h")], "layout": {
            "xaxis": {"anchor": "y", "domain": [0.0, 1.0], "title": {"text": "Shuttles"}},
            "yaxis": {"anchor": "x", "domain": [0.0, 1.0], "title": {"text": "Average passenger capacity"}},
            "legend": {"tracegrouporder": "normal"}, "margin": {"t": 60}, "barmode": "relative",
            "title": {"text": "Shuttle Passenger capacity"}}})
    );
    assert_eq!(
        read_json(&dir.path().join("bar.json")),
        json!({"data": [bar_trace("v")], "layout": {
            "xaxis": {"anchor": "y", "domain": [0.0, 1.0], "title": {"text": "shuttle_type"}},
            "yaxis": {"anchor": "x", "domain": [0.0, 1.0], "title": {"text": "passenger_capacity"}},
            "legend": {"tracegrouporder": "normal"}, "margin": {"t": 60}, "barmode": "relative"}})
    );
    let axes = |x: &str| {
        json!({"xaxis": {"anchor": "y", "domain": [0.0, 1.0], "title": {"text": x}},
               "yaxis": {"anchor": "x", "domain": [0.0, 1.0], "title": {"text": "passenger_capacity"}},
               "legend": {"tracegrouporder": "normal"}, "margin": {"t": 60}})
    };
    let mut line_layout = axes("engines");
    line_layout["title"] = json!({"text": "By engines"});
    assert_eq!(
        read_json(&dir.path().join("line.json")),
        json!({"data": [{"hovertemplate": "engines=%{x}<br>passenger_capacity=%{y}<extra></extra>",
            "legendgroup": "", "line": {"color": "#636efa", "dash": "solid"}, "marker": {"symbol": "circle"},
            "mode": "lines", "name": "", "orientation": "v", "showlegend": false,
            "x": [1, 2, 3], "xaxis": "x", "y": capacity, "yaxis": "y", "type": "scatter"}],
            "layout": line_layout})
    );
    let mut scatter_layout = axes("engines");
    scatter_layout["xaxis"]["range"] = json!([0, 4]);
    scatter_layout["width"] = json!(500);
    assert_eq!(
        read_json(&dir.path().join("scatter.json")),
        json!({"data": [{"hovertemplate": "engines=%{x}<br>passenger_capacity=%{y}<extra></extra>",
            "legendgroup": "", "marker": {"color": "#636efa", "symbol": "circle"},
            "mode": "markers", "name": "", "orientation": "v", "showlegend": false,
            "x": [1, 2, 3], "xaxis": "x", "y": capacity, "yaxis": "y", "type": "scatter"}],
            "layout": scatter_layout})
    );
    // It loads back as a figure; a RecordBatch or a map of columns works too.
    let fig = cat.load("hbar", None).unwrap();
    let fig = fig.downcast_ref::<PlotlyFigure>().unwrap();
    assert_eq!(fig.data[0]["x"], types);
    let columns =
        json!({"shuttle_type": ["Type V5", "Type F5", "Type A1"], "passenger_capacity": [4.5, 3.0, 6.0]});
    cat.save("bar", Data::new(columns)).unwrap();
    assert_eq!(read_json(&dir.path().join("bar.json"))["data"][0], bar_trace("v"));
    let batch = weft_catalog::rows_to_batch(shuttles().as_array().unwrap()).unwrap();
    cat.save("bar", Data::new(batch)).unwrap();
    assert_eq!(read_json(&dir.path().join("bar.json"))["data"][0], bar_trace("v"));
    // A missing column names the column and the dataset.
    let e = cat
        .save("bar", Data::new(json!([{"shuttle_type": "x"}])))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("bar") && e.contains("no column `passenger_capacity`"),
        "{e}"
    );
}

#[test]
fn plotly_json_saves_figures_and_charts_and_loads_them_back() {
    let dir = tempfile::tempdir().unwrap();
    let cat = try_catalog(
        dir.path(),
        json!({
            "go": {"type": "plotly.JSONDataset", "filepath": "go.json", "save_args": {"pretty": true}},
            "spec": {"type": "plotly.JSONDataset", "filepath": "spec.json"},
        }),
        "v1",
    )
    .unwrap();
    let figure = PlotlyFigure {
        data: vec![json!({"type": "bar", "x": ["a", "b"], "y": [1, 2]})],
        layout: json!({"title": {"text": "go"}}).as_object().cloned().unwrap(),
    };
    cat.save("go", Data::new(figure.clone())).unwrap();
    let text = std::fs::read_to_string(dir.path().join("go.json")).unwrap();
    assert!(text.contains("\n  \"data\""), "pretty: {text}");
    let back = cat.load("go", Some(&DataType::of::<PlotlyFigure>())).unwrap();
    assert_eq!(back.downcast_ref::<PlotlyFigure>(), Some(&figure));
    // As a JSON value.
    let value = cat.load("go", Some(&DataType::of::<Value>())).unwrap();
    assert_eq!(value.downcast_ref::<Value>().unwrap()["data"][0]["type"], "bar");
    // A chart spec becomes a figure.
    cat.save("spec", Data::new(bar_chart())).unwrap();
    assert_eq!(
        read_json(&dir.path().join("spec.json")),
        json!({"data": [{"type": "bar", "x": ["Type V5", "Type F5", "Type A1"], "y": [4.5, 3.0, 6.25], "name": "2026"}],
               "layout": {"title": {"text": "Passenger capacity"}, "xaxis": {"title": {"text": "Shuttle type"}},
                          "yaxis": {"title": {"text": "Average capacity"}}, "width": 400, "height": 300}})
    );
    // Not a figure.
    let e = cat
        .save("go", Data::new(json!({"x": 1})))
        .unwrap_err()
        .to_string();
    assert!(e.contains("go") && e.contains("needs `data`"), "{e}");
}

#[test]
fn chart_saves_are_versioned_like_any_file_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let entries = json!({
        "plot": {"type": "matplotlib.MatplotlibDataset", "filepath": "r/plot.svg", "versioned": true},
        "fig": {"type": "plotly.JSONDataset", "filepath": "r/fig.json", "versioned": true},
        "exp": {"type": "plotly.PlotlyDataset", "filepath": "r/exp.json", "versioned": true,
                "plotly_args": {"type": "bar", "fig": {"x": "shuttle_type", "y": "passenger_capacity"}}},
    });
    for (version, title) in [
        ("2026-01-01T00.00.00.000Z", "first"),
        ("2026-01-02T00.00.00.000Z", "second"),
    ] {
        let cat = try_catalog(dir.path(), entries.clone(), version).unwrap();
        cat.save("plot", Data::new(bar_chart().title(title))).unwrap();
        cat.save("fig", Data::new(bar_chart().title(title))).unwrap();
        cat.save("exp", Data::new(shuttles())).unwrap();
    }
    for (name, file) in [("plot", "plot.svg"), ("fig", "fig.json"), ("exp", "exp.json")] {
        for version in ["2026-01-01T00.00.00.000Z", "2026-01-02T00.00.00.000Z"] {
            assert!(
                dir.path().join(format!("r/{file}/{version}/{file}")).is_file(),
                "{name} {version}"
            );
        }
    }
    let cat = try_catalog(dir.path(), entries, "2026-01-03T00.00.00.000Z").unwrap();
    let svg = cat.load("plot", None).unwrap();
    let svg = String::from_utf8(svg.downcast_ref::<Vec<u8>>().unwrap().clone()).unwrap();
    assert!(has_text(&svg, "second"), "the latest version loads");
    let fig = cat.load("fig", None).unwrap();
    assert_eq!(
        fig.downcast_ref::<PlotlyFigure>().unwrap().layout["title"],
        json!({"text": "second"})
    );
}

#[test]
fn bad_arguments_and_values_are_errors_naming_the_dataset_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let refused = |entry: Value| {
        try_catalog(dir.path(), json!({"chart": entry}), "v1")
            .err()
            .expect("the entry is refused")
            .to_string()
    };
    let cases = [
        (
            json!({"type": "plotly.PlotlyDataset", "filepath": "a.json"}),
            "plotly_args",
        ),
        (
            json!({"type": "plotly.PlotlyDataset", "filepath": "a.json", "plotly_args": {"type": "pie", "fig": {"x": "a", "y": "b"}}}),
            "plotly_args.type",
        ),
        (
            json!({"type": "plotly.PlotlyDataset", "filepath": "a.json", "plotly_args": {"type": "bar", "fig": {"x": "a"}}}),
            "plotly_args.fig.y",
        ),
        (
            json!({"type": "plotly.PlotlyDataset", "filepath": "a.json", "plotly_args": {"type": "bar", "fig": {"x": "a", "y": "b", "orientation": "d"}}}),
            "plotly_args.fig.orientation",
        ),
        (
            json!({"type": "plotly.PlotlyDataset", "filepath": "a.json", "plotly_args": {"type": "bar", "fig": {"x": "a", "y": "b", "color": "c"}}}),
            "plotly_args.fig.color",
        ),
        (
            json!({"type": "plotly.PlotlyDataset", "filepath": "a.json", "plotly_args": {"type": "bar", "fig": {"x": "a", "y": "b"}, "layout": 3}}),
            "plotly_args.layout",
        ),
        (
            json!({"type": "plotly.JSONDataset", "filepath": "a.json", "save_args": {"indent": 2}}),
            "save_args.indent",
        ),
        (
            json!({"type": "matplotlib.MatplotlibDataset", "filepath": "a.jpg"}),
            "filepath",
        ),
        (
            json!({"type": "matplotlib.MatplotlibDataset", "filepath": "a.png", "save_args": {"dpi": 300}}),
            "save_args.dpi",
        ),
        (
            json!({"type": "matplotlib.MatplotlibDataset", "filepath": "a.png", "save_args": {"format": "pdf"}}),
            "save_args.format",
        ),
    ];
    for (entry, field) in cases {
        let e = refused(entry.clone());
        assert!(e.contains("chart") && e.contains(field), "{entry}: {e}");
    }
    let cat = try_catalog(
        dir.path(),
        json!({"img": {"type": "matplotlib.MatplotlibDataset", "filepath": "img.png"}}),
        "v1",
    )
    .unwrap();
    let e = cat
        .save("img", Data::new(bar_chart().size(4, 4)))
        .unwrap_err()
        .to_string();
    assert!(e.contains("img") && e.contains("width must be 16 to 8192"), "{e}");
    let e = cat
        .save("img", Data::new(json!({"kind": "pie"})))
        .unwrap_err()
        .to_string();
    assert!(e.contains("img") && e.contains("chart spec"), "{e}");
    let fig = PlotlyFigure::default();
    let e = cat.save("img", Data::new(fig)).unwrap_err().to_string();
    assert!(e.contains("plotly.JSONDataset"), "{e}");
    let bad = Chart::new(ChartKind::Line).series(None, vec![1.0.into()], vec![1.0, 2.0]);
    let e = cat.save("img", Data::new(bad)).unwrap_err().to_string();
    assert!(e.contains("1 x values but 2 y values"), "{e}");
    assert!(!dir.path().join("img.png").exists(), "nothing half-written");
}

/// The catalog of Kedro's official `spaceflights-pandas` starter
/// (`conf/base/catalog.yml`), verbatim.
const SPACEFLIGHTS_PANDAS_CATALOG: &str = r#"
companies: {type: pandas.CSVDataset, filepath: data/01_raw/companies.csv}
reviews: {type: pandas.CSVDataset, filepath: data/01_raw/reviews.csv}
shuttles:
  type: pandas.ExcelDataset
  filepath: data/01_raw/shuttles.xlsx
  load_args: {engine: openpyxl}
preprocessed_companies: {type: pandas.ParquetDataset, filepath: data/02_intermediate/preprocessed_companies.parquet}
preprocessed_shuttles: {type: pandas.ParquetDataset, filepath: data/02_intermediate/preprocessed_shuttles.parquet}
model_input_table: {type: pandas.ParquetDataset, filepath: data/03_primary/model_input_table.parquet}
regressor: {type: pickle.PickleDataset, filepath: data/06_models/regressor.pickle, versioned: true}
shuttle_passenger_capacity_plot_exp:
  type: plotly.PlotlyDataset
  filepath: data/08_reporting/shuttle_passenger_capacity_plot_exp.json
  versioned: true
  plotly_args:
    type: bar
    fig: {x: shuttle_type, y: passenger_capacity, orientation: h}
    layout: {xaxis_title: Shuttles, yaxis_title: Average passenger capacity, title: Shuttle Passenger capacity}
shuttle_passenger_capacity_plot_go:
  type: plotly.JSONDataset
  filepath: data/08_reporting/shuttle_passenger_capacity_plot_go.json
  versioned: true
dummy_confusion_matrix:
  type: matplotlib.MatplotlibDataset
  filepath: data/08_reporting/dummy_confusion_matrix.png
  versioned: true
"#;

#[test]
fn the_spaceflights_pandas_catalog_loads_and_writes_its_reporting_datasets() {
    let dir = tempfile::tempdir().unwrap();
    let entries: Value = serde_saphyr::from_str(SPACEFLIGHTS_PANDAS_CATALOG).unwrap();
    let version = "2026-12-02T14.00.00.000Z";
    let cat = try_catalog(dir.path(), entries, version).unwrap();
    let listed: Vec<(String, String)> = cat.list().into_iter().map(|i| (i.name, i.type_name)).collect();
    assert_eq!(listed.len(), 10, "{listed:?}");

    // The shuttles workbook (written through the Excel dataset) loads with
    // `engine: openpyxl` accepted.
    cat.save(
        "shuttles",
        Data::new(
            json!([{"id": 1, "shuttle_type": "Type V5", "passenger_capacity": 4},
                         {"id": 2, "shuttle_type": "Type F5", "passenger_capacity": 2}]),
        ),
    )
    .unwrap();
    let shuttles = cat.load("shuttles", None).unwrap().to_json().unwrap();
    assert_eq!(shuttles[1]["shuttle_type"], "Type F5");

    // What the reporting pipeline's nodes return, saved through the catalog.
    let table = json!([
        {"shuttle_type": "Type V5", "passenger_capacity": 4.5},
        {"shuttle_type": "Type F5", "passenger_capacity": 2.0},
    ]);
    cat.save("shuttle_passenger_capacity_plot_exp", Data::new(table))
        .unwrap();
    let go = PlotlyFigure {
        data: vec![json!({"type": "bar", "x": ["Type V5", "Type F5"], "y": [4.5, 2.0]})],
        layout: json!({"title": {"text": "Shuttle Passenger Capacity"}})
            .as_object()
            .cloned()
            .unwrap(),
    };
    cat.save("shuttle_passenger_capacity_plot_go", Data::new(go))
        .unwrap();
    let matrix = Chart::new(ChartKind::Bar)
        .title("Confusion matrix")
        .size(300, 200)
        .series(
            Some("predicted 0"),
            vec!["actual 0".into(), "actual 1".into()],
            vec![8.0, 2.0],
        )
        .series(
            Some("predicted 1"),
            vec!["actual 0".into(), "actual 1".into()],
            vec![1.0, 9.0],
        );
    cat.save("dummy_confusion_matrix", Data::new(matrix)).unwrap();
    cat.save(
        "regressor",
        Data::new(json!({"coef": [1.5, -0.5], "intercept": 0.25})),
    )
    .unwrap();

    let reporting = dir.path().join("data/08_reporting");
    let exp = read_json(&reporting.join(format!(
        "shuttle_passenger_capacity_plot_exp.json/{version}/shuttle_passenger_capacity_plot_exp.json"
    )));
    assert_eq!(exp["data"][0]["orientation"], "h");
    assert_eq!(
        exp["layout"]["title"],
        json!({"text": "Shuttle Passenger capacity"})
    );
    assert_eq!(exp["layout"]["xaxis"]["title"], json!({"text": "Shuttles"}));
    let go = read_json(&reporting.join(format!(
        "shuttle_passenger_capacity_plot_go.json/{version}/shuttle_passenger_capacity_plot_go.json"
    )));
    assert_eq!(go["data"][0]["type"], "bar");
    let png = std::fs::read(reporting.join(format!(
        "dummy_confusion_matrix.png/{version}/dummy_confusion_matrix.png"
    )))
    .unwrap();
    assert_eq!(png_size(&png), (300, 200));
    assert!(
        dir.path()
            .join(format!(
                "data/06_models/regressor.pickle/{version}/regressor.pickle"
            ))
            .is_file()
    );
}

fn capacity_table(shuttles: &Value) -> Value {
    let rows: Vec<Value> = shuttles
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| json!({"shuttle_type": r["shuttle_type"], "passenger_capacity": r["passenger_capacity"]}))
        .collect();
    Value::Array(rows)
}

fn capacity_figure(shuttles: &Value) -> PlotlyFigure {
    let rows = shuttles.as_array().cloned().unwrap_or_default();
    PlotlyFigure {
        data: vec![json!({"type": "bar",
            "x": rows.iter().map(|r| r["shuttle_type"].clone()).collect::<Vec<_>>(),
            "y": rows.iter().map(|r| r["passenger_capacity"].clone()).collect::<Vec<_>>()})],
        layout: json!({"title": {"text": "Shuttle Passenger Capacity"}})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    }
}

fn confusion_matrix(shuttles: &Value) -> Chart {
    let n = shuttles.as_array().map_or(0, Vec::len) as f64;
    Chart::new(ChartKind::Bar)
        .title("Confusion matrix")
        .size(300, 200)
        .series(
            Some("predicted 0"),
            vec!["actual 0".into(), "actual 1".into()],
            vec![n, 1.0],
        )
        .series(
            Some("predicted 1"),
            vec!["actual 0".into(), "actual 1".into()],
            vec![1.0, n],
        )
}

#[test]
fn a_pipeline_on_the_spaceflights_pandas_catalog_writes_the_three_reporting_datasets() {
    use weft_pipeline::{CancelToken, Pipeline, node};
    use weft_runner::{Hooks, RunContext, RunJob, SequentialRunner, TypeCheck, run_pipeline};

    let dir = tempfile::tempdir().unwrap();
    let entries: Value = serde_saphyr::from_str(SPACEFLIGHTS_PANDAS_CATALOG).unwrap();
    let version = "2026-12-02T15.00.00.000Z";
    let cat = try_catalog(dir.path(), entries, version).unwrap();
    cat.save(
        "shuttles",
        Data::new(
            json!([{"id": 1, "shuttle_type": "Type V5", "passenger_capacity": 4},
                         {"id": 2, "shuttle_type": "Type F5", "passenger_capacity": 2}]),
        ),
    )
    .unwrap();
    let pipeline = Pipeline::new(vec![
        node(capacity_table, "shuttles", "shuttle_passenger_capacity_plot_exp")
            .name("exp")
            .build()
            .unwrap(),
        node(capacity_figure, "shuttles", "shuttle_passenger_capacity_plot_go")
            .name("go")
            .build()
            .unwrap(),
        node(confusion_matrix, "shuttles", "dummy_confusion_matrix")
            .name("matrix")
            .build()
            .unwrap(),
    ])
    .unwrap();
    let context = RunContext {
        session_id: "s1".into(),
        run_id: version.into(),
        run_index: 0,
        total_runs: 1,
    };
    run_pipeline(
        &RunJob {
            pipeline: &pipeline,
            catalog: &cat,
            hooks: &Hooks::new(),
            context: &context,
            cancel: &CancelToken::new(),
            only_missing_outputs: false,
            type_check: TypeCheck::Strict,
            timeout: None,
        },
        &SequentialRunner,
    )
    .unwrap();
    let reporting = dir.path().join("data/08_reporting");
    let exp = read_json(&reporting.join(format!(
        "shuttle_passenger_capacity_plot_exp.json/{version}/shuttle_passenger_capacity_plot_exp.json"
    )));
    assert_eq!(exp["data"][0]["x"], json!(["Type V5", "Type F5"]));
    assert_eq!(exp["data"][0]["y"], json!([4, 2]));
    assert_eq!(exp["data"][0]["orientation"], "h");
    assert_eq!(
        exp["layout"]["yaxis"]["title"],
        json!({"text": "Average passenger capacity"})
    );
    let go = read_json(&reporting.join(format!(
        "shuttle_passenger_capacity_plot_go.json/{version}/shuttle_passenger_capacity_plot_go.json"
    )));
    assert_eq!(go["layout"]["title"]["text"], "Shuttle Passenger Capacity");
    let png = std::fs::read(reporting.join(format!(
        "dummy_confusion_matrix.png/{version}/dummy_confusion_matrix.png"
    )))
    .unwrap();
    assert_eq!(png_size(&png), (300, 200));
}
