//! Readable tables for people, JSON for scripts.

use std::borrow::Cow;
use std::fmt::Write as _;

use jiff::Timestamp;

/// Whether `c` must not reach a terminal as it is: C0 controls, DEL, C1
/// controls (U+0080–U+009F, U+009B being a one-character escape sequence
/// introducer) and the bidirectional-text controls (U+061C, U+200E/F,
/// U+202A–U+202E, U+2066–U+2069), which can rewrite or reorder what is shown.
fn is_unsafe(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{61c}' | '\u{200e}' | '\u{200f}'
        | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` safe to print for people: each control or bidi character is
/// written as an escape (`\n`, `\t`, `\r`, else `\u{1b}`), so stored
/// text (a job's stderr, its args) can neither drive the terminal nor
/// forge lines of output. Every human-readable output goes through it;
/// JSON output escapes by itself.
pub(crate) fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if is_unsafe(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// The field formatter of text logs: as the default one (`message` bare,
/// other fields `name=value`), with every value passed through [`escape`].
pub(crate) fn escaping_fields() -> impl for<'w> tracing_subscriber::fmt::FormatFields<'w> + 'static {
    use tracing_subscriber::field::MakeExt as _;
    tracing_subscriber::fmt::format::debug_fn(|w, field, value| {
        let text = format!("{value:?}");
        if field.name() == "message" {
            write!(w, "{}", escape(&text))
        } else {
            write!(w, "{}={}", field.name(), escape(&text))
        }
    })
    .delimited(" ")
}

/// A plain text table: columns padded to their widest cell.
pub(crate) struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new(header: Vec<&'static str>) -> Self {
        Table {
            header,
            rows: Vec::new(),
        }
    }

    /// Adds a row; its cells are escaped (see [`escape`]).
    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows
            .push(cells.into_iter().map(|c| escape(&c).into_owned()).collect());
    }

    pub(crate) fn render(&self) -> String {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.len()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
        let line = |cells: Vec<&str>| {
            let mut s = String::new();
            for (i, c) in cells.iter().enumerate() {
                if i + 1 == cells.len() {
                    s.push_str(c);
                } else {
                    s.push_str(&format!("{c:<w$}  ", w = widths[i]));
                }
            }
            s.trim_end().to_owned()
        };
        let mut out = line(self.header.clone());
        out.push('\n');
        for r in &self.rows {
            out.push_str(&line(r.iter().map(String::as_str).collect()));
            out.push('\n');
        }
        out
    }
}

/// A timestamp to the second, in UTC.
pub(crate) fn time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// An optional timestamp, `-` when absent.
pub(crate) fn opt_time(t: Option<Timestamp>) -> String {
    t.map_or_else(|| "-".to_owned(), time)
}

/// A wait in at most two units, to the second: `42s`, `5m03s`, `2h05m`, `3d04h`.
pub(crate) fn short_age(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// A job as JSON for scripts: its `args`, `meta` and `result` as JSON
/// values (they are stored as JSON text), and every object's keys in one
/// order (sorted), whichever store the job came from (PostgreSQL's `jsonb`
/// reorders keys; SQLite keeps them as written).
pub(crate) fn job_json(job: &errand_core::Job) -> anyhow::Result<serde_json::Value> {
    use serde_json::Value;
    let mut v = serde_json::to_value(job)?;
    if let Value::Object(map) = &mut v {
        for key in ["args", "meta", "result"] {
            if let Some(Value::String(text)) = map.get(key)
                && let Ok(parsed) = serde_json::from_str::<Value>(text)
            {
                map.insert(key.to_owned(), parsed);
            }
        }
    }
    Ok(sorted(v))
}

/// `v` with the keys of every object in sorted order.
fn sorted(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// Prints `value` as one line of JSON.
pub(crate) fn json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_pads_columns() {
        let mut t = Table::new(vec!["ID", "STATE"]);
        t.row(vec!["1".into(), "available".into()]);
        t.row(vec!["1234".into(), "running".into()]);
        assert_eq!(t.render(), "ID    STATE\n1     available\n1234  running\n");
    }

    #[test]
    fn ages_are_short() {
        let age = |s| short_age(std::time::Duration::from_secs(s));
        assert_eq!(age(0), "0s");
        assert_eq!(age(59), "59s");
        assert_eq!(age(60 * 5 + 3), "5m03s");
        assert_eq!(age(3600 * 2 + 60 * 5 + 9), "2h05m");
        assert_eq!(age(86_400 * 3 + 3600 * 4), "3d04h");
    }

    #[test]
    fn controls_and_bidi_characters_are_escaped() {
        let cases = [
            ("plain text, ünïcode ✓", "plain text, ünïcode ✓"),
            ("a\nINFO forged", "a\\nINFO forged"),
            ("\u{1b}]0;title\u{7}\u{1b}[2J", "\\u{1b}]0;title\\u{7}\\u{1b}[2J"),
            ("tab\there\r", "tab\\there\\r"),
            ("\u{7f}\u{80}\u{9b}31m\u{9f}", "\\u{7f}\\u{80}\\u{9b}31m\\u{9f}"),
            ("\u{202e}txt.exe", "\\u{202e}txt.exe"),
            (
                "\u{202a}\u{202d}\u{2066}\u{2069}\u{200e}\u{200f}\u{61c}",
                "\\u{202a}\\u{202d}\\u{2066}\\u{2069}\\u{200e}\\u{200f}\\u{61c}",
            ),
            ("\u{0}", "\\u{0}"),
        ];
        for (raw, shown) in cases {
            assert_eq!(escape(raw), shown, "{raw:?}");
        }
        let mut t = Table::new(vec!["KIND"]);
        t.row(vec!["a\u{1b}[2Jb\nc".into()]);
        assert_eq!(t.render(), "KIND\na\\u{1b}[2Jb\\nc\n");
    }
}
