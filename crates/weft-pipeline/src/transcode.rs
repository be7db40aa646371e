//! Transcoding: `name@fmt` references one logical dataset `name` in several
//! formats (Kedro's `_strip_transcoding`). For dependency resolution every
//! `name@*` is the same dataset: a node writing `a@spark` feeds a node
//! reading `a@pandas`.
//!
//! A name has at most one `@`; [`Pipeline::new`](crate::Pipeline::new)
//! rejects `a@b@c`.

/// The separator between a dataset name and its format.
pub const SEPARATOR: char = '@';

/// Splits `name@fmt` into `("name", Some("fmt"))`; a bare name has no format.
///
/// Only the first `@` separates: `a@b@c` splits into `("a", Some("b@c"))`
/// (such names are invalid, see [`is_valid`]).
///
/// ```
/// use weft_pipeline::transcode::split;
/// assert_eq!(split("cars@pandas"), ("cars", Some("pandas")));
/// assert_eq!(split("cars"), ("cars", None));
/// ```
pub fn split(name: &str) -> (&str, Option<&str>) {
    match name.split_once(SEPARATOR) {
        Some((base, fmt)) => (base, Some(fmt)),
        None => (name, None),
    }
}

/// The logical dataset name (`a@pandas` → `a`, `a` → `a`).
pub fn strip(name: &str) -> &str {
    split(name).0
}

/// Whether the name is transcoded (`a@fmt`).
pub fn is_transcoded(name: &str) -> bool {
    name.contains(SEPARATOR)
}

/// Whether the name has at most one `@`, and a non-empty base and format
/// around it when it has one.
pub fn is_valid(name: &str) -> bool {
    match split(name) {
        (_, None) => true,
        (base, Some(fmt)) => !base.is_empty() && !fmt.is_empty() && !fmt.contains(SEPARATOR),
    }
}

/// `base` with the format of `like` (if any): `with_format_of("b", "a@pandas")`
/// is `b@pandas`.
pub fn with_format_of(base: &str, like: &str) -> String {
    match split(like).1 {
        Some(fmt) => format!("{base}{SEPARATOR}{fmt}"),
        None => base.to_string(),
    }
}

/// Whether a dataset query matches a dataset name: a bare query matches the
/// name and every `name@*`; a transcoded query matches only itself.
pub fn matches(query: &str, name: &str) -> bool {
    if is_transcoded(query) {
        query == name
    } else {
        strip(name) == query
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_strips() {
        assert_eq!(split("a@pandas"), ("a", Some("pandas")));
        assert_eq!(split("a"), ("a", None));
        assert_eq!(split("a@b@c"), ("a", Some("b@c")));
        assert_eq!(strip("params:x"), "params:x");
        assert_eq!(strip("ns.a@spark"), "ns.a");
    }

    #[test]
    fn validity() {
        assert!(is_valid("a"));
        assert!(is_valid("a@pandas"));
        assert!(!is_valid("a@b@c"));
        assert!(!is_valid("@pandas"));
        assert!(!is_valid("a@"));
    }

    #[test]
    fn formats_and_matching() {
        assert_eq!(with_format_of("b", "a@pandas"), "b@pandas");
        assert_eq!(with_format_of("b", "a"), "b");
        assert!(is_transcoded("a@x") && !is_transcoded("a"));
        assert!(matches("a", "a@pandas"));
        assert!(matches("a", "a"));
        assert!(!matches("a", "ab"));
        assert!(matches("a@pandas", "a@pandas"));
        assert!(!matches("a@pandas", "a@spark"));
        assert!(!matches("a@pandas", "a"));
    }
}
