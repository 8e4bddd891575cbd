//! The JSON encoding of records, independent of any transport.
//!
//! One record is one flat JSON object: its fields as serde writes them, preceded by
//! `"_table"` (the record's [`ArrowRecord::TABLE`]) and `"_version"` (its
//! [`ArrowRecord::VERSION`]). For example a `flows` record starts with
//! `{"_table":"flows","_version":1,"first_seen":…`. Decoding checks both tags, so a
//! consumer never silently reads a record of another table or schema version.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ArrowRecord;

/// The tag naming a record's table.
pub const TABLE_TAG: &str = "_table";
/// The tag carrying a record's schema version.
pub const VERSION_TAG: &str = "_version";

/// Why a JSON record could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// The bytes are not a JSON object.
    #[error("not a JSON object: {0}")]
    Syntax(String),
    /// The bytes are JSON, but not an object: an array, a string, ...
    #[error("the value is {0}, not an object")]
    NotAnObject(&'static str),
    /// A tag is missing or has the wrong type.
    #[error("missing or invalid `{0}` tag")]
    MissingTag(&'static str),
    /// The record belongs to another table.
    #[error("record of table `{found}` where `{expected}` was expected")]
    WrongTable {
        /// The table expected.
        expected: &'static str,
        /// The table in the record.
        found: String,
    },
    /// The schema version is not the one this build reads.
    #[error("`{table}` schema version {found}; this build reads version {expected}")]
    WrongVersion {
        /// The table.
        table: &'static str,
        /// The version this build reads.
        expected: u32,
        /// The version in the record.
        found: u64,
    },
    /// The fields do not match the record's schema.
    #[error("`{table}` fields: {message}")]
    Fields {
        /// The table.
        table: &'static str,
        /// serde's message, naming the field.
        message: String,
    },
}

/// Appends `record` to `out` as one tagged JSON object.
pub fn encode<R: ArrowRecord + Serialize>(record: &R, out: &mut Vec<u8>) {
    let start = out.len();
    serde_json::to_writer(&mut *out, record).expect("records serialise to JSON");
    debug_assert_eq!(out.get(start), Some(&b'{'), "a record is a JSON object");
    let empty = out.get(start + 1) == Some(&b'}');
    let tags = format!(
        "{{\"{TABLE_TAG}\":\"{}\",\"{VERSION_TAG}\":{}{}",
        R::TABLE,
        R::VERSION,
        if empty { "" } else { "," }
    );
    out.splice(start..start + 1, tags.into_bytes());
}

/// The `_table` tag of an encoded record, without decoding its fields.
pub fn table_of(bytes: &[u8]) -> Result<String, JsonError> {
    #[derive(serde::Deserialize)]
    struct Tag {
        #[serde(rename = "_table")]
        table: Option<String>,
    }
    let tag: Tag = serde_json::from_slice(bytes).map_err(|e| {
        // Read whole to say what the value is, when it is JSON but not an object.
        match serde_json::from_slice::<serde_json::Value>(bytes) {
            Ok(value) => not_an_object(&value).unwrap_or(JsonError::Syntax(e.to_string())),
            Err(syntax) => JsonError::Syntax(syntax.to_string()),
        }
    })?;
    tag.table.ok_or(JsonError::MissingTag(TABLE_TAG))
}

/// [`JsonError::NotAnObject`] naming what `value` is; `None` for an object.
fn not_an_object(value: &serde_json::Value) -> Option<JsonError> {
    use serde_json::Value;
    Some(JsonError::NotAnObject(match value {
        Value::Object(_) => return None,
        Value::Array(_) => "an array",
        Value::String(_) => "a string",
        Value::Bool(_) => "a boolean",
        Value::Null => "null",
        Value::Number(_) => "a number",
    }))
}

/// Decodes one tagged JSON object as `R`, checking its table and version tags.
pub fn decode<R: ArrowRecord + DeserializeOwned>(bytes: &[u8]) -> Result<R, JsonError> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| JsonError::Syntax(e.to_string()))?;
    let serde_json::Value::Object(mut map) = value else {
        return Err(not_an_object(&value).expect("not an object"));
    };
    let table = match map.remove(TABLE_TAG) {
        Some(serde_json::Value::String(t)) => t,
        _ => return Err(JsonError::MissingTag(TABLE_TAG)),
    };
    if table != R::TABLE {
        return Err(JsonError::WrongTable {
            expected: R::TABLE,
            found: table,
        });
    }
    let version = map
        .remove(VERSION_TAG)
        .and_then(|v| v.as_u64())
        .ok_or(JsonError::MissingTag(VERSION_TAG))?;
    if version != u64::from(R::VERSION) {
        return Err(JsonError::WrongVersion {
            table: R::TABLE,
            expected: R::VERSION,
            found: version,
        });
    }
    // Read by reference, so the object is still there to name a refused field.
    let object = serde_json::Value::Object(map);
    R::deserialize(&object).map_err(|e| JsonError::Fields {
        table: R::TABLE,
        message: match field_at_fault::<R>(&object) {
            Some(field) => format!("field `{field}`: {e}"),
            None => e.to_string(),
        },
    })
}

