//! Tidy: the style rules of `/work/shared/STYLE.md` §15 that a machine can check, run as a test
//! over the workspace's Rust sources (after tigerbeetle's `src/tidy.zig`).
//!
//! Rules, each reported as `file:line: rule: detail`:
//! - `line-length`: a line longer than 100 columns (counted in chars, not bytes), anywhere;
//! - `fn-length`: a function in `core/src` longer than 70 lines, from the line holding `fn` to
//!   the line of its closing brace;
//! - `core-forbidden`: in `core/src` code, a name that brings in the wall clock, OS randomness,
//!   threads, async, files, sockets or hash iteration order (see `CORE_FORBIDDEN`);
//! - `leftover`: debugging and unfinished-work markers anywhere (see `leftover_markers`).
//!
//! A small lexer splits every file into code, comments and string/char literals, so that a brace
//! in a string does not end a function and a forbidden name in a comment or a literal is not
//! code. Name rules look at code only; the fix-me marker is looked for in code and comments (it
//! is a comment marker), never in literals, which is how this file can name the markers it
//! forbids. The unit tests at the bottom prove that each rule can fail.
//!
//! Only std is used; the walk covers the crates listed in `CRATES` (their `src`, `tests`,
//! `benches`, ...) and skips `target*` directories and hidden ones such as `tests/.venv`.

use std::fmt;
use std::path::{Path, PathBuf};

/// Longest allowed line, in chars.
const MAX_COLUMNS: usize = 100;
/// Longest allowed function in `core/src`, in lines (the `fn` line and the closing brace count).
const MAX_FN_LINES: usize = 70;
/// Crate directories walked, relative to the workspace root.
const CRATES: [&str; 5] = ["core", "server", "sim", "jepsen", "tests"];

/// Names `core/src` code must not contain, with the reason given in the report.
const CORE_FORBIDDEN: [(&str, &str); 13] = [
    ("Instant::now", "wall clock; time enters the core as Input::Tick"),
    ("SystemTime", "wall clock; time enters the core as Input::Tick"),
    ("thread_rng", "OS randomness; use the node's seeded PRNG"),
    ("rand::rng(", "OS randomness; use the node's seeded PRNG"),
    ("tokio", "async runtime; the core is sans-IO"),
    ("std::thread", "threads; the core is single-threaded and sans-IO"),
    ("std::fs", "files; persistence is an Output"),
    ("TcpStream", "sockets; the network is the shell's"),
    ("TcpListener", "sockets; the network is the shell's"),
    ("UdpSocket", "sockets; the network is the shell's"),
    ("ToSocketAddrs", "name resolution is I/O; the network is the shell's"),
    ("HashMap", "hash iteration order; use BTreeMap"),
    ("HashSet", "hash iteration order; use BTreeSet"),
];

/// Markers forbidden anywhere. Built at run time so that this file does not contain them.
fn leftover_markers() -> [String; 4] {
    [
        format!("{}!(", "dbg"),
        format!("{}{}", "FIX", "ME"),
        format!("{}!(", "todo"),
        format!("{}!(", "unimplemented"),
    ]
}

/// One broken rule.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Violation {
    /// The file, relative to the workspace root.
    path: String,
    /// 1-based line.
    line: usize,
    /// The rule's name.
    rule: &'static str,
    /// What is wrong.
    detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}: {}", self.path, self.line, self.rule, self.detail)
    }
}

/// What a char of source text is part of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Code,
    Comment,
    Literal,
}

