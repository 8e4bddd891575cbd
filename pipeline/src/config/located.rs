//! Where in the file a bad key or value is, named by its dotted path, in plain words.
//!
//! A source is chosen by its `type`, so serde reads the table whole before it knows
//! its fields, and reports what is wrong there at the table's header without the
//! key. This reads each source table again as its own type, which names the key,
//! and finds that key in the text. Elsewhere, toml points at the key or value, and
//! this names its path (`job.workerz`, not `workerz`).

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
        // An unknown field names itself in the message; inside a nested table, after
        // the table's path.
        let field = (message.strip_prefix("unknown field `"))
            .and_then(|rest| Some(rest.split('`').next()?.to_string()));
        let unknown = field.is_some();
        let path = match (path, field) {
            (Some(table), Some(field)) => Some(format!("{table}.{field}")),
            (path, field) => path.or(field),
        };
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
    let keys = ["sources", name].into_iter().chain(path.split('.'));
    span_at(text, keys, unknown)
}

/// The span of the key reached through `keys` in `text`: of the key itself when
/// `key_itself` or when it holds a table, else of its value; `None` when the file
/// does not set it.
fn span_at<'k>(
    text: &str,
    keys: impl Iterator<Item = &'k str>,
    key_itself: bool,
) -> Option<Range<usize>> {
    let root = DeTable::parse(text).ok()?;
    let mut table = root.get_ref();
    let mut keys = keys.peekable();
    while let Some(part) = keys.next() {
        let (key, value) = table.iter().find(|(k, _)| k.get_ref() == part)?;
        if keys.peek().is_none() {
            return Some(match value.get_ref() {
                DeValue::Table(_) => key.span(),
                _ if key_itself => key.span(),
                _ => value.span(),
            });
        }
        table = value.get_ref().as_table()?;
    }
    None
}

/// toml's error for `text`, with the dotted path of the key it points at (at the
/// key, or at its value) put before the message.
pub(super) fn error(text: &str, e: &toml::de::Error) -> String {
    let Some(span) = e.span() else {
        return e.to_string();
    };
    let path = DeTable::parse(text)
        .ok()
        .and_then(|root| path_at(root.get_ref(), span.start));
    match path {
        Some(path) => format!("{}`{}`: {}", at(text, span), path.join("."), e.message()),
        None => e.to_string(),
    }
}

/// `message` about `key` shown at the key's line in `text`, as toml shows a parse
/// error; `None` when the file does not set the key.
pub(super) fn at_key(text: &str, key: &str, message: &str) -> Option<String> {
    span_at(text, key.split('.'), false)
        .map(|span| format!("{}`{key}` {message}", at_as("invalid value", text, span)))
}

/// The keys down to the key or value that holds byte `pos`, outermost first.
fn path_at(table: &DeTable<'_>, pos: usize) -> Option<Vec<String>> {
    for (key, value) in table.iter() {
        let here = || vec![key.get_ref().to_string()];
        if key.span().contains(&pos) {
            return Some(here());
        }
        if let DeValue::Table(inner) = value.get_ref()
            && let Some(rest) = path_at(inner, pos)
        {
            return Some(here().into_iter().chain(rest).collect());
        }
        if value.span().contains(&pos) {
            return Some(here());
        }
    }
    None
}

/// serde's names of Rust types in `message` said in words: `expected usize` is
/// `expected a whole number`, `expected struct FaultConfig` is `expected a table`.
pub(super) fn plain_words(message: &str) -> String {
    const WORDS: [(&str, &str); 10] = [
        ("usize", "a whole number"),
        ("u64", "a whole number"),
        ("u32", "a whole number"),
        ("u16", "a whole number"),
        ("u8", "a whole number"),
        ("i64", "a whole number"),
        ("f64", "a number"),
        ("f32", "a number"),
        ("a sequence", "a list ([...])"),
        ("a map", "a table"),
    ];
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(i) = rest.find("expected ") {
        let (before, after) = rest.split_at(i + "expected ".len());
        out.push_str(before);
        let word_end = after
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ' '))
            .unwrap_or(after.len());
        let word = &after[..word_end];
        if let Some(name) = word.strip_prefix("struct ") {
            let len = name
                .find(|c: char| !c.is_alphanumeric())
                .unwrap_or(name.len());
            out.push_str("a table");
            rest = &after["struct ".len() + len..];
        } else if let Some((from, to)) = WORDS.iter().find(|(from, _)| {
            word.starts_with(from) && !word[from.len()..].starts_with(|c: char| c.is_alphanumeric())
        }) {
            out.push_str(to);
            rest = &after[from.len()..];
        } else {
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// `TOML parse error at line L, column C` with the line and a caret under the span,
/// as toml shows it.
fn at(text: &str, span: Range<usize>) -> String {
    at_as("TOML parse error", text, span)
}

/// [`at`], headed `what` instead of `TOML parse error`.
fn at_as(what: &str, text: &str, span: Range<usize>) -> String {
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
        "{what} at line {number}, column {column}\n{gutter} |\n{number} | {}\n{gutter} | {}{}\n",
        &text[line_start..line_end],
        " ".repeat(column - 1),
        "^".repeat(width)
    )
}
