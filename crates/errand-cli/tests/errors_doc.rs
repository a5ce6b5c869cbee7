//! docs/ERRORS.md lists every stable error code the code can produce: each
//! code literal in the sources (`code: "…"`, a validation error's code, a
//! CLI error class) must appear there, so a new code cannot ship undocumented.

use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            // The conformance kit and tests are not error sources.
            if !path.ends_with("testkit") {
                sources(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The string literals in `text` that are error codes: a literal on the line
/// after (or in the same call as) a field name in a validation error, a
/// `code:` field, or a CLI error class.
fn codes_in(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim();
        let literal = |s: &str| -> Option<String> {
            let start = s.find('"')? + 1;
            let end = start + s[start..].find('"')?;
            let lit = &s[start..end];
            (lit.len() > 3 && lit.contains('_') && lit.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
                .then(|| lit.to_owned())
        };
        if let Some(rest) = t.strip_prefix("code: ") {
            out.extend(literal(rest));
        }
        if let Some(at) = t.find("Class::new(") {
            out.extend(literal(&t[at..]));
        }
        // ValidationError::new(field, code, …) / invalid(field, code, …) /
        // setting(field, code, …) over several lines: the code is the
        // literal after the field's.
        if (t.ends_with("ValidationError::new(") || t.ends_with("invalid(") || t.ends_with("setting("))
            && let Some(code) = lines.get(i + 2).and_then(|l| literal(l.trim()))
        {
            out.push(code);
        }
        for call in ["ValidationError::new(\"", "invalid(\"", "setting(\""] {
            if let Some(at) = t.find(call) {
                let rest = &t[at + call.len()..];
                if let Some(after_field) = rest.find("\", \"") {
                    out.extend(literal(&rest[after_field + 3..]));
                }
            }
        }
    }
    out
}

#[test]
fn every_error_code_is_documented() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let doc = std::fs::read_to_string(root.join("docs/ERRORS.md")).expect("docs/ERRORS.md");
    let mut files = Vec::new();
    for krate in [
        "errand-core",
        "errand-engine",
        "errand-sqlite",
        "errand-postgres",
        "errand",
        "errand-cli",
    ] {
        sources(&root.join("crates").join(krate).join("src"), &mut files);
    }
    let mut missing = Vec::new();
    let mut seen = 0;
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        // Unit tests in a module are not error sources.
        let text = text.split("#[cfg(test)]").next().unwrap_or_default();
        for code in codes_in(text) {
            seen += 1;
            if !doc.contains(&format!("`{code}`")) {
                missing.push(format!("{code} ({})", f.display()));
            }
        }
    }
    assert!(
        seen > 30,
        "the scan found only {seen} codes: it no longer matches the sources"
    );
    missing.sort();
    missing.dedup();
    assert!(
        missing.is_empty(),
        "codes missing from docs/ERRORS.md: {missing:#?}"
    );
}
