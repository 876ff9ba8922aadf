//! The seam for `update-version` (protocol §9, DESIGN "Upgrade, the safe way"). Staging an
//! upgrade (download E9, checked unzip, marker) belongs to the launcher work; the executor only
//! asks an [`UpgradeStager`] to stage and, when it succeeds, exits with `exit::UPGRADE` leaving
//! the command RUNNING. The next boot ends it by comparing the running version with the target
//! (`super::recover`).

use std::sync::Arc;

use futures_util::future::LocalBoxFuture;

/// What `update-version` asks for (its local `commandContent`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeRequest {
    /// Target version, without a leading `v`.
    pub version: String,
    pub asset_id: String,
    pub update_launcher: bool,
    /// Regex of data-folder paths to back up (`backupFoldersPattern`).
    pub backup_folders: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpgradeError {
    /// No launcher runs this engine: OIBus's sentence for an engine started without remote
    /// update.
    #[error("OIBus is not set up to execute remote update")]
    LauncherNotAvailable,
    #[error("{0}")]
    Failed(String),
}

/// Prepares an upgrade for the launcher to apply once the engine exits.
pub trait UpgradeStager {
    fn stage(&self, request: UpgradeRequest) -> LocalBoxFuture<'static, Result<(), UpgradeError>>;
}

/// Stage an upgrade: refused unless a launcher runs this engine and a stager is installed.
pub async fn stage_upgrade(
    stager: Option<Arc<dyn UpgradeStager>>,
    launcher: bool,
    request: UpgradeRequest,
) -> Result<(), UpgradeError> {
    match stager {
        Some(stager) if launcher => stager.stage(request).await,
        _ => Err(UpgradeError::LauncherNotAvailable),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Recorder;

    impl UpgradeStager for Recorder {
        fn stage(
            &self,
            request: UpgradeRequest,
        ) -> LocalBoxFuture<'static, Result<(), UpgradeError>> {
            Box::pin(async move {
                if request.asset_id.is_empty() {
                    Err(UpgradeError::Failed("no asset".into()))
                } else {
                    Ok(())
                }
            })
        }
    }

    fn request(asset: &str) -> UpgradeRequest {
        UpgradeRequest {
            version: "2.0.0".into(),
            asset_id: asset.into(),
            update_launcher: false,
            backup_folders: None,
        }
    }

    #[actix_rt::test]
    async fn without_a_launcher_the_upgrade_is_refused() {
        let stager: Arc<dyn UpgradeStager> = Arc::new(Recorder);
        assert_eq!(
            stage_upgrade(Some(stager.clone()), false, request("a")).await,
            Err(UpgradeError::LauncherNotAvailable)
        );
        assert_eq!(
            stage_upgrade(None, true, request("a")).await,
            Err(UpgradeError::LauncherNotAvailable)
        );
        assert_eq!(
            stage_upgrade(Some(stager.clone()), true, request("a")).await,
            Ok(())
        );
        assert_eq!(
            stage_upgrade(Some(stager), true, request("")).await,
            Err(UpgradeError::Failed("no asset".into()))
        );
    }
}
