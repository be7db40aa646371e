//! Type-erased values that flow between nodes and datasets.
//!
//! A [`Data`] is a cheap handle (`Arc`) around any [`DataValue`]: memory
//! datasets hand the same `Arc` to every reader, so nothing is copied.
//!
//! A type opts into flowing through weft by implementing [`DataValue`]. Types
//! that implement serde's `Serialize` and `Deserialize` should use
//! [`serde_data!`](crate::serde_data): file datasets (JSON, YAML, CSV,
//! parameters) then decode straight into them, and can save them. Types that
//! are not serde-aware use [`opaque_data!`](crate::opaque_data) and can only
//! live in memory datasets (or datasets made for them, like Arrow tables).

use std::any::{Any, TypeId};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why a value could not be decoded into, or converted to, a requested type.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The requested type has no serde support (it was declared opaque).
    #[error(
        "type `{type_name}` cannot be decoded from a serialized format; declare it with `serde_data!` to load it from files"
    )]
    NotDecodable {
        /// The requested type.
        type_name: &'static str,
    },
    /// The value held has no serde support, so it cannot be converted.
    #[error(
        "value of type `{type_name}` cannot be serialized; declare it with `serde_data!` to save it to files or convert it"
    )]
    NotSerializable {
        /// The held type.
        type_name: &'static str,
    },
    /// The serialized data does not match the requested type.
    #[error("cannot decode into `{type_name}`: {message}")]
    Mismatch {
        /// The requested type.
        type_name: &'static str,
        /// What the deserializer reported.
        message: String,
    },
}

/// A value that can flow through a pipeline.
///
/// Implement it with [`serde_data!`](crate::serde_data) (decodable from and
/// encodable to files) or [`opaque_data!`](crate::opaque_data) (memory only).
pub trait DataValue: Any + Send + Sync {
    /// Whether [`DataValue::decode`] can succeed for this type.
    fn decodable() -> bool
    where
        Self: Sized,
    {
        false
    }

