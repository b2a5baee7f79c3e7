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