/// A source file split into lines, each in three views of equal char length.
struct Lexed {
    /// The lines as written.
    raw: Vec<String>,
    /// Comments and literals blanked to spaces.
    code: Vec<String>,
    /// Literals blanked to spaces; comments kept.
    no_literals: Vec<String>,
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Classifies every char of `text`. Handles line and nested block comments, strings with
/// escapes, raw strings (`r#"…"#`, `br"…"`), char and byte literals, and tells a char literal
/// (`'{'`, `'\''`) from a lifetime or label (`'a`, `'conn:`).
fn classify(text: &[char]) -> Vec<Class> {
    let mut class = vec![Class::Code; text.len()];
    let mut i = 0;
    let at = |j: usize| text.get(j).copied();
    while i < text.len() {
        let c = text[i];
        let start = i;
        let kind = if c == '/' && at(i + 1) == Some('/') {
            while i < text.len() && text[i] != '\n' {
                i += 1;
            }
            Class::Comment
        } else if c == '/' && at(i + 1) == Some('*') {
            i = skip_block_comment(text, i);
            Class::Comment
        } else if c == '"' {
            i = skip_string(text, i + 1);
            Class::Literal
        } else if let Some(end) = raw_string_end(text, i) {
            i = end;
            Class::Literal
        } else if c == '\'' {
            match char_literal_end(text, i) {
                Some(end) => {
                    i = end;
                    Class::Literal
                }
                None => {
                    i += 1;
                    Class::Code
                }
            }
        } else {
            i += 1;
            Class::Code
        };
        for slot in &mut class[start..i.min(text.len())] {
            *slot = kind;
        }
    }
    class
}

/// From `/*` at `i`, the index just past the matching `*/` (block comments nest in Rust).
fn skip_block_comment(text: &[char], mut i: usize) -> usize {
    let mut depth = 0;
    while i < text.len() {
        if text[i] == '/' && text.get(i + 1) == Some(&'*') {
            depth += 1;
            i += 2;
        } else if text[i] == '*' && text.get(i + 1) == Some(&'/') {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    i
}

/// From just after an opening `"`, the index just past the closing one.
fn skip_string(text: &[char], mut i: usize) -> usize {
    while i < text.len() {
        match text[i] {
            '\\' => i += 2,
            '"' => return i + 1,
            _ => i += 1,
        }
    }
    i
}

/// If a raw string (`r"`, `r#"`, `br#"`, `cr"`) starts at `i`, the index just past its end.
fn raw_string_end(text: &[char], i: usize) -> Option<usize> {
    let mut j = i;
    if matches!(text[j], 'b' | 'c') && text.get(j + 1) == Some(&'r') {
        j += 1;
    }
    if text[j] != 'r' || (i > 0 && is_ident(text[i - 1])) {
        return None;
    }
    j += 1;
    let mut hashes = 0;
    while text.get(j) == Some(&'#') {
        hashes += 1;
        j += 1;
    }
    if text.get(j) != Some(&'"') {
        return None;
    }
    j += 1;
    while j < text.len() {
        let closes = text[j] == '"' && (1..=hashes).all(|k| text.get(j + k) == Some(&'#'));
        if closes {
            return Some(j + 1 + hashes);
        }
        j += 1;
    }
    Some(j)
}

/// If a char literal starts at the `'` at `i`, the index just past it; `None` for a lifetime.
fn char_literal_end(text: &[char], i: usize) -> Option<usize> {
    match text.get(i + 1) {
        Some('\\') => {
            let mut j = i + 3;
            while j < text.len() && text[j] != '\'' && text[j] != '\n' {
                j += 1;
            }
            (text.get(j) == Some(&'\'')).then_some(j + 1)
        }
        Some(_) if text.get(i + 2) == Some(&'\'') => Some(i + 3),
        _ => None,
    }
}

fn lex(source: &str) -> Lexed {
    let text: Vec<char> = source.chars().collect();
    let class = classify(&text);
    let mut lexed = Lexed { raw: Vec::new(), code: Vec::new(), no_literals: Vec::new() };
    let (mut raw, mut code, mut no_literals) = (String::new(), String::new(), String::new());
    for (c, k) in text.iter().zip(&class) {
        if *c == '\n' {
            lexed.raw.push(std::mem::take(&mut raw));
            lexed.code.push(std::mem::take(&mut code));
            lexed.no_literals.push(std::mem::take(&mut no_literals));
            continue;
        }
        raw.push(*c);
        code.push(if *k == Class::Code { *c } else { ' ' });
        no_literals.push(if *k == Class::Literal { ' ' } else { *c });
    }
    if !raw.is_empty() {
        lexed.raw.push(raw);
        lexed.code.push(code);
        lexed.no_literals.push(no_literals);
    }
    lexed
}

/// Which rule set a file gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    /// `core/src`: every rule.
    CoreSrc,
    /// Anything else: line length and leftovers.
    Other,
}

/// Checks one file's text; `path` only labels the violations.
fn check_source(path: &str, source: &str, scope: Scope) -> Vec<Violation> {
    let lexed = lex(source);
    let mut found = Vec::new();
    let mut report = |line: usize, rule: &'static str, detail: String| {
        found.push(Violation { path: path.to_string(), line, rule, detail })
    };
    let markers = leftover_markers();
    for (index, raw) in lexed.raw.iter().enumerate() {
        let columns = raw.chars().count();
        if columns > MAX_COLUMNS {
            let detail = format!("{columns} columns (max {MAX_COLUMNS})");
            report(index + 1, "line-length", detail);
        }
        for marker in &markers {
            let in_code = lexed.code[index].contains(marker.as_str());
            let fix_me = marker.ends_with("ME");
            if in_code || (fix_me && lexed.no_literals[index].contains(marker.as_str())) {
                report(index + 1, "leftover", format!("`{marker}`"));
            }
        }
        if scope == Scope::CoreSrc {
            for (name, why) in CORE_FORBIDDEN {
                if lexed.code[index].contains(name) {
                    report(index + 1, "core-forbidden", format!("`{name}`: {why}"));
                }
            }
        }
    }
    if scope == Scope::CoreSrc {
        for f in functions(&lexed.code) {
            if f.lines > MAX_FN_LINES {
                let detail = format!("fn {} is {} lines (max {MAX_FN_LINES})", f.name, f.lines);
                report(f.line, "fn-length", detail);
            }
        }
    }
    found.sort_by_key(|v| v.line);
    found
}

/// A function with a body.
#[derive(Debug, PartialEq, Eq)]
struct Function {
    name: String,
    /// 1-based line of the `fn` keyword.
    line: usize,
    /// Lines from the `fn` line to the closing brace, both included.
    lines: usize,
}

/// Every `fn name … { … }` in code-only text (comments and literals already blanked). Trait
/// method declarations (`fn f();`) and `fn(..)` pointer types have no body and are skipped.
fn functions(code_lines: &[String]) -> Vec<Function> {
    let mut chars: Vec<(char, usize)> = Vec::new();
    for (index, line) in code_lines.iter().enumerate() {
        chars.extend(line.chars().map(|c| (c, index + 1)));
        chars.push(('\n', index + 1));
    }
    let text: Vec<char> = chars.iter().map(|(c, _)| *c).collect();
    let mut found = Vec::new();
    for i in 0..text.len() {
        let keyword = text[i] == 'f' && text.get(i + 1) == Some(&'n');
        let alone = keyword
            && (i == 0 || !is_ident(text[i - 1]))
            && text.get(i + 2).is_some_and(|c| c.is_whitespace());
        if !alone {
            continue;
        }
        let name_start = (i + 2..text.len()).find(|&j| !text[j].is_whitespace());
        let Some(name_start) = name_start.filter(|&j| is_ident(text[j])) else {
            continue;
        };
        let name_end = (name_start..text.len()).find(|&j| !is_ident(text[j])).unwrap_or(text.len());
        let Some(open) = body_open(&text, name_end) else {
            continue;
        };
        let close = matching_brace(&text, open);
        found.push(Function {
            name: text[name_start..name_end].iter().collect(),
            line: chars[i].1,
            lines: chars[close].1 - chars[i].1 + 1,
        });
    }
    found
}

/// The `{` that opens the body of the signature starting at `i`, or `None` if a `;` ends it
/// first. A `;` inside `(…)` or `[…]` (as in `[u8; 4]`) does not end the signature.
fn body_open(text: &[char], i: usize) -> Option<usize> {
    let mut depth = 0i32;
    for (j, c) in text.iter().enumerate().skip(i) {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            '{' if depth <= 0 => return Some(j),
            ';' if depth <= 0 => return None,
            _ => {}
        }
    }
    None
}

