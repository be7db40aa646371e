//! Durations as written in configuration: `500ms`, `30s`, `5m`, `1h`.

use std::time::Duration;

/// Parses a duration written as a number and a unit: `ms`, `s`, `m` or `h`
/// (`500ms`, `30s`, `1.5m`, `1h`). It must be more than zero. The error
/// says what was wrong and shows the accepted forms.
///
/// ```
/// use std::time::Duration;
/// use weft_pipeline::parse_duration;
/// assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
/// assert_eq!(parse_duration("1.5m"), Ok(Duration::from_secs(90)));
/// assert!(parse_duration("30").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let forms = "write a number and a unit: `500ms`, `30s`, `5m` or `1h`";
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    if number.is_empty() {
        return Err(format!("`{text}` is not a duration; {forms}"));
    }
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration; {forms}"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        "" => return Err(format!("`{text}` has no unit; {forms}")),
        other => return Err(format!("`{text}` has an unknown unit `{other}`; {forms}")),
    };
    if seconds.is_nan() || seconds <= 0.0 {
        return Err(format!("`{text}` must be more than zero"));
    }
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("`{text}` is too long a duration"))
}

/// Writes a duration the way [`parse_duration`] reads it, in the largest
/// unit that shows it exactly (`30s`, `5m`, `1500ms`).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if !d.subsec_nanos().is_multiple_of(1_000_000) || ms == 0 {
        return format!("{}ms", d.as_secs_f64() * 1000.0);
    }
    if ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_errors() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration(" 5m "), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0.25s"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("30").unwrap_err().contains("has no unit"));
        assert!(
            parse_duration("30 sec")
                .unwrap_err()
                .contains("unknown unit `sec`")
        );
        assert!(parse_duration("soon").unwrap_err().contains("is not a duration"));
        assert!(
            parse_duration("1.2.3s")
                .unwrap_err()
                .contains("is not a duration")
        );
        assert!(parse_duration("0s").unwrap_err().contains("more than zero"));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("99999999999999999999999h").is_err());
    }

    #[test]
    fn formats_round_trip() {
        for text in ["30s", "5m", "1h", "1500ms", "250ms"] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
    }
}
