//! Transcoding: `name@fmt` references one logical dataset `name` in several
//! formats. For dependency resolution every `name@*` is the same dataset.

/// The separator between a dataset name and its format.
pub const SEPARATOR: char = '@';

/// Splits `name@fmt` into `("name", Some("fmt"))`; a bare name has no format.
pub fn split(name: &str) -> (&str, Option<&str>) {
    match name.split_once(SEPARATOR) {
        Some((base, fmt)) => (base, Some(fmt)),
        None => (name, None),
    }
}

/// The logical dataset name (`a@pandas` → `a`).
pub fn strip(name: &str) -> &str {
    split(name).0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_strips() {
        assert_eq!(split("a@pandas"), ("a", Some("pandas")));
        assert_eq!(split("a"), ("a", None));
        assert_eq!(strip("params:x"), "params:x");
        assert_eq!(strip("ns.a@spark"), "ns.a");
    }
}