    /// Decodes a value of this type from any serde deserializer.
    fn decode(de: &mut dyn erased_serde::Deserializer<'_>) -> Result<Self, DecodeError>
    where
        Self: Sized,
    {
        let _ = de;
        Err(DecodeError::NotDecodable {
            type_name: std::any::type_name::<Self>(),
        })
    }

    /// The value as something serde can serialize, if the type supports it.
    fn as_serialize(&self) -> Option<&dyn erased_serde::Serialize> {
        None
    }

    /// How many rows the value holds, when it is tabular or a list (a
    /// `RecordBatch`, a `Vec`, a JSON array): node metrics count rows in
    /// and out with it. `None` (the default) for everything else.
    fn rows(&self) -> Option<u64> {
        None
    }
}

/// Decodes `T` through serde; used by [`serde_data!`](crate::serde_data).
#[doc(hidden)]
pub fn decode_with_serde<T: DeserializeOwned>(
    de: &mut dyn erased_serde::Deserializer<'_>,
) -> Result<T, DecodeError> {
    erased_serde::deserialize::<T>(de).map_err(|e| DecodeError::Mismatch {
        type_name: std::any::type_name::<T>(),
        message: e.to_string(),
    })
}

/// Declares types as serde-backed [`DataValue`]s: file datasets decode
/// straight into them and can save them.
///
/// ```
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct SplitParams { ratio: f64 }
/// weft_pipeline::serde_data!(SplitParams);
/// ```
#[macro_export]
macro_rules! serde_data {
    ($($t:ty),+ $(,)?) => {
        $(
            impl $crate::DataValue for $t {
                fn decodable() -> bool { true }
                fn decode(
                    de: &mut dyn $crate::__private::erased_serde::Deserializer<'_>,
                ) -> ::std::result::Result<Self, $crate::DecodeError> {
                    $crate::data::decode_with_serde::<$t>(de)
                }
                fn as_serialize(&self) -> ::std::option::Option<&dyn $crate::__private::erased_serde::Serialize> {
                    ::std::option::Option::Some(self)
                }
            }
        )+
    };
}

/// Declares types as opaque [`DataValue`]s: they flow between nodes through
/// memory datasets but cannot be loaded from or saved to files.
#[macro_export]
macro_rules! opaque_data {
    ($($t:ty),+ $(,)?) => {
        $( impl $crate::DataValue for $t {} )+
    };
}

serde_data!(
    bool, i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize, f32, f64, char, String
);

impl DataValue for serde_json::Value {
    fn decodable() -> bool {
        true
    }
    fn decode(de: &mut dyn erased_serde::Deserializer<'_>) -> Result<Self, DecodeError> {
        decode_with_serde(de)
    }
    fn as_serialize(&self) -> Option<&dyn erased_serde::Serialize> {
        Some(self)
    }
    fn rows(&self) -> Option<u64> {
        self.as_array().map(|a| a.len() as u64)
    }
}

/// The empty value that `noop` outputs and nodes without results may return.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Empty;
serde_data!(Empty);

/// Containers of serde types are serde-backed values themselves.
macro_rules! serde_containers {
    ($($container:ty => $rows:expr),+ $(,)?) => {$(
        impl<T> DataValue for $container
        where
            T: Serialize + DeserializeOwned + Send + Sync + 'static,
        {
            fn decodable() -> bool {
                true
            }
            fn decode(de: &mut dyn erased_serde::Deserializer<'_>) -> Result<Self, DecodeError> {
                decode_with_serde(de)
            }
            fn as_serialize(&self) -> Option<&dyn erased_serde::Serialize> {
                Some(self)
            }
            fn rows(&self) -> Option<u64> {
                let rows: fn(&Self) -> Option<u64> = $rows;
                rows(self)
            }
        }
    )+};
}
serde_containers!(
    Vec<T> => |v| Some(v.len() as u64),
    Option<T> => |_| None,
    BTreeMap<String, T> => |_| None,
    HashMap<String, T> => |_| None,
);

#[cfg(feature = "arrow")]
impl DataValue for arrow_array::RecordBatch {
    fn rows(&self) -> Option<u64> {
        Some(self.num_rows() as u64)
    }
}

/// Runtime description of a [`DataValue`] type: identity, name and decoder.
#[derive(Clone, Copy)]
pub struct DataType {
    id: TypeId,
    name: &'static str,
    decodable: bool,
    decode: fn(&mut dyn erased_serde::Deserializer<'_>) -> Result<Data, DecodeError>,
}

impl DataType {
    /// The description of `T`.
    pub fn of<T: DataValue>() -> Self {
        DataType {
            id: TypeId::of::<T>(),
            name: std::any::type_name::<T>(),
            decodable: T::decodable(),
            decode: |de| T::decode(de).map(Data::new),
        }
    }

    /// The type's identity.
    pub fn id(&self) -> TypeId {
        self.id
    }

    /// The type's Rust name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Whether values of this type can be decoded from serialized formats.
    pub fn is_decodable(&self) -> bool {
        self.decodable
    }

    /// Decodes a value of this type from a serde deserializer.
    pub fn decode(&self, de: &mut dyn erased_serde::Deserializer<'_>) -> Result<Data, DecodeError> {
        (self.decode)(de)
    }

