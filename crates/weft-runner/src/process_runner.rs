//! Building blocks of the `process` runner (issue 12): the wire format
//! between a run and its node hosts.
//!
//! A node host is a child process that serves node calls over its stdin
//! and stdout. Every message is one **frame**: a one-byte kind, a
//! little-endian `u32` payload length, then the payload. Node values cross
//! as [`WireValue`]s: an `arrow_array::RecordBatch` as Arrow IPC stream
//! bytes (never JSON), any other serde-backed value as its JSON form, which
//! the receiving side decodes with the requested [`DataType`].
//!
//! ```
//! use weft_pipeline::{Data, DataType};
//! use weft_runner::process_runner::WireValue;
//!
//! let wire = WireValue::encode("ratio", &Data::new(0.25f64))?;
//! let back = wire.decode("ratio", Some(&DataType::of::<f64>()))?;
//! assert_eq!(back.downcast_ref::<f64>(), Some(&0.25));
//! # Ok::<(), weft_runner::process_runner::WireError>(())
//! ```
//!
//! Not built yet: the runner that starts and reuses hosts, the host
//! subcommand, and the per-node limits; see the README's runners section.

use std::io::{self, Read, Write};

use arrow_array::RecordBatch;
use weft_pipeline::{Data, DataType};

/// The largest payload a frame may carry (1 GiB): a longer length prefix
/// is a corrupt stream, not an allocation to attempt.
pub const MAX_FRAME_LEN: u32 = 1 << 30;

/// Why a frame or a value could not cross the process boundary.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// Reading or writing the pipe failed.
    #[error("node host pipe: {context}: {source}")]
    Io {
        /// What was being read or written.
        context: &'static str,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The stream ended inside a frame.
    #[error("node host stream ended inside a frame ({got} of {expected} bytes of the {part})")]
    Truncated {
        /// `header` or `payload`.
        part: &'static str,
        /// Bytes read.
        got: usize,
        /// Bytes expected.
        expected: usize,
    },
    /// A length prefix above [`MAX_FRAME_LEN`].
    #[error("node host frame of {len} bytes exceeds the {max}-byte limit (corrupt stream?)")]
    TooLong {
        /// The announced length.
        len: u64,
        /// The limit.
        max: u32,
    },
    /// A value's tag byte is unknown.
    #[error("unknown value tag {tag} in a node host frame")]
    UnknownTag {
        /// The tag.
        tag: u8,
    },
    /// A value of dataset `dataset` cannot cross (not serde-backed, not a RecordBatch).
    #[error("dataset `{dataset}` holds a `{type_name}`, which cannot cross to a node host: {reason}")]
    NotTransferable {
        /// The dataset.
        dataset: String,
        /// The value's type.
        type_name: String,
        /// Why.
        reason: String,
    },
    /// Arrow IPC encoding or decoding failed.
    #[error("Arrow IPC of dataset `{dataset}`: {source}")]
    Arrow {
        /// The dataset.
        dataset: String,
        /// The Arrow error.
        #[source]
        source: arrow_schema::ArrowError,
    },
    /// A JSON value could not be encoded or decoded into the requested type.
    #[error("value of dataset `{dataset}`: {message}")]
    Decode {
        /// The dataset.
        dataset: String,
        /// What failed.
        message: String,
    },
}

/// One frame: its kind byte and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// What the payload is (defined by the protocol using the frames).
    pub kind: u8,
    /// The payload bytes.
    pub payload: Vec<u8>,
}

/// Writes one frame and flushes.
pub fn write_frame(w: &mut impl Write, kind: u8, payload: &[u8]) -> Result<(), WireError> {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|l| *l <= MAX_FRAME_LEN)
        .ok_or(WireError::TooLong {
            len: payload.len() as u64,
            max: MAX_FRAME_LEN,
        })?;
    let io = |source| WireError::Io {
        context: "writing a frame",
        source,
    };
    let mut header = [0u8; 5];
    header[0] = kind;
    header[1..].copy_from_slice(&len.to_le_bytes());
    w.write_all(&header).map_err(io)?;
    w.write_all(payload).map_err(io)?;
    w.flush().map_err(io)
}

/// Reads as many bytes as fill `buf` or the stream has; returns the count.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> Result<usize, WireError> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(WireError::Io {
                    context: "reading a frame",
                    source,
                });
            }
        }
    }
    Ok(got)
}

/// Reads one frame; `Ok(None)` when the stream ends cleanly between frames.
pub fn read_frame(r: &mut impl Read) -> Result<Option<Frame>, WireError> {
    let mut header = [0u8; 5];
    let got = read_full(r, &mut header)?;
    if got == 0 {
        return Ok(None);
    }
    if got < header.len() {
        return Err(WireError::Truncated {
            part: "header",
            got,
            expected: header.len(),
        });
    }
    let len = u32::from_le_bytes([header[1], header[2], header[3], header[4]]);
    if len > MAX_FRAME_LEN {
        return Err(WireError::TooLong {
            len: u64::from(len),
            max: MAX_FRAME_LEN,
        });
    }
    let mut payload = vec![0u8; len as usize];
    let got = read_full(r, &mut payload)?;
    if got < payload.len() {
        return Err(WireError::Truncated {
            part: "payload",
            got,
            expected: payload.len(),
        });
    }
    Ok(Some(Frame {
        kind: header[0],
        payload,
    }))
}

