//! Where the engine's local API listens now: `<engine.data_dir>/api-address`, one line such as
//! `127.0.0.1:2223`, rewritten by the engine each time it binds (at start and when OIAnalytics
//! moves `webServer.port`). The launcher's health probe and the CLI read it, falling back to the
//! YAML `engine.api.listen` when it is absent or unreadable, so that a port moved remotely does
//! not make an upgrade's probation fail or the CLI knock on the old port.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// `<data_dir>/api-address`.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("api-address")
}

/// Record `listen` (atomically: a reader never sees half a line).
pub fn write(data_dir: &Path, listen: SocketAddr) -> Result<(), crate::atomic_file::WriteError> {
    crate::atomic_file::write(&path(data_dir), format!("{listen}\n").as_bytes())
}

/// The address last recorded, if any.
pub fn read(data_dir: &Path) -> Option<SocketAddr> {
    std::fs::read_to_string(path(data_dir))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The address to reach the local API at: the recorded one, else the YAML's.
pub fn current(data_dir: &Path, yaml: SocketAddr) -> SocketAddr {
    read(data_dir).unwrap_or(yaml)
}

/// `<data_dir>/api-socket`: the path of the local API's Unix socket, one line, written by the
/// engine once it listens there (`$RUNTIME_DIRECTORY/api.sock` under systemd, else
/// `<data_dir>/api.sock`) and removed at its exit.
pub fn socket_record(data_dir: &Path) -> PathBuf {
    data_dir.join("api-socket")
}

/// Where the engine of `data_dir` puts its socket.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    crate::upgrade::runtime_directory()
        .unwrap_or_else(|| data_dir.to_path_buf())
        .join("api.sock")
}

/// Record the socket's path (atomically).
pub fn write_socket(data_dir: &Path, socket: &Path) -> Result<(), crate::atomic_file::WriteError> {
    let line = format!("{}\n", socket.display());
    crate::atomic_file::write(&socket_record(data_dir), line.as_bytes())
}

/// The socket the engine of `data_dir` recorded, if any.
pub fn read_socket(data_dir: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(socket_record(data_dir)).ok()?;
    let path = PathBuf::from(text.trim());
    path.is_absolute().then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recorded_address_wins_over_the_yaml_one() {
        let dir = tempfile::tempdir().unwrap();
        let yaml: SocketAddr = "127.0.0.1:2223".parse().unwrap();
        assert_eq!(current(dir.path(), yaml), yaml);
        let moved: SocketAddr = "127.0.0.1:4444".parse().unwrap();
        write(dir.path(), moved).unwrap();
        assert_eq!(current(dir.path(), yaml), moved);
        std::fs::write(path(dir.path()), "garbage").unwrap();
        assert_eq!(current(dir.path(), yaml), yaml);
    }
}
