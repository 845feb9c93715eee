//! Git provenance for `meta/git.json`.
//!
//! A score is only reproducible if we know which code produced it: the commit, the branch,
//! whether the working tree had uncommitted or untracked changes, and where the repository
//! came from. This module reads that through libgit2 (no `git` binary needed at run time).
//!
//! Capturing provenance must never break a run: every failure (not a repository, unborn
//! HEAD, bare repository, unreadable config, non-UTF-8 names) turns into `None` fields.
//! Remote URLs can embed credentials (`https://user:token@host/...`), so they are passed
//! through [`strip_credentials`] before they are stored.

use std::path::{Path, PathBuf};

use git2::{Repository, RepositoryOpenFlags, StatusOptions};

/// What the git repository containing the run's code looked like when the run started.
///
/// Serializes every key, `null` when unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct GitInfo {
    /// Top of the working tree (the git dir for a bare repository).
    pub repo_root: Option<String>,
    /// Full hex id of the commit HEAD points to; `None` outside a repo or with no commits yet.
    pub commit: Option<String>,
    /// Short branch name; `None` when HEAD is detached, unborn or unknown.
    pub branch: Option<String>,
    /// Whether any tracked file differs from HEAD/index or any untracked file exists
    /// (ignored files do not count); `None` when status cannot be computed (e.g. bare repo).
    pub dirty: Option<bool>,
    /// URL of the `origin` remote with credentials removed.
    pub remote_url: Option<String>,
}

impl GitInfo {
    /// The commit id, or `"unknown"` when there is none (the Python reference's convention,
    /// used e.g. when hashing the run id).
    pub fn commit_or_unknown(&self) -> String {
        self.commit.clone().unwrap_or_else(|| "unknown".to_owned())
    }
}

/// Captures git provenance for the repository containing `start_dir` (searching upwards,
/// like `git` does). Never panics and never errors: anything unavailable is `None`.
pub fn capture_git(start_dir: &Path) -> GitInfo {
    capture_git_with_ceilings(start_dir, &[])
}

/// [`capture_git`] whose upward search stops before entering any of `ceiling_dirs`
/// (libgit2 discovery does not read `GIT_CEILING_DIRECTORIES`). With no ceilings this is
/// exactly `Repository::discover` (same libgit2 search, crossing filesystems), so tests
/// exercise the production path.
fn capture_git_with_ceilings(start_dir: &Path, ceiling_dirs: &[&Path]) -> GitInfo {
    match Repository::open_ext(start_dir, RepositoryOpenFlags::CROSS_FS, ceiling_dirs) {
        Ok(repo) => info_from_repo(&repo),
        Err(_) => GitInfo::default(),
    }
}

fn info_from_repo(repo: &Repository) -> GitInfo {
    let root = repo.workdir().unwrap_or_else(|| repo.path());
    // Re-collecting the components drops the trailing separator libgit2 appends.
    let repo_root = root.components().collect::<PathBuf>();

    // Unborn HEAD (no commits yet) makes `head()` fail: no commit, no branch.
    let (commit, branch) = match repo.head() {
        Ok(head) => {
            let commit = head.peel_to_commit().ok().map(|c| c.id().to_string());
            let branch = if head.is_branch() {
                head.shorthand().ok().map(str::to_owned)
            } else {
                None
            };
            (commit, branch)
        }
        Err(_) => (None, None),
    };

    let dirty = if repo.is_bare() {
        None
    } else {
        let mut opts = StatusOptions::new();
        opts.include_untracked(true)
            .include_ignored(false)
            // One entry per untracked directory is enough to know the tree is dirty.
            .recurse_untracked_dirs(false);
        repo.statuses(Some(&mut opts)).ok().map(|s| !s.is_empty())
    };

    let remote_url = repo.find_remote("origin").ok().and_then(|remote| {
        let url = String::from_utf8_lossy(remote.url_bytes());
        (!url.is_empty()).then(|| strip_credentials(&url))
    });

    GitInfo {
        repo_root: Some(repo_root.to_string_lossy().into_owned()),
        commit,
        branch,
        dirty,
        remote_url,
    }
}

