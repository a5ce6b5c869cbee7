//! docs/ERRORS.md lists exactly the stable error codes errand has: every
//! `errand_core::ErrorCode` (so a new code cannot ship undocumented), and
//! no code the enum does not have (so the page cannot promise a code that
//! is never given). The CLI's own tests check each code's exit-code section.

use std::collections::BTreeSet;
use std::path::Path;

use errand_core::ErrorCode;

/// The codes in the page's tables: the first cell of each row, in backticks.
fn documented(doc: &str) -> Vec<String> {
    doc.lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split_once('`').map(|(code, _)| code.to_owned()))
        .collect()
}

#[test]
fn the_page_lists_every_code_once_and_no_other() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/ERRORS.md");
    let doc = std::fs::read_to_string(&path).expect("docs/ERRORS.md");
    let listed = documented(&doc);
    let mut once = BTreeSet::new();
    let twice: Vec<&String> = listed.iter().filter(|c| !once.insert(c.as_str())).collect();
    assert!(
        twice.is_empty(),
        "codes listed twice in docs/ERRORS.md: {twice:?}"
    );
    let unknown: Vec<&String> = listed
        .iter()
        .filter(|c| c.parse::<ErrorCode>().is_err())
        .collect();
    assert!(
        unknown.is_empty(),
        "docs/ERRORS.md lists codes that errand_core::ErrorCode does not have: {unknown:?}"
    );
    let missing: Vec<&str> = ErrorCode::ALL
        .iter()
        .map(|c| c.as_str())
        .filter(|c| !once.contains(c))
        .collect();
    assert!(
        missing.is_empty(),
        "codes missing from docs/ERRORS.md: {missing:?}"
    );
}

#[test]
fn the_table_reader_finds_codes() {
    let rows = "| code | meaning |\n|---|---|\n| `not_found` | no such job |\nprose `x_y`\n";
    assert_eq!(documented(rows), vec!["not_found".to_owned()]);
}
