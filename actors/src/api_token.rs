//! The local API's credential for the routes that change state (register, unregister):
//! `<engine.data_dir>/api-token`, 32 random bytes in hex, created by the engine at its first
//! start with mode 0640, so the service user and its group (the operators allowed to run
//! `oibus-agent register`) can read it and other local users cannot. The CLI sends it as
//! `Authorization: Bearer <token>`; the read routes stay open on loopback.

use std::path::{Path, PathBuf};

use rand::RngCore;

use crate::secret::Secret;

/// `<data_dir>/api-token`.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("api-token")
}

/// The token, created (0640) if there is none yet.
pub fn ensure(data_dir: &Path) -> Result<Secret<String>, crate::atomic_file::WriteError> {
    if let Some(token) = read(data_dir) {
        return Ok(token);
    }
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    crate::atomic_file::write_group_readable(&path(data_dir), token.as_bytes())?;
    Ok(Secret::new(token))
}

/// The token, if the file exists and is readable by this user.
pub fn read(data_dir: &Path) -> Option<Secret<String>> {
    let text = std::fs::read_to_string(path(data_dir)).ok()?;
    let token = text.trim();
    (token.len() == 64).then(|| Secret::new(token.to_owned()))
}

/// Whether `header` (an `Authorization` value) carries `token`, compared in constant time.
pub fn authorizes(token: &Secret<String>, header: Option<&str>) -> bool {
    let Some(given) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
        return false;
    };
    let (a, b) = (token.expose().as_bytes(), given.trim().as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_token_is_made_once_and_others_cannot_read_it() {
        let dir = tempfile::tempdir().unwrap();
        let first = ensure(dir.path()).unwrap();
        let mode = std::fs::metadata(path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        // 0640 less the umask: never writable by the group, never readable by others.
        assert_eq!(mode & 0o027, 0, "mode {mode:o}");
        assert_eq!(ensure(dir.path()).unwrap().expose(), first.expose());
    }

    #[test]
    fn only_the_exact_bearer_token_authorizes() {
        let token = Secret::new("ab".repeat(32));
        let good = format!("Bearer {}", "ab".repeat(32));
        assert!(authorizes(&token, Some(&good)));
        assert!(!authorizes(&token, None));
        assert!(!authorizes(&token, Some("Bearer abab")));
        assert!(!authorizes(&token, Some(&"ab".repeat(32))));
    }
}
