//! The spaceflights demo project's node functions.
//!
//! In the spirit of Kedro's spaceflights tutorial: space shuttle companies,
//! shuttles and reviews are generated (deterministically, from a seed),
//! cleaned, joined into a model input table, and a linear regression of the
//! shuttle price is trained and evaluated. Everything is plain typed Rust:
//! the catalog decodes CSV and Parquet files straight into these row types.

// Node functions borrow their inputs as the exact type stored in the
// catalog (`&Vec<Row>`), so clippy's `&[Row]` suggestion does not apply.
#![allow(clippy::ptr_arg)]

use serde::{Deserialize, Serialize};
use weft::{FunctionRegistry, PipelineError, serde_data};

/// A company as the raw CSV has it (ratings as `"85%"`, flags as `"t"`/`"f"`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RawCompany {
    /// Company id.
    pub id: u32,
    /// Rating as a percentage string, sometimes missing.
    pub company_rating: Option<String>,
    /// Where the company is based.
    pub company_location: String,
    /// Fleet size.
    pub total_fleet_count: f64,
    /// `t` or `f`.
    pub iata_approved: String,
}

/// A shuttle as the raw CSV has it (price as `"$1,325.0"`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RawShuttle {
    /// Shuttle id.
    pub id: u32,
    /// Owning company.
    pub company_id: u32,
    /// Shuttle model.
    pub shuttle_type: String,
    /// Number of engines.
    pub engines: f64,
    /// Seats.
    pub passenger_capacity: u32,
    /// Crew size.
    pub crew: f64,
    /// `t` or `f`.
    pub d_check_complete: String,
    /// `t` or `f`.
    pub moon_clearance_complete: String,
    /// Price string with `$` and thousands separators.
    pub price: String,
}

/// A review of a shuttle.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Review {
    /// The reviewed shuttle.
    pub shuttle_id: u32,
    /// Score out of 100.
    pub review_scores_rating: f64,
    /// Number of reviews behind the score.
    pub number_of_reviews: u32,
}

/// A cleaned company.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Company {
    /// Company id.
    pub id: u32,
    /// Rating in 0..=1.
    pub company_rating: f64,
    /// Location.
    pub company_location: String,
    /// Fleet size.
    pub total_fleet_count: f64,
    /// 1.0 when approved.
    pub iata_approved: f64,
}

/// A cleaned shuttle.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Shuttle {
    /// Shuttle id.
    pub id: u32,
    /// Owning company.
    pub company_id: u32,
    /// Shuttle model.
    pub shuttle_type: String,
    /// Number of engines.
    pub engines: f64,
    /// Seats.
    pub passenger_capacity: f64,
    /// Crew size.
    pub crew: f64,
    /// 1.0 when complete.
    pub d_check_complete: f64,
    /// 1.0 when complete.
    pub moon_clearance_complete: f64,
    /// Price in dollars.
    pub price: f64,
}

/// One row of the model input table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelRow {
    /// Shuttle id.
    pub shuttle_id: u32,
    /// Number of engines.
    pub engines: f64,
    /// Seats.
    pub passenger_capacity: f64,
    /// Crew size.
    pub crew: f64,
    /// 1.0 when complete.
    pub d_check_complete: f64,
    /// 1.0 when complete.
    pub moon_clearance_complete: f64,
    /// 1.0 when the company is approved.
    pub iata_approved: f64,
    /// Company rating in 0..=1.
    pub company_rating: f64,
    /// Review score.
    pub review_scores_rating: f64,
    /// The target: price in dollars.
    pub price: f64,
}

/// `params:generation`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GenerationParams {
    /// Random seed: same seed, same data.
    pub seed: u64,
    /// Number of companies.
    pub companies: u32,
    /// Number of shuttles.
    pub shuttles: u32,
}

/// `params:model_options`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModelOptions {
    /// Share of rows held out for evaluation.
    pub test_size: f64,
    /// Seed of the split.
    pub random_state: u64,
    /// Feature columns of [`ModelRow`] to use.
    pub features: Vec<String>,
}

/// A trained linear regression.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinearModel {
    /// Feature names, in coefficient order.
    pub features: Vec<String>,
    /// One coefficient per feature.
    pub coefficients: Vec<f64>,
    /// The intercept.
    pub intercept: f64,
    /// Rows it was trained on.
    pub trained_on: usize,
}

/// Evaluation metrics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Coefficient of determination on the test rows.
    pub r2_score: f64,
    /// Mean absolute error.
    pub mae: f64,
    /// Largest absolute error.
    pub max_error: f64,
    /// Test rows.
    pub n_test: usize,
}

serde_data!(GenerationParams, ModelOptions, LinearModel, Metrics);