const TAG_ARROW: u8 = 1;
const TAG_JSON: u8 = 2;

/// A node value in its wire form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireValue {
    /// A RecordBatch as Arrow IPC stream bytes.
    ArrowIpc(Vec<u8>),
    /// A serde-backed value as JSON text.
    Json(Vec<u8>),
}

impl WireValue {
    /// Encodes `data`, the value of `dataset`.
    pub fn encode(dataset: &str, data: &Data) -> Result<Self, WireError> {
        if let Some(batch) = data.downcast_ref::<RecordBatch>() {
            let arrow = |source| WireError::Arrow {
                dataset: dataset.to_string(),
                source,
            };
            let mut bytes = Vec::new();
            let mut writer =
                arrow_ipc::writer::StreamWriter::try_new(&mut bytes, batch.schema_ref()).map_err(arrow)?;
            writer.write(batch).map_err(arrow)?;
            writer.finish().map_err(arrow)?;
            drop(writer);
            return Ok(WireValue::ArrowIpc(bytes));
        }
        let ser = data.as_serialize().ok_or_else(|| WireError::NotTransferable {
            dataset: dataset.to_string(),
            type_name: weft_pipeline::data::user_type_name(data.type_name()),
            reason: "it is neither a RecordBatch nor serde-backed (declare it with `serde_data!`)".into(),
        })?;
        serde_json::to_vec(ser)
            .map(WireValue::Json)
            .map_err(|e| WireError::Decode {
                dataset: dataset.to_string(),
                message: e.to_string(),
            })
    }

    /// Decodes into a [`Data`]: a RecordBatch, or the JSON decoded as `ty`
    /// (a `serde_json::Value` when no type is requested).
    pub fn decode(&self, dataset: &str, ty: Option<&DataType>) -> Result<Data, WireError> {
        match self {
            WireValue::ArrowIpc(bytes) => {
                let arrow = |source| WireError::Arrow {
                    dataset: dataset.to_string(),
                    source,
                };
                let reader =
                    arrow_ipc::reader::StreamReader::try_new(io::Cursor::new(bytes), None).map_err(arrow)?;
                let schema = reader.schema();
                let batches = reader.collect::<Result<Vec<_>, _>>().map_err(arrow)?;
                let batch = match batches.len() {
                    1 => batches
                        .into_iter()
                        .next()
                        .unwrap_or_else(|| RecordBatch::new_empty(schema)),
                    0 => RecordBatch::new_empty(schema),
                    _ => arrow_select::concat::concat_batches(&schema, &batches).map_err(arrow)?,
                };
                Ok(Data::new(batch))
            }
            WireValue::Json(bytes) => {
                let decode = |message: String| WireError::Decode {
                    dataset: dataset.to_string(),
                    message,
                };
                let value: serde_json::Value =
                    serde_json::from_slice(bytes).map_err(|e| decode(e.to_string()))?;
                match ty {
                    Some(ty) => ty.decode_json(&value).map_err(|e| decode(e.to_string())),
                    None => Ok(Data::new(value)),
                }
            }
        }
    }

