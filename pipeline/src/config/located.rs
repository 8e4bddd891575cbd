//! Where in the file a bad key or value of a `[sources.NAME]` table is.
//!
//! A source is chosen by its `type`, so serde reads the table whole before it knows
//! its fields, and reports what is wrong there at the table's header without the
//! key. This reads each source table again as its own type, which names the key,
//! and finds that key in the text.

use std::ops::Range;

use meshflow_sources::ebpf::EbpfConfig;
use meshflow_sources::kafka::KafkaSourceConfig;
use meshflow_sources::simulator::SimConfig;
use toml::de::{DeTable, DeValue};

use super::ReplaySourceConfig;

/// The first bad key or value of a source table in `text`, as an error naming the
/// line, the key and the problem; `None` when no source table has one (the error is
/// elsewhere, or not of this kind).
pub(super) fn source_error(text: &str) -> Option<String> {
    let table: toml::Table = toml::from_str(text).ok()?;
    for (name, source) in table.get("sources")?.as_table()? {
        let mut fields = source.as_table()?.clone();
        let kind = fields.remove("type")?;
        let value = toml::Value::Table(fields);
        let error = match kind.as_str()? {
            "simulator" => value.try_into::<SimConfig>().err(),
            "replay" => value.try_into::<ReplaySourceConfig>().err(),
            "ebpf" => value.try_into::<EbpfConfig>().err(),
            "kafka" => value.try_into::<KafkaSourceConfig>().err(),
            _ => None,
        };
        let Some(error) = error else { continue };
        let shown = error.to_string();
        let mut lines: Vec<&str> = shown.trim_end().lines().collect();
        // The key path comes last, as "in `a.b`", when the value was bad.
        let path = match lines.last().and_then(|l| l.strip_prefix("in `")) {
            Some(rest) => {
                let path = rest.trim_end_matches('`').to_string();
                lines.pop();
                Some(path)
            }
            None => None,
        };
        let message = lines.join(" ");
        // An unknown field names itself in the message.
        let unknown = message.starts_with("unknown field `");
        let path = path.or_else(|| {
            let rest = message.strip_prefix("unknown field `")?;
            Some(rest.split('`').next()?.to_string())
        });
        let key = match &path {
            Some(p) => format!("sources.{name}.{p}"),
            None => format!("sources.{name}"),
        };
        let span = path
            .as_deref()
            .and_then(|p| span_of(text, name, p, unknown));
        return Some(match span {
            Some(span) => format!("{}`{key}`: {message}", at(text, span)),
            None => format!("`{key}`: {message}"),
        });
    }
    None
}

/// The span of the key `path` (dotted) in `[sources.NAME]`: of the key itself when
/// it is `unknown` or holds a table, else of its value.
fn span_of(text: &str, name: &str, path: &str, unknown: bool) -> Option<Range<usize>> {
    let root = DeTable::parse(text).ok()?;
    let sources = root.get_ref().get("sources")?.get_ref().as_table()?;
    let mut table = sources.get(name)?.get_ref().as_table()?;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        let (key, value) = table.iter().find(|(k, _)| k.get_ref() == part)?;
        if parts.peek().is_none() {
            return Some(match value.get_ref() {
                DeValue::Table(_) => key.span(),
                _ if unknown => key.span(),
                _ => value.span(),
            });
        }
        table = value.get_ref().as_table()?;
    }
    None
}

/// `line L, column C` with the line and a caret under the span, as toml shows it.
fn at(text: &str, span: Range<usize>) -> String {
    let start = span.start.min(text.len());
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let number = text[..start].matches('\n').count() + 1;
    let column = text[line_start..start].chars().count() + 1;
    let width = text[start..span.end.clamp(start, line_end)]
        .chars()
        .count()
        .max(1);
    let gutter = " ".repeat(number.to_string().len());
    format!(
        "TOML parse error at line {number}, column {column}\n{gutter} |\n{number} | {}\n{gutter} | {}{}\n",
        &text[line_start..line_end],
        " ".repeat(column - 1),
        "^".repeat(width)
    )
}