/// SplitMix64: a tiny deterministic generator (no dependency needed).
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }
    fn normal(&mut self) -> f64 {
        let (u1, u2) = (self.unit().max(1e-12), self.unit());
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

fn flag(b: bool) -> String {
    if b { "t" } else { "f" }.to_string()
}

fn money(v: f64) -> String {
    let whole = v.trunc() as u64;
    let digits = whole.to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("${grouped}.{}", ((v.fract() * 10.0).round() as u64).min(9))
}

/// The three raw tables: companies, shuttles, reviews.
pub type RawData = (Vec<RawCompany>, Vec<RawShuttle>, Vec<Review>);

/// Generates raw companies, shuttles and reviews (deterministic per seed).
pub fn generate_raw_data(p: &GenerationParams) -> Result<RawData, String> {
    if p.companies == 0 || p.shuttles == 0 {
        return Err("generation needs at least one company and one shuttle".into());
    }
    let mut rng = Rng(p.seed);
    let locations = [
        "Niue",
        "Anguilla",
        "Russian Federation",
        "Barbados",
        "Sri Lanka",
        "Mars Base",
    ];
    let companies: Vec<RawCompany> = (0..p.companies)
        .map(|id| RawCompany {
            id,
            company_rating: (rng.unit() > 0.05).then(|| format!("{}%", rng.range(40, 100))),
            company_location: locations[rng.range(0, locations.len() as u64 - 1) as usize].to_string(),
            total_fleet_count: rng.range(1, 30) as f64,
            iata_approved: flag(rng.unit() > 0.4),
        })
        .collect();
    let types = ["Type V5", "Type F5", "Type A3", "Type B2"];
    let mut shuttles = Vec::with_capacity(p.shuttles as usize);
    let mut reviews = Vec::with_capacity(p.shuttles as usize);
    for id in 0..p.shuttles {
        let company = &companies[rng.range(0, p.companies as u64 - 1) as usize];
        let engines = rng.range(1, 4) as f64;
        let capacity = rng.range(2, 12) as u32;
        let crew = rng.range(1, 6) as f64;
        let d_check = rng.unit() > 0.3;
        let moon = rng.unit() > 0.5;
        let score = 60.0 + rng.unit() * 40.0;
        let rating = company
            .company_rating
            .as_deref()
            .and_then(|r| r.trim_end_matches('%').parse::<f64>().ok())
            .unwrap_or(70.0)
            / 100.0;
        let approved = if company.iata_approved == "t" { 1.0 } else { 0.0 };
        let price = 500.0
            + 450.0 * engines
            + 120.0 * capacity as f64
            + 80.0 * crew
            + 300.0 * f64::from(u8::from(d_check))
            + 150.0 * f64::from(u8::from(moon))
            + 200.0 * approved
            + 900.0 * rating
            + 12.0 * score
            + 150.0 * rng.normal();
        shuttles.push(RawShuttle {
            id,
            company_id: company.id,
            shuttle_type: types[rng.range(0, 3) as usize].to_string(),
            engines,
            passenger_capacity: capacity,
            crew,
            d_check_complete: flag(d_check),
            moon_clearance_complete: flag(moon),
            price: money(price.max(1.0)),
        });
        reviews.push(Review {
            shuttle_id: id,
            review_scores_rating: (score * 10.0).round() / 10.0,
            number_of_reviews: rng.range(0, 300) as u32,
        });
    }
    Ok((companies, shuttles, reviews))
}

fn parse_flag(s: &str) -> f64 {
    if s == "t" { 1.0 } else { 0.0 }
}

/// Cleans companies: ratings to fractions (missing → median), flags to 0/1.
pub fn preprocess_companies(raw: &Vec<RawCompany>) -> Result<Vec<Company>, String> {
    let mut ratings: Vec<f64> = Vec::new();
    for c in raw {
        if let Some(r) = &c.company_rating {
            let v: f64 = r
                .trim_end_matches('%')
                .parse()
                .map_err(|_| format!("company {}: bad rating `{r}`", c.id))?;
            ratings.push(v / 100.0);
        }
    }
    ratings.sort_by(f64::total_cmp);
    let median = ratings.get(ratings.len() / 2).copied().unwrap_or(0.0);
    Ok(raw
        .iter()
        .map(|c| Company {
            id: c.id,
            company_rating: c
                .company_rating
                .as_deref()
                .and_then(|r| r.trim_end_matches('%').parse::<f64>().ok())
                .map_or(median, |v| v / 100.0),
            company_location: c.company_location.clone(),
            total_fleet_count: c.total_fleet_count,
            iata_approved: parse_flag(&c.iata_approved),
        })
        .collect())
}

/// Cleans shuttles: prices to numbers, flags to 0/1.
pub fn preprocess_shuttles(raw: &Vec<RawShuttle>) -> Result<Vec<Shuttle>, String> {
    raw.iter()
        .map(|s| {
            let price: f64 = s
                .price
                .trim_start_matches('$')
                .replace(',', "")
                .parse()
                .map_err(|_| format!("shuttle {}: bad price `{}`", s.id, s.price))?;
            Ok(Shuttle {
                id: s.id,
                company_id: s.company_id,
                shuttle_type: s.shuttle_type.clone(),
                engines: s.engines,
                passenger_capacity: f64::from(s.passenger_capacity),
                crew: s.crew,
                d_check_complete: parse_flag(&s.d_check_complete),
                moon_clearance_complete: parse_flag(&s.moon_clearance_complete),
                price,
            })
        })
        .collect()
}

/// Joins shuttles with their company and review into model rows.
pub fn create_model_input_table(
    shuttles: &Vec<Shuttle>,
    companies: &Vec<Company>,
    reviews: &Vec<Review>,
) -> Vec<ModelRow> {
    let by_company: std::collections::HashMap<u32, &Company> = companies.iter().map(|c| (c.id, c)).collect();
    let by_shuttle: std::collections::HashMap<u32, &Review> =
        reviews.iter().map(|r| (r.shuttle_id, r)).collect();
    shuttles
        .iter()
        .filter_map(|s| {
            let c = by_company.get(&s.company_id)?;
            let r = by_shuttle.get(&s.id)?;
            Some(ModelRow {
                shuttle_id: s.id,
                engines: s.engines,
                passenger_capacity: s.passenger_capacity,
                crew: s.crew,
                d_check_complete: s.d_check_complete,
                moon_clearance_complete: s.moon_clearance_complete,
                iata_approved: c.iata_approved,
                company_rating: c.company_rating,
                review_scores_rating: r.review_scores_rating,
                price: s.price,
            })
        })
        .collect()
}

fn feature(row: &ModelRow, name: &str) -> Result<f64, String> {
    Ok(match name {
        "engines" => row.engines,
        "passenger_capacity" => row.passenger_capacity,
        "crew" => row.crew,
        "d_check_complete" => row.d_check_complete,
        "moon_clearance_complete" => row.moon_clearance_complete,
        "iata_approved" => row.iata_approved,
        "company_rating" => row.company_rating,
        "review_scores_rating" => row.review_scores_rating,
        other => {
            return Err(format!(
                "unknown feature `{other}` in params:model_options.features"
            ));
        }
    })
}

/// Splits rows into train and test sets (seeded shuffle).
pub fn split_data(
    rows: &Vec<ModelRow>,
    options: &ModelOptions,
) -> Result<(Vec<ModelRow>, Vec<ModelRow>), String> {
    if !(0.0..1.0).contains(&options.test_size) {
        return Err(format!("test_size must be in [0, 1), got {}", options.test_size));
    }
    let mut idx: Vec<usize> = (0..rows.len()).collect();
    let mut rng = Rng(options.random_state);
    for i in (1..idx.len()).rev() {
        let j = rng.range(0, i as u64) as usize;
        idx.swap(i, j);
    }
    let n_test = (rows.len() as f64 * options.test_size).round() as usize;
    let test = idx[..n_test].iter().map(|&i| rows[i].clone()).collect();
    let train = idx[n_test..].iter().map(|&i| rows[i].clone()).collect();
    Ok((train, test))
}

/// Ordinary least squares with an intercept, by the normal equations.
pub fn train_model(rows: &Vec<ModelRow>, options: &ModelOptions) -> Result<LinearModel, String> {
    let k = options.features.len() + 1;
    if rows.len() < k {
        return Err(format!("need at least {k} training rows, got {}", rows.len()));
    }
    let mut xtx = vec![vec![0.0; k]; k];
    let mut xty = vec![0.0; k];
    for row in rows {
        let mut x = Vec::with_capacity(k);
        x.push(1.0);
        for f in &options.features {
            x.push(feature(row, f)?);
        }
        for i in 0..k {
            xty[i] += x[i] * row.price;
            for j in 0..k {
                xtx[i][j] += x[i] * x[j];
            }
        }
    }
    let beta = solve(xtx, xty).ok_or("the features are collinear: cannot fit a linear model")?;
    Ok(LinearModel {
        features: options.features.clone(),
        coefficients: beta[1..].to_vec(),
        intercept: beta[0],
        trained_on: rows.len(),
    })
}

/// Gaussian elimination with partial pivoting.
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let n = b.len();
    for col in 0..n {
        let pivot = (col..n).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() < 1e-9 {
            return None;
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        let (upper, lower) = a.split_at_mut(col + 1);
        let pivot_row = &upper[col];
        for (offset, row) in lower.iter_mut().enumerate() {
            let factor = row[col] / pivot_row[col];
            for (x, p) in row[col..].iter_mut().zip(&pivot_row[col..]) {
                *x -= factor * p;
            }
            b[col + 1 + offset] -= factor * b[col];
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let s: f64 = (row + 1..n).map(|c| a[row][c] * x[c]).sum();
        x[row] = (b[row] - s) / a[row][row];
    }
    Some(x)
}

/// Predicts one row's price.
pub fn predict(model: &LinearModel, row: &ModelRow) -> Result<f64, String> {
    let mut y = model.intercept;
    for (f, c) in model.features.iter().zip(&model.coefficients) {
        y += c * feature(row, f)?;
    }
    Ok(y)
}

/// R², MAE and max error on the test rows.
pub fn evaluate_model(model: &LinearModel, rows: &Vec<ModelRow>) -> Result<Metrics, String> {
    if rows.is_empty() {
        return Err("no test rows to evaluate on (test_size is 0?)".into());
    }
    let mean = rows.iter().map(|r| r.price).sum::<f64>() / rows.len() as f64;
    let (mut ss_res, mut ss_tot, mut abs_sum, mut max_error) = (0.0, 0.0, 0.0, 0.0f64);
    for r in rows {
        let err = r.price - predict(model, r)?;
        ss_res += err * err;
        ss_tot += (r.price - mean).powi(2);
        abs_sum += err.abs();
        max_error = max_error.max(err.abs());
    }
    Ok(Metrics {
        r2_score: 1.0 - ss_res / ss_tot,
        mae: abs_sum / rows.len() as f64,
        max_error,
        n_test: rows.len(),
    })
}

/// One step of Newton's method for `sqrt(target)`: the next estimate and
/// how far it moved (the `sqrt2` pipeline's cycle repeats it).
pub fn newton_step(x: &f64, target: &f64) -> Result<(f64, f64), String> {
    if *x == 0.0 {
        return Err("Newton's method cannot start from 0".into());
    }
    let next = x - (x * x - target) / (2.0 * x);
    Ok((next, (next - x).abs()))
}

/// The project's functions, on top of weft's built-ins.
pub fn registry() -> Result<FunctionRegistry, PipelineError> {
    let mut r = FunctionRegistry::with_builtins();
    r.register("generate_raw_data", generate_raw_data)?;
    r.register("preprocess_companies", preprocess_companies)?;
    r.register("preprocess_shuttles", preprocess_shuttles)?;
    r.register("create_model_input_table", create_model_input_table)?;
    r.register("split_data", split_data)?;
    r.register("train_model", train_model)?;
    r.register("evaluate_model", evaluate_model)?;
    r.register("newton_step", newton_step)?;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_and_model_fits() {
        let p = GenerationParams {
            seed: 7,
            companies: 20,
            shuttles: 400,
        };
        let a = generate_raw_data(&p).unwrap();
        let b = generate_raw_data(&p).unwrap();
        assert_eq!(a.1, b.1);
        let companies = preprocess_companies(&a.0).unwrap();
        let shuttles = preprocess_shuttles(&a.1).unwrap();
        let rows = create_model_input_table(&shuttles, &companies, &a.2);
        assert_eq!(rows.len(), 400);
        let opts = ModelOptions {
            test_size: 0.25,
            random_state: 1,
            features: vec!["engines".into(), "passenger_capacity".into(), "crew".into()],
        };
        let (train, test) = split_data(&rows, &opts).unwrap();
        assert_eq!((train.len(), test.len()), (300, 100));
        let model = train_model(&train, &opts).unwrap();
        assert!((model.coefficients[0] - 450.0).abs() < 60.0, "{model:?}");
        let metrics = evaluate_model(&model, &test).unwrap();
        assert!(metrics.r2_score > 0.8, "{metrics:?}");
    }

    #[test]
    fn money_strings_round_trip() {
        assert_eq!(money(1325.04), "$1,325.0");
        assert_eq!(money(1234567.5), "$1,234,567.5");
        let s = RawShuttle {
            id: 1,
            company_id: 0,
            shuttle_type: "x".into(),
            engines: 1.0,
            passenger_capacity: 2,
            crew: 1.0,
            d_check_complete: "t".into(),
            moon_clearance_complete: "f".into(),
            price: "$1,234,567.5".into(),
        };
        assert_eq!(preprocess_shuttles(&vec![s]).unwrap()[0].price, 1234567.5);
    }
}