    /// Appends the tagged, length-prefixed value to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let (tag, bytes) = match self {
            WireValue::ArrowIpc(b) => (TAG_ARROW, b),
            WireValue::Json(b) => (TAG_JSON, b),
        };
        out.push(tag);
        out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        out.extend_from_slice(bytes);
    }

    /// Reads one value written by [`WireValue::write_to`] from the front of
    /// `input`, advancing it.
    pub fn read_from(input: &mut &[u8]) -> Result<Self, WireError> {
        let truncated = |got: usize, expected: usize| WireError::Truncated {
            part: "value",
            got,
            expected,
        };
        if input.len() < 9 {
            return Err(truncated(input.len(), 9));
        }
        let tag = input[0];
        let mut len = [0u8; 8];
        len.copy_from_slice(&input[1..9]);
        let len = u64::from_le_bytes(len);
        let rest = &input[9..];
        let len = usize::try_from(len)
            .ok()
            .filter(|l| *l <= rest.len())
            .ok_or_else(|| truncated(rest.len(), usize::try_from(len).unwrap_or(usize::MAX)))?;
        let bytes = rest[..len].to_vec();
        *input = &rest[len..];
        match tag {
            TAG_ARROW => Ok(WireValue::ArrowIpc(bytes)),
            TAG_JSON => Ok(WireValue::Json(bytes)),
            tag => Err(WireError::UnknownTag { tag }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow_array::{Float64Array, Int64Array, StringArray};

    fn batch(rows: i64) -> RecordBatch {
        let ids = Int64Array::from_iter_values(0..rows);
        let names = StringArray::from_iter_values((0..rows).map(|i| format!("row{i}")));
        let xs = Float64Array::from_iter_values((0..rows).map(|i| i as f64 * 0.5));
        RecordBatch::try_from_iter([
            ("id", Arc::new(ids) as _),
            ("name", Arc::new(names) as _),
            ("x", Arc::new(xs) as _),
        ])
        .unwrap()
    }

    #[test]
    fn frames_round_trip_in_order() {
        let mut buf = Vec::new();
        write_frame(&mut buf, 1, b"hello").unwrap();
        write_frame(&mut buf, 7, b"").unwrap();
        write_frame(&mut buf, 2, &[0u8; 70_000]).unwrap();
        let mut r = io::Cursor::new(buf);
        assert_eq!(
            read_frame(&mut r).unwrap().unwrap(),
            Frame {
                kind: 1,
                payload: b"hello".to_vec()
            }
        );
        assert_eq!(
            read_frame(&mut r).unwrap().unwrap(),
            Frame {
                kind: 7,
                payload: vec![]
            }
        );
        let big = read_frame(&mut r).unwrap().unwrap();
        assert_eq!((big.kind, big.payload.len()), (2, 70_000));
        assert!(read_frame(&mut r).unwrap().is_none(), "clean end between frames");
    }

    #[test]
    fn truncated_and_oversized_frames_are_errors() {
        let mut buf = Vec::new();
        write_frame(&mut buf, 1, b"hello").unwrap();
        let cut = &buf[..buf.len() - 2];
        let err = read_frame(&mut io::Cursor::new(cut)).unwrap_err();
        assert!(
            matches!(
                err,
                WireError::Truncated {
                    part: "payload",
                    got: 3,
                    expected: 5
                }
            ),
            "{err}"
        );
        let err = read_frame(&mut io::Cursor::new(&buf[..3])).unwrap_err();
        assert!(
            matches!(err, WireError::Truncated { part: "header", .. }),
            "{err}"
        );
        let mut huge = vec![9u8];
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        let err = read_frame(&mut io::Cursor::new(huge)).unwrap_err();
        assert!(err.to_string().contains("exceeds"), "{err}");
    }

    #[test]
    fn record_batch_crosses_as_arrow_ipc() {
        let original = batch(1000);
        let wire = WireValue::encode("features", &Data::new(original.clone())).unwrap();
        let WireValue::ArrowIpc(bytes) = &wire else {
            panic!("expected Arrow IPC, got {wire:?}")
        };
        assert!(!bytes.starts_with(b"{"), "not JSON");
        let back = wire.decode("features", None).unwrap();
        assert_eq!(back.downcast_ref::<RecordBatch>().unwrap(), &original);
    }

    #[test]
    fn serde_values_cross_with_the_requested_type() {
        let wire = WireValue::encode("ratio", &Data::new(0.25f64)).unwrap();
        assert_eq!(wire, WireValue::Json(b"0.25".to_vec()));
        let back = wire.decode("ratio", Some(&DataType::of::<f64>())).unwrap();
        assert_eq!(back.downcast_ref::<f64>(), Some(&0.25));
        let untyped = wire.decode("ratio", None).unwrap();
        assert_eq!(
            untyped.downcast_ref::<serde_json::Value>(),
            Some(&serde_json::json!(0.25))
        );
        let err = WireValue::Json(b"\"x\"".to_vec())
            .decode("ratio", Some(&DataType::of::<f64>()))
            .unwrap_err();
        assert!(err.to_string().contains("dataset `ratio`"), "{err}");
    }

    #[test]
    fn opaque_values_are_a_clear_error_naming_the_dataset() {
        struct Handle;
        weft_pipeline::opaque_data!(Handle);
        let err = WireValue::encode("model", &Data::new(Handle)).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("dataset `model`") && text.contains("Handle"),
            "{text}"
        );
    }

    #[test]
    fn values_pack_back_to_back_and_bad_input_is_an_error() {
        let a = WireValue::encode("a", &Data::new(batch(3))).unwrap();
        let b = WireValue::encode("b", &Data::new("text".to_string())).unwrap();
        let mut packed = Vec::new();
        a.write_to(&mut packed);
        b.write_to(&mut packed);
        let mut input = packed.as_slice();
        assert_eq!(WireValue::read_from(&mut input).unwrap(), a);
        assert_eq!(WireValue::read_from(&mut input).unwrap(), b);
        assert!(input.is_empty());
        let mut short = &packed[..5];
        assert!(WireValue::read_from(&mut short).is_err());
        let mut bad = packed.clone();
        bad[0] = 99;
        let mut bad = bad.as_slice();
        assert!(matches!(
            WireValue::read_from(&mut bad),
            Err(WireError::UnknownTag { tag: 99 })
        ));
    }
}
