//! Which files the web app may touch: only what lies under the runs dir or the configs
//! dir. A requested path is decoded segment by segment; `..`, `.`, empty segments,
//! separators inside a segment and NUL are refused before anything reaches the
//! filesystem, and what is left is canonicalized and must still start with the
//! canonical root (so a symlink pointing out of the root is refused too).

use std::path::{Path, PathBuf};

/// Why a path was not served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathRefusal {
    /// Traversal, an absolute path, an escaping symlink or an unreadable encoding: 403.
    Forbidden(String),
    /// Nothing there: 404.
    NotFound,
}

/// Decode `%XX` escapes of one URL segment (UTF-8); `None` when malformed.
pub fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// One decoded path segment, checked: a plain file or folder name.
pub fn check_segment(segment: &str) -> Result<&str, PathRefusal> {
    let bad = segment.is_empty()
        || segment == "."
        || segment == ".."
        || segment.contains(['/', '\\', '\0']);
    if bad {
        return Err(PathRefusal::Forbidden(format!(
            "`{segment}` is not a plain file name"
        )));
    }
    Ok(segment)
}

/// Join decoded, checked segments under `root`, canonicalize, and require the result to
/// stay under `root`'s canonical form. The path must exist.
pub fn confine(root: &Path, segments: &[String]) -> Result<PathBuf, PathRefusal> {
    let mut path = root.to_path_buf();
    for s in segments {
        path.push(check_segment(s)?);
    }
    let root = root.canonicalize().map_err(|_| PathRefusal::NotFound)?;
    let real = path.canonicalize().map_err(|_| PathRefusal::NotFound)?;
    if !real.starts_with(&root) {
        return Err(PathRefusal::Forbidden(
            "the path leads out of the served folder".into(),
        ));
    }
    Ok(real)
}

/// The decoded segments of a raw URL path (after a route prefix), each checked.
pub fn split_raw(rest: &str) -> Result<Vec<String>, PathRefusal> {
    if rest.starts_with('/') || rest.is_empty() {
        return Err(PathRefusal::Forbidden("an absolute or empty path".into()));
    }
    rest.split('/')
        .map(|s| {
            let d = percent_decode(s)
                .ok_or_else(|| PathRefusal::Forbidden("a malformed %-escape".into()))?;
            check_segment(&d)?;
            Ok(d)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_is_refused_before_the_filesystem() {
        assert!(matches!(
            split_raw("a/%2e%2e/b"),
            Err(PathRefusal::Forbidden(_))
        ));
        assert!(matches!(split_raw("../b"), Err(PathRefusal::Forbidden(_))));
        assert!(matches!(split_raw("/etc"), Err(PathRefusal::Forbidden(_))));
        assert!(matches!(split_raw("a%2Fb"), Err(PathRefusal::Forbidden(_))));
        assert!(matches!(split_raw("a//b"), Err(PathRefusal::Forbidden(_))));
        assert_eq!(split_raw("a/b%20c").unwrap(), vec!["a", "b c"]);
        assert_eq!(percent_decode("%zz"), None);
    }

    #[test]
    fn symlinks_out_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("in")).unwrap();
        std::fs::write(dir.path().join("secret"), "x").unwrap();
        std::fs::write(root.join("in/ok.txt"), "x").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), root.join("in/link")).unwrap();
        assert!(confine(&root, &["in".into(), "ok.txt".into()]).is_ok());
        assert!(matches!(
            confine(&root, &["in".into(), "link".into()]),
            Err(PathRefusal::Forbidden(_))
        ));
        assert_eq!(confine(&root, &["nope".into()]), Err(PathRefusal::NotFound));
    }
}