/// Removes credentials from a remote URL so it can be written to disk.
///
/// * `scheme://user:password@host/...` → `scheme://host/...` for http(s); for other schemes
///   (`ssh://`, `git://`, ...) only the password is dropped and a bare user name is kept
///   (`ssh://git@host/r` is unchanged).
/// * `https://token@host/...` → `https://host/...` (for http(s) the user name is often the
///   token itself).
/// * For http(s) URLs the query string (and anything after it) is dropped, since tokens
///   travel as `?access_token=...`/`?private_token=...`.
/// * scp-like `git@github.com:o/r.git` and local paths are returned unchanged.
pub fn strip_credentials(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let scheme = &url[..scheme_end];
    // A real scheme is ASCII letters/digits/+-. ; otherwise this is not a URL (e.g. a path).
    if scheme.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    {
        return url.to_owned();
    }
    let is_http = scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https");

    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);

    let authority = match authority.rfind('@') {
        None => authority.to_owned(),
        Some(at) => {
            let (userinfo, host) = (&authority[..at], &authority[at + 1..]);
            match userinfo.split_once(':') {
                _ if is_http => host.to_owned(),
                Some((user, _password)) if !user.is_empty() => format!("{user}@{host}"),
                Some(_) => host.to_owned(),
                None if userinfo.is_empty() => host.to_owned(),
                None => format!("{userinfo}@{host}"),
            }
        }
    };

    let tail = if is_http {
        tail.split('?').next().unwrap_or_default()
    } else {
        tail
    };
    format!("{scheme}://{authority}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use git2::{RepositoryInitOptions, Signature};
    use std::fs;

    fn init_repo(dir: &Path) -> Repository {
        let mut opts = RepositoryInitOptions::new();
        opts.initial_head("main");
        Repository::init_opts(dir, &opts).expect("init repo")
    }

    fn commit_all(repo: &Repository, message: &str) -> git2::Oid {
        let mut index = repo.index().unwrap();
        index
            .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
            .unwrap();
        index.write().unwrap();
        let tree_id = index.write_tree().unwrap();
        let tree = repo.find_tree(tree_id).unwrap();
        let sig = Signature::now("t", "t@t").unwrap();
        let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
        let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
        repo.commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)
            .unwrap()
    }

    /// Capture bounded by the temp dir's parent, so an enclosing repo on the machine
    /// can never leak into the test.
    fn capture_in(dir: &Path) -> GitInfo {
        let parent = dir.parent().unwrap();
        capture_git_with_ceilings(dir, &[parent])
    }

    fn canonical(p: &Path) -> String {
        fs::canonicalize(p).unwrap().to_string_lossy().into_owned()
    }

    #[test]
    fn committed_repo_reports_commit_branch_and_clean() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = init_repo(tmp.path());
        fs::write(tmp.path().join("a.txt"), "hello\n").unwrap();
        let oid = commit_all(&repo, "initial");

        let info = capture_in(tmp.path());
        assert_eq!(info.commit.as_deref(), Some(oid.to_string().as_str()));
        assert_eq!(info.commit.as_ref().unwrap().len(), 40);
        assert_eq!(info.branch.as_deref(), Some("main"));
        assert_eq!(info.dirty, Some(false));
        assert_eq!(info.remote_url, None);
        assert_eq!(
            canonical(Path::new(info.repo_root.as_deref().unwrap())),
            canonical(tmp.path())
        );
        assert!(!info.repo_root.as_deref().unwrap().ends_with('/'));
        assert_eq!(info.commit_or_unknown(), oid.to_string());

        // The public entry point agrees (the temp repo is the innermost one).
        assert_eq!(capture_git(tmp.path()), info);
    }

    #[test]
    fn discovers_from_subdirectory() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = init_repo(tmp.path());
        fs::create_dir_all(tmp.path().join("src/deep")).unwrap();
        fs::write(tmp.path().join("src/deep/x.rs"), "fn main() {}\n").unwrap();
        commit_all(&repo, "initial");
        let ceiling = tmp.path().parent().unwrap();
        let info = capture_git_with_ceilings(&tmp.path().join("src/deep"), &[ceiling]);
        assert_eq!(
            canonical(Path::new(info.repo_root.as_deref().unwrap())),
            canonical(tmp.path())
        );
        assert!(info.commit.is_some());
    }

    #[test]
    fn untracked_file_makes_dirty_but_ignored_does_not() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = init_repo(tmp.path());
        fs::write(tmp.path().join(".gitignore"), "*.log\n").unwrap();
        commit_all(&repo, "initial");
        assert_eq!(capture_in(tmp.path()).dirty, Some(false));

        fs::write(tmp.path().join("run.log"), "ignored").unwrap();
        assert_eq!(capture_in(tmp.path()).dirty, Some(false));

        fs::create_dir(tmp.path().join("new_dir")).unwrap();
        fs::write(tmp.path().join("new_dir/untracked.txt"), "x").unwrap();
        assert_eq!(capture_in(tmp.path()).dirty, Some(true));
    }

    #[test]
    fn modified_tracked_file_makes_dirty() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = init_repo(tmp.path());
        fs::write(tmp.path().join("a.txt"), "one\n").unwrap();
        commit_all(&repo, "initial");
        fs::write(tmp.path().join("a.txt"), "two\n").unwrap();
        assert_eq!(capture_in(tmp.path()).dirty, Some(true));
    }

    #[test]
    fn detached_head_has_commit_but_no_branch() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = init_repo(tmp.path());
        fs::write(tmp.path().join("a.txt"), "x").unwrap();
        let oid = commit_all(&repo, "initial");
        repo.set_head_detached(oid).unwrap();
        let info = capture_in(tmp.path());
        assert_eq!(info.commit, Some(oid.to_string()));
        assert_eq!(info.branch, None);
    }

    #[test]
    fn unborn_repo_has_no_commit_and_does_not_panic() {
        let tmp = tempfile::tempdir().unwrap();
        init_repo(tmp.path());
        let info = capture_in(tmp.path());
        assert_eq!(info.commit, None);
        assert_eq!(info.branch, None);
        assert!(info.repo_root.is_some());
        assert_eq!(info.dirty, Some(false));
        assert_eq!(info.commit_or_unknown(), "unknown");
    }

    #[test]
    fn outside_any_repo_everything_is_none() {
        let tmp = tempfile::tempdir().unwrap();
        let info = capture_in(tmp.path());
        assert_eq!(info, GitInfo::default());
        assert_eq!(info.commit_or_unknown(), "unknown");
    }

    #[test]
    fn nonexistent_dir_is_none_not_panic() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("does/not/exist");
        assert_eq!(capture_in(&missing), GitInfo::default());
        // The unbounded entry point must not panic either, whatever it finds above.
        let _ = capture_git(&missing);
    }

    #[test]
    fn bare_repo_has_no_dirty_flag() {
        let tmp = tempfile::tempdir().unwrap();
        Repository::init_bare(tmp.path()).unwrap();
        let info = capture_in(tmp.path());
        assert!(info.repo_root.is_some());
        assert_eq!(info.dirty, None);
        assert_eq!(info.commit, None);
    }

    #[test]
    fn origin_remote_credentials_are_stripped() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = init_repo(tmp.path());
        repo.remote("origin", "https://user:ghp_secret@github.com/o/r.git")
            .unwrap();
        let info = capture_in(tmp.path());
        assert_eq!(
            info.remote_url.as_deref(),
            Some("https://github.com/o/r.git")
        );
    }

    #[test]
    fn serializes_every_key_with_nulls() {
        let json = serde_json::to_value(GitInfo::default()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "repo_root": null, "commit": null, "branch": null,
                "dirty": null, "remote_url": null
            })
        );
        let keys: Vec<String> = json.as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            keys,
            ["repo_root", "commit", "branch", "dirty", "remote_url"]
        );
    }

    #[test]
    fn strip_credentials_cases() {
        let cases = [
            ("https://user:tok@host/x", "https://host/x"),
            ("https://tok@host", "https://host"),
            ("https://tok@host/o/r.git", "https://host/o/r.git"),
            ("HTTPS://u:p@Host:8443/r", "HTTPS://Host:8443/r"),
            ("http://u:p%40w@host/r", "http://host/r"),
            ("https://u:p@ss@host/r", "https://host/r"),
            ("https://host/r.git?access_token=abc", "https://host/r.git"),
            ("https://host/r.git?a=1#frag", "https://host/r.git"),
            ("https://t@host?private_token=x", "https://host"),
            ("https://github.com/o/r.git", "https://github.com/o/r.git"),
            ("git@github.com:o/r.git", "git@github.com:o/r.git"),
            (
                "ssh://git@github.com/o/r.git",
                "ssh://git@github.com/o/r.git",
            ),
            ("ssh://git:pw@host:22/o/r.git", "ssh://git@host:22/o/r.git"),
            ("ssh://:pw@host/r", "ssh://host/r"),
            ("git://host/r.git", "git://host/r.git"),
            ("file:///srv/git/r.git", "file:///srv/git/r.git"),
            ("/srv/git/r.git", "/srv/git/r.git"),
            ("../sibling", "../sibling"),
            ("C:\\repos\\r", "C:\\repos\\r"),
            ("https://[::1]:8080/r", "https://[::1]:8080/r"),
            ("https://u:p@[::1]:8080/r", "https://[::1]:8080/r"),
            ("https://host/path/with@at", "https://host/path/with@at"),
            ("", ""),
            ("://weird", "://weird"),
        ];
        for (input, want) in cases {
            assert_eq!(strip_credentials(input), want, "input {input:?}");
        }
    }
}
