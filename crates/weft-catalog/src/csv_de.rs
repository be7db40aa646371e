//! A serde deserializer over a whole CSV file: a sequence of rows, each a
//! map of header → field. Fields parse into whatever the target type asks
//! for (`f64`, `bool`, `Option`...), and `deserialize_any` infers int,
//! float, bool or string, so `Vec<MyRow>` decodes straight from the file
//! and an untyped load yields JSON objects with typed scalars.

use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde::forward_to_deserialize_any;

/// A deserialization error with the row and column it happened in.
#[derive(Debug)]
pub struct CsvDeError(pub String);

impl fmt::Display for CsvDeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CsvDeError {}

impl de::Error for CsvDeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        CsvDeError(msg.to_string())
    }
}

/// The whole table.
pub struct Table<'a> {
    /// Column names.
    pub headers: &'a [String],
    /// Rows of fields.
    pub rows: &'a [csv::StringRecord],
}

impl<'de> de::Deserializer<'de> for Table<'_> {
    type Error = CsvDeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CsvDeError> {
        visitor.visit_seq(Rows {
            headers: self.headers,
            rows: self.rows.iter(),
            index: 0,
        })
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

struct Rows<'a, I> {
    headers: &'a [String],
    rows: I,
    index: usize,
}

impl<'de, 'a, I: Iterator<Item = &'a csv::StringRecord>> SeqAccess<'de> for Rows<'a, I> {
    type Error = CsvDeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, CsvDeError> {
        let Some(record) = self.rows.next() else {
            return Ok(None);
        };
        self.index += 1;
        let row = self.index;
        seed.deserialize(Row {
            headers: self.headers,
            record,
        })
        .map(Some)
        .map_err(|e| CsvDeError(format!("row {row}: {e}")))
    }
}

struct Row<'a> {
    headers: &'a [String],
    record: &'a csv::StringRecord,
}

impl<'de> de::Deserializer<'de> for Row<'_> {
    type Error = CsvDeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CsvDeError> {
        visitor.visit_map(Fields {
            headers: self.headers,
            record: self.record,
            index: 0,
        })
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CsvDeError> {
        visitor.visit_seq(Values {
            fields: self.record.iter(),
        })
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, CsvDeError> {
        self.deserialize_seq(visitor)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct
        tuple_struct map struct enum identifier ignored_any
    }
}

struct Values<'a, I: Iterator<Item = &'a str>> {
    fields: I,
}

impl<'de, 'a, I: Iterator<Item = &'a str>> SeqAccess<'de> for Values<'a, I> {
    type Error = CsvDeError;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, CsvDeError> {
        match self.fields.next() {
            Some(f) => seed.deserialize(Field(f)).map(Some),
            None => Ok(None),
        }
    }
}

struct Fields<'a> {
    headers: &'a [String],
    record: &'a csv::StringRecord,
    index: usize,
}

impl<'de> MapAccess<'de> for Fields<'_> {
    type Error = CsvDeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, CsvDeError> {
        if self.index >= self.headers.len() {
            return Ok(None);
        }
        let key: &str = &self.headers[self.index];
        seed.deserialize(key.into_deserializer()).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, CsvDeError> {
        let column = &self.headers[self.index];
        let value = self.record.get(self.index).unwrap_or("");
        self.index += 1;
        seed.deserialize(Field(value))
            .map_err(|e| CsvDeError(format!("column `{column}`: {e}")))
    }
}

/// One field: parses into whatever is asked.
struct Field<'a>(&'a str);

impl Field<'_> {
    fn parse<T: std::str::FromStr>(&self, what: &str) -> Result<T, CsvDeError> {
        self.0
            .trim()
            .parse()
            .map_err(|_| CsvDeError(format!("`{}` is not a valid {what}", self.0)))
    }
}

impl<'de> de::Deserializer<'de> for Field<'_> {
    type Error = CsvDeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CsvDeError> {
        let s = self.0.trim();
        if s.is_empty() {
            return visitor.visit_unit();
        }
        if let Ok(i) = s.parse::<i64>() {
            return visitor.visit_i64(i);
        }
        if let Ok(f) = s.parse::<f64>()
            && f.is_finite()
        {
            return visitor.visit_f64(f);
        }
        match s {
            "true" | "True" | "TRUE" => visitor.visit_bool(true),
            "false" | "False" | "FALSE" => visitor.visit_bool(false),
            _ => visitor.visit_str(self.0),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CsvDeError> {
        match self.0.trim() {
            "true" | "True" | "TRUE" | "1" | "t" | "yes" => visitor.visit_bool(true),
            "false" | "False" | "FALSE" | "0" | "f" | "no" => visitor.visit_bool(false),
            other => Err(CsvDeError(format!("`{other}` is not a boolean"))),
        }
    }

    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CsvDeError> {
        visitor.visit_i64(self.parse("integer")?)
    }
    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CsvDeError> {
        self.deserialize_i64(visitor)
    }
    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CsvDeError> {
        self.deserialize_i64(visitor)
    }
    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CsvDeError> {
        self.deserialize_i64(visitor)
    }
    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CsvDeError> {
        visitor.visit_u64(self.parse("unsigned integer")?)
    }
    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CsvDeError> {
        self.deserialize_u64(visitor)
    }
    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CsvDeError> {
        self.deserialize_u64(visitor)
    }
    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CsvDeError> {
        self.deserialize_u64(visitor)
    }
    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CsvDeError> {
        visitor.visit_f64(self.parse("number")?)
    }
    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CsvDeError> {
        self.deserialize_f64(visitor)
    }
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CsvDeError> {
        visitor.visit_str(self.0)
    }
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CsvDeError> {
        visitor.visit_str(self.0)
    }
    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CsvDeError> {
        visitor.visit_str(self.0)
    }
    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CsvDeError> {
        visitor.visit_str(self.0)
    }
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CsvDeError> {
        if self.0.trim().is_empty() {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }
    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CsvDeError> {
        visitor.visit_unit()
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, CsvDeError> {
        visitor.visit_newtype_struct(self)
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, CsvDeError> {
        visitor.visit_enum(self.0.into_deserializer())
    }

    forward_to_deserialize_any! {
        i128 u128 bytes byte_buf unit_struct seq tuple tuple_struct map struct ignored_any
    }
}