    /// Decodes a value of this type from a JSON value.
    pub fn decode_json(&self, value: &serde_json::Value) -> Result<Data, DecodeError> {
        let mut de = <dyn erased_serde::Deserializer>::erase(value);
        self.decode(&mut de)
    }
}

impl PartialEq for DataType {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for DataType {}

impl fmt::Debug for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

impl fmt::Display for DataType {
    /// The type as its user writes it: module paths dropped
    /// (`Vec<Row>`, not `alloc::vec::Vec<my_crate::Row>`), and
    /// `serde_json::Value` shown as `JSON value`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&user_type_name(self.name))
    }
}

/// `std::any::type_name` output without module paths.
pub fn user_type_name(full: &str) -> String {
    if full == "serde_json::value::Value" {
        return "JSON value".to_string();
    }
    let mut out = String::with_capacity(full.len());
    let mut segment = String::new();
    let flush = |segment: &mut String, out: &mut String| {
        let short = segment.rsplit("::").next().unwrap_or(segment);
        out.push_str(if segment == "serde_json::value::Value" {
            "JSON value"
        } else {
            short
        });
        segment.clear();
    };
    for c in full.chars() {
        if c.is_alphanumeric() || c == '_' || c == ':' {
            segment.push(c);
        } else {
            flush(&mut segment, &mut out);
            out.push(c);
        }
    }
    flush(&mut segment, &mut out);
    out
}

/// A shareable, type-erased value: what datasets load and nodes exchange.
#[derive(Clone)]
pub struct Data {
    value: Arc<dyn DataValue>,
    type_name: &'static str,
}

impl Data {
    /// Wraps a value.
    pub fn new<T: DataValue>(value: T) -> Self {
        Data::from_arc(Arc::new(value))
    }

    /// Wraps an already shared value without copying it.
    pub fn from_arc<T: DataValue>(value: Arc<T>) -> Self {
        Data {
            value,
            type_name: std::any::type_name::<T>(),
        }
    }

    /// How many rows the value holds, when its type knows ([`DataValue::rows`]).
    pub fn rows(&self) -> Option<u64> {
        self.value.rows()
    }

    /// The held value's type identity.
    pub fn type_id(&self) -> TypeId {
        let any: &dyn Any = &*self.value;
        any.type_id()
    }

    /// The held value's Rust type name.
    pub fn type_name(&self) -> &'static str {
        self.type_name
    }

    /// Whether the held value is a `T`.
    pub fn is<T: 'static>(&self) -> bool {
        self.type_id() == TypeId::of::<T>()
    }

    /// Borrows the value as `T`, if it is one.
    pub fn downcast_ref<T: 'static>(&self) -> Option<&T> {
        let any: &dyn Any = &*self.value;
        any.downcast_ref::<T>()
    }

    /// Shares the value as `Arc<T>`, if it is one (no copy).
    pub fn downcast_arc<T: DataValue>(&self) -> Option<Arc<T>> {
        let any: Arc<dyn Any + Send + Sync> = self.value.clone();
        any.downcast::<T>().ok()
    }

    /// The value as something serde can serialize, if its type supports it.
    pub fn as_serialize(&self) -> Option<&dyn erased_serde::Serialize> {
        self.value.as_serialize()
    }

    /// The value converted to JSON, if its type is serde-backed.
    pub fn to_json(&self) -> Result<serde_json::Value, DecodeError> {
        let ser = self.as_serialize().ok_or(DecodeError::NotSerializable {
            type_name: self.type_name,
        })?;
        serde_json::to_value(ser).map_err(|e| DecodeError::Mismatch {
            type_name: "serde_json::Value",
            message: e.to_string(),
        })
    }

    /// The value as the requested type: shared as is when it already is one,
    /// otherwise converted through serde when both sides support it (for
    /// example a JSON value produced by an untyped node, read by a node that
    /// asks for a struct).
    pub fn convert_to(&self, ty: &DataType) -> Result<Data, DecodeError> {
        if self.type_id() == ty.id() {
            return Ok(self.clone());
        }
        if !ty.is_decodable() {
            return Err(DecodeError::NotDecodable { type_name: ty.name() });
        }
        let json = self.to_json()?;
        ty.decode_json(&json)
    }

    /// Whether both handles share one allocation.
    pub fn ptr_eq(&self, other: &Data) -> bool {
        std::ptr::addr_eq(Arc::as_ptr(&self.value), Arc::as_ptr(&other.value))
    }

    /// How many handles share this value (for release tests and metrics).
    pub fn strong_count(&self) -> usize {
        Arc::strong_count(&self.value)
    }
}