/// The field whose value `R` refuses: serde names the type but not the field, so the
/// object is read again from its compact text, whose error has a column, and the key
/// before that column is the one.
fn field_at_fault<R: DeserializeOwned>(object: &serde_json::Value) -> Option<String> {
    let text = serde_json::to_string(object).ok()?;
    let e = serde_json::from_str::<R>(&text).err()?;
    // Only a refused value sits at the column; "missing field `x`" names its field.
    if !e.to_string().starts_with("invalid") {
        return None;
    }
    let upto = text.get(..e.column().checked_sub(1)?)?;
    let key_end = upto.rfind("\":")?;
    let key_start = upto[..key_end].rfind(['{', ','])? + 2;
    let key = upto.get(key_start..key_end)?;
    (!key.contains('"')).then(|| key.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FlowRecord, NodeFeatures, NodeMetric, TimestampNs};

    fn features() -> NodeFeatures {
        NodeFeatures {
            bytes_in: 1,
            bytes_out: 2,
            packets_in: 3,
            packets_out: 4,
            flows_in: 5,
            flows_out: 6,
            in_degree: 1,
            out_degree: 2,
            distinct_peers: 3,
            ..NodeFeatures::empty(TimestampNs(1_000_000_000), TimestampNs(2_000_000_000), 7)
        }
    }

    #[test]
    fn records_round_trip_with_their_tags() {
        let mut out = Vec::new();
        encode(&features(), &mut out);
        let text = std::str::from_utf8(&out).unwrap();
        assert!(
            text.starts_with(r#"{"_table":"node_features","_version":2,"window_end":"#),
            "{text}"
        );
        assert_eq!(table_of(&out).unwrap(), "node_features");
        assert_eq!(decode::<NodeFeatures>(&out).unwrap(), features());
    }

    #[test]
    fn json_that_is_not_an_object_says_what_it_is() {
        for (text, what) in [
            ("[1,2,3]", "an array"),
            (" \"x\"", "a string"),
            ("12", "a number"),
            ("true", "a boolean"),
            ("null", "null"),
        ] {
            let e = table_of(text.as_bytes()).unwrap_err().to_string();
            assert!(
                e.ends_with(&format!("the value is {what}, not an object")),
                "{text}: {e}"
            );
            let e = decode::<NodeMetric>(text.as_bytes())
                .unwrap_err()
                .to_string();
            assert!(
                e.ends_with(&format!("the value is {what}, not an object")),
                "{text}: {e}"
            );
        }
        // Not JSON at all: the syntax error, with its position.
        let e = table_of(b"[1,").unwrap_err().to_string();
        assert!(
            e.contains("EOF while parsing a value at line 1 column 3"),
            "{e}"
        );
    }

    /// A tagged node metric sample, as JSON text.
    fn sample() -> String {
        let mut out = Vec::new();
        let metric = NodeMetric {
            time: TimestampNs(1),
            node: 7,
            metric: "cpu".into(),
            value: 0.5,
        };
        encode(&metric, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn wrong_table_version_and_fields_are_named() {
        let mut out = Vec::new();
        encode(&features(), &mut out);
        assert!(matches!(
            decode::<FlowRecord>(&out),
            Err(JsonError::WrongTable { .. })
        ));
        let newer = String::from_utf8(out.clone()).unwrap().replace(
            &format!("\"_version\":{}", NodeFeatures::VERSION),
            &format!("\"_version\":{}", NodeFeatures::VERSION + 1),
        );
        let e = decode::<NodeFeatures>(newer.as_bytes()).unwrap_err();
        assert!(
            e.to_string()
                .contains(&format!("version {}", NodeFeatures::VERSION + 1)),
            "{e}"
        );
        let bad = String::from_utf8(out)
            .unwrap()
            .replace("\"node\":7", "\"node\":\"seven\"");
        let e = decode::<NodeFeatures>(bad.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("`node_features` fields"), "{e}");
        assert!(e.to_string().contains("field `node`"), "{e}");
        // A count past u64 reads as a float; the message names the field. A missing
        // field is named by serde itself, and no other field is blamed.
        let huge = sample().replace("\"node\":7", "\"node\":18446744073709551616");
        let e = decode::<NodeMetric>(huge.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("field `node`"), "{e}");
        let missing = sample().replace(",\"value\":0.5", "");
        let e = decode::<NodeMetric>(missing.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("missing field `value`") && !e.contains("field `metric`"),
            "{e}"
        );
        assert!(matches!(
            decode::<NodeMetric>(b"[1]"),
            Err(JsonError::NotAnObject("an array"))
        ));
        assert!(matches!(
            decode::<NodeMetric>(b"{\"time\":1}"),
            Err(JsonError::MissingTag("_table"))
        ));
    }
}
