//! Path syntax: ZooKeeper's `PathUtils.validatePath` and the parent/child split.
//!
//! Invariant: every key of the data tree passes [`validate_path`]; [`parent`] of a valid path
//! other than `/` is a valid path, and `/` is its own parent (the root's parent path is `/` for
//! watch triggers, as in `DataTree.deleteNode`).

use crate::proto::error::ZkError;

/// Checks `path` exactly as `PathUtils.validatePath` does (reference §10.4): starts with `/`, no
/// trailing `/` unless it is the root, no empty, `.` or `..` segment, no `\0`, and no character
/// in U+0001–U+001F, U+007F–U+009F, U+D800–U+F8FF or U+FFF0–U+FFFF. Characters beyond the BMP
/// are invalid too, because Java sees them as surrogates (U+D800–U+DFFF).
pub fn validate_path(path: &str) -> Result<(), ZkError> {
    if !path.starts_with('/') {
        return Err(ZkError::BadArguments);
    }
    if path.len() == 1 {
        return Ok(());
    }
    if path.ends_with('/') {
        return Err(ZkError::BadArguments);
    }
    if path.is_ascii() {
        return validate_ascii_segments(path.as_bytes());
    }
    validate_segments(path)
}

/// The segment rules of [`validate_path`] for a path of ASCII characters (all but the rarest
/// paths), in one pass over its bytes: a byte is a character, and the invalid ones are
/// U+0000–U+001F and U+007F. Gives what [`validate_segments`] gives (unit test).
fn validate_ascii_segments(path: &[u8]) -> Result<(), ZkError> {
    assert!(path.is_ascii(), "bytes are characters only in an ASCII path");
    assert_eq!(path.first(), Some(&b'/'), "the caller checked the leading slash");
    let mut start = 1;
    for (i, &b) in path.iter().enumerate().skip(1) {
        if b < 0x20 || b == 0x7f {
            return Err(ZkError::BadArguments);
        }
        if b == b'/' {
            check_segment(&path[start..i])?;
            start = i + 1;
        }
    }
    check_segment(&path[start..])
}

/// An empty, `.` or `..` segment is invalid.
fn check_segment(segment: &[u8]) -> Result<(), ZkError> {
    match segment {
        b"" | b"." | b".." => Err(ZkError::BadArguments),
        _ => Ok(()),
    }
}

/// The segment rules of [`validate_path`], character by character, for a path that starts
/// with `/`, is not `/` and does not end with `/`.
fn validate_segments(path: &str) -> Result<(), ZkError> {
    for segment in path[1..].split('/') {
        if segment.is_empty() || segment == "." || segment == ".." {
            return Err(ZkError::BadArguments);
        }
        if segment.chars().any(invalid_char) {
            return Err(ZkError::BadArguments);
        }
    }
    Ok(())
}

/// A character `validatePath` rejects (`\0` included).
fn invalid_char(c: char) -> bool {
    let u = c as u32;
    u <= 0x1f || (0x7f..=0x9f).contains(&u) || (0xd800..=0xf8ff).contains(&u) || u >= 0xfff0
}

/// The parent of a path: everything before the last `/`, or `/` when that is empty. The root is
/// its own parent. For a path without `/` the result is `/` as well; callers validate first.
pub fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// The last segment: everything after the last `/` (empty for the root).
pub fn last_segment(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

/// Joins a parent path and a child name.
pub fn join(parent_path: &str, child: &str) -> String {
    if parent_path == "/" { format!("/{child}") } else { format!("{parent_path}/{child}") }
}

/// The paths the server protects from delete: `/`, `/zookeeper`, `/zookeeper/quota`,
/// `/zookeeper/config` (`ZKDatabase.isSpecialPath`).
pub fn is_special_path(path: &str) -> bool {
    matches!(path, "/" | "/zookeeper" | "/zookeeper/quota" | "/zookeeper/config")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_path_table() {
        for ok in ["/", "/a", "/a/b", "/...", "/a.b", "/.a", "/a..", "/é", "/a b"] {
            assert_eq!(validate_path(ok), Ok(()), "{ok:?}");
        }
        let bad = [
            "",
            "a",
            "/a/",
            "//",
            "/a//b",
            "/.",
            "/..",
            "/a/./b",
            "/a/../b",
            "/a\0",
            "/a\u{1}",
            "/\u{7f}",
            "/\u{9f}",
            "/\u{e000}",
            "/\u{fff0}",
            "/\u{ffff}",
            "/\u{1f600}",
        ];
        for b in bad {
            assert_eq!(validate_path(b), Err(ZkError::BadArguments), "{b:?}");
        }
    }

    /// The one-pass check of ASCII paths agrees with the character-by-character one on every
    /// path of up to 5 characters over an alphabet of separators, dots, a letter and the
    /// ASCII characters at the edges of the invalid ranges.
    #[test]
    fn ascii_paths_checked_as_by_characters() {
        let alphabet = ['/', '.', 'a', '\0', '\u{1f}', ' ', '\u{7e}', '\u{7f}'];
        let mut paths = vec![String::from("/")];
        let mut checked = 0;
        for _ in 0..5 {
            let mut longer = Vec::new();
            for p in &paths {
                for c in alphabet {
                    let path = format!("{p}{c}");
                    let slow = if path.len() == 1 || path.ends_with('/') {
                        validate_path(&path)
                    } else {
                        validate_segments(&path)
                    };
                    assert_eq!(validate_path(&path), slow, "{path:?}");
                    checked += 1;
                    longer.push(path);
                }
            }
            paths = longer;
        }
        assert_eq!(checked, 8 + 64 + 512 + 4096 + 32768, "every path was checked");
    }

    #[test]
    fn parent_and_last_segment() {
        assert_eq!(parent("/"), "/");
        assert_eq!(parent("/a"), "/");
        assert_eq!(parent("/a/b"), "/a");
        assert_eq!(last_segment("/a/b"), "b");
        assert_eq!(last_segment("/"), "");
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
    }
}