/// The index of the `}` matching the `{` at `open` (or the last char if it never closes).
fn matching_brace(text: &[char], open: usize) -> usize {
    let mut depth = 0;
    for (j, c) in text.iter().enumerate().skip(open) {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return j;
                }
            }
            _ => {}
        }
    }
    text.len() - 1
}

/// The workspace root (the parent of this crate's directory).
fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().expect("tests/ has a parent").to_path_buf()
}

/// Every `.rs` file under `dir`, skipping `target*` and hidden directories, in path order.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let name = name.unwrap_or_default();
        if path.is_dir() {
            if !name.starts_with("target") && !name.starts_with('.') {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

/// Checks every walked file of the workspace.
fn check_workspace(root: &Path) -> (usize, Vec<Violation>) {
    let mut files = Vec::new();
    for krate in CRATES {
        rust_files(&root.join(krate), &mut files);
    }
    let core_src = root.join("core").join("src");
    let mut found = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(root).unwrap_or(file);
        let label = relative.to_string_lossy().replace('\\', "/");
        let source = std::fs::read_to_string(file)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        let scope = if file.starts_with(&core_src) { Scope::CoreSrc } else { Scope::Other };
        found.extend(check_source(&label, &source, scope));
    }
    (files.len(), found)
}

#[test]
fn workspace_is_tidy() {
    let root = workspace_root();
    let (files, found) = check_workspace(&root);
    assert!(files > 50, "walked only {files} files under {}", root.display());
    let list: Vec<String> = found.iter().map(|v| v.to_string()).collect();
    assert!(
        found.is_empty(),
        "tidy: {} problem(s) in {files} files:\n{}",
        found.len(),
        list.join("\n")
    );
}

// ---- The checker can fail: each rule on small inline sources. ----

fn rules(found: &[Violation]) -> Vec<(usize, &'static str)> {
    found.iter().map(|v| (v.line, v.rule)).collect()
}

/// A `fn` spanning exactly `lines` lines, its body padded with statements.
fn fn_of_lines(name: &str, lines: usize) -> String {
    assert!(lines >= 2);
    let mut text = format!("fn {name}() {{\n");
    for i in 0..lines - 2 {
        text.push_str(&format!("    let _x{i} = {i};\n"));
    }
    text.push_str("}\n");
    assert_eq!(text.lines().count(), lines);
    text
}

#[test]
fn long_line_is_reported_in_chars() {
    let long = format!("// {}\n", "x".repeat(98));
    assert_eq!(long.trim_end().chars().count(), 101);
    let found = check_source("a.rs", &format!("fn ok() {{}}\n{long}"), Scope::Other);
    assert_eq!(rules(&found), vec![(2, "line-length")]);
    assert_eq!(found[0].to_string(), "a.rs:2: line-length: 101 columns (max 100)");
    // 100 multi-byte chars are 100 columns, though more than 100 bytes.
    let wide = format!("// {}\n", "é".repeat(97));
    assert!(wide.len() > 101);
    assert_eq!(check_source("a.rs", &wide, Scope::Other), vec![]);
}

#[test]
fn fn_over_70_lines_is_reported_in_core_only() {
    let ok = fn_of_lines("short", 70);
    assert_eq!(check_source("c.rs", &ok, Scope::CoreSrc), vec![]);
    let long = format!("// header\n{}", fn_of_lines("long", 71));
    let found = check_source("c.rs", &long, Scope::CoreSrc);
    assert_eq!(rules(&found), vec![(2, "fn-length")]);
    assert_eq!(found[0].detail, "fn long is 71 lines (max 70)");
    assert_eq!(check_source("s.rs", &long, Scope::Other), vec![]);
}

#[test]
fn braces_in_literals_and_comments_do_not_end_a_fn() {
    let source = "fn a() {\n    let s = \"}\";\n    let c = '}';\n    // }\n    /* } */\n    \
                  let r = r#\"}\"#;\n    let l: &'static str = s;\n}\nfn b() {}\n";
    let lexed = lex(source);
    let found = functions(&lexed.code);
    let spans: Vec<(&str, usize, usize)> =
        found.iter().map(|f| (f.name.as_str(), f.line, f.lines)).collect();
    assert_eq!(spans, vec![("a", 1, 8), ("b", 9, 1)]);
}

#[test]
fn signatures_without_bodies_and_fn_types_are_skipped() {
    let source = "trait T {\n    fn decl(&self, x: [u8; 4]);\n}\n\
                  fn takes(f: fn(u8) -> u8, a: [u8; 2]) -> u8 {\n    f(a[0])\n}\n";
    let found = functions(&lex(source).code);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!((found[0].name.as_str(), found[0].line, found[0].lines), ("takes", 4, 3));
}

#[test]
fn hash_map_in_core_code_is_reported_but_not_in_comments_or_literals() {
    let source = "use std::collections::HashMap;\n\
                  // a HashMap would leak iteration order\n\
                  const S: &str = \"HashSet\";\n\
                  fn f() { let _ = std::time::Instant::now(); }\n";
    let found = check_source("core/src/x.rs", source, Scope::CoreSrc);
    assert_eq!(rules(&found), vec![(1, "core-forbidden"), (4, "core-forbidden")]);
    assert!(found[0].detail.starts_with("`HashMap`"), "{}", found[0].detail);
    assert!(found[1].detail.starts_with("`Instant::now`"), "{}", found[1].detail);
    assert_eq!(check_source("server/src/x.rs", source, Scope::Other), vec![]);
}

#[test]
fn every_core_forbidden_name_is_caught() {
    for (name, _) in CORE_FORBIDDEN {
        let source = format!("fn f() {{ {name} }}\n");
        let found = check_source("c.rs", &source, Scope::CoreSrc);
        assert_eq!(rules(&found), vec![(1, "core-forbidden")], "{name}");
    }
}

#[test]
fn leftover_markers_are_reported_anywhere() {
    let [dbg, fix_me, todo, unimplemented] = leftover_markers();
    let source = format!(
        "fn f() {{\n    {dbg}1);\n    // {fix_me}: later\n    {todo})\n}}\n\
         fn g() {{ {unimplemented}) }}\n"
    );
    let found = check_source("server/src/x.rs", &source, Scope::Other);
    let expected = vec![(2, "leftover"), (3, "leftover"), (4, "leftover"), (6, "leftover")];
    assert_eq!(rules(&found), expected);
    // In a string literal they are text, not code.
    let quoted = format!("const S: &str = \"{dbg} {fix_me} {todo}\";\n");
    assert_eq!(check_source("x.rs", &quoted, Scope::Other), vec![]);
}

#[test]
fn lexer_tells_char_literals_from_lifetimes() {
    let source = "fn f<'a>(x: &'a str) -> char { 'conn: loop { break 'conn; } '\\'' }\n";
    let lexed = lex(source);
    assert!(lexed.code[0].contains("fn f<'a>(x: &'a str)"), "{}", lexed.code[0]);
    assert!(lexed.code[0].contains("'conn: loop"), "{}", lexed.code[0]);
    assert!(!lexed.code[0].contains("'\\''"), "{}", lexed.code[0]);
    assert_eq!(functions(&lexed.code).len(), 1);
}