impl fmt::Debug for Data {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_json() {
            Ok(json) => write!(f, "Data<{}>({json})", self.type_name),
            Err(_) => write!(f, "Data<{}>(..)", self.type_name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_lists_and_json_arrays_know_their_rows() {
        assert_eq!(Data::new(vec![1, 2, 3]).rows(), Some(3));
        assert_eq!(Data::new(serde_json::json!([1, 2])).rows(), Some(2));
        assert_eq!(Data::new(serde_json::json!({"a": 1})).rows(), None);
        assert_eq!(Data::new(7_i64).rows(), None);
        #[cfg(feature = "arrow")]
        {
            let column: arrow_array::ArrayRef = Arc::new(arrow_array::Int64Array::from(vec![1, 2, 3, 4]));
            let batch = arrow_array::RecordBatch::try_from_iter([("x", column)]).unwrap();
            assert_eq!(Data::new(batch).rows(), Some(4));
        }
    }

    #[test]
    fn type_names_read_as_the_user_writes_them() {
        assert_eq!(
            user_type_name("alloc::vec::Vec<my_crate::model::Row>"),
            "Vec<Row>"
        );
        assert_eq!(user_type_name("serde_json::value::Value"), "JSON value");
        assert_eq!(
            user_type_name(
                "std::collections::hash::map::HashMap<alloc::string::String, serde_json::value::Value>"
            ),
            "HashMap<String, JSON value>"
        );
        assert_eq!(user_type_name("(i64, f64)"), "(i64, f64)");
        assert_eq!(DataType::of::<Vec<i64>>().to_string(), "Vec<i64>");
    }

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Params {
        ratio: f64,
        name: String,
    }
    crate::serde_data!(Params);

    struct Model(u32);
    crate::opaque_data!(Model);

    #[test]
    fn data_shares_one_allocation() {
        let d = Data::new(vec![1i64, 2, 3]);
        let e = d.clone();
        assert!(d.ptr_eq(&e));
        let a = d.downcast_arc::<Vec<i64>>().unwrap();
        assert_eq!(*a, vec![1, 2, 3]);
        assert_eq!(d.strong_count(), 3);
        assert!(d.downcast_ref::<Vec<u8>>().is_none());
    }

    #[test]
    fn json_value_converts_into_struct() {
        let d = Data::new(serde_json::json!({"ratio": 0.5, "name": "x"}));
        let p = d.convert_to(&DataType::of::<Params>()).unwrap();
        assert_eq!(
            p.downcast_ref::<Params>().unwrap(),
            &Params {
                ratio: 0.5,
                name: "x".into()
            }
        );
    }

    #[test]
    fn conversion_errors_name_types() {
        let d = Data::new(Model(1));
        let err = d.convert_to(&DataType::of::<Params>()).unwrap_err();
        assert!(err.to_string().contains("Model"), "{err}");
        let d = Data::new(serde_json::json!({"ratio": "no"}));
        let err = d.convert_to(&DataType::of::<Params>()).unwrap_err();
        assert!(err.to_string().contains("Params"), "{err}");
        let err = Data::new(1i64).convert_to(&DataType::of::<Model>()).unwrap_err();
        assert!(matches!(err, DecodeError::NotDecodable { .. }));
        assert_eq!(Data::new(Model(7)).downcast_ref::<Model>().unwrap().0, 7);
    }

    #[test]
    fn decode_from_json_text() {
        let ty = DataType::of::<Vec<Params>>();
        let mut de = serde_json::Deserializer::from_str(r#"[{"ratio":1.0,"name":"a"}]"#);
        let d = ty
            .decode(&mut <dyn erased_serde::Deserializer>::erase(&mut de))
            .unwrap();
        assert_eq!(d.downcast_ref::<Vec<Params>>().unwrap()[0].name, "a");
        assert!(ty.is_decodable());
        assert!(!DataType::of::<Model>().is_decodable());
    }
}
