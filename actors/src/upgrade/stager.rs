//! The CommandExecutor's [`UpgradeStager`], backed by [`stage_upgrade`]: it takes the client,
//! the token and the install layout from the engine's [`AgentContext`] at the moment of the
//! command, so a SIGHUP or a re-registration in between is honoured.

use std::sync::Arc;

use futures_util::future::LocalBoxFuture;

use super::{stage_upgrade, Layout, StageLimits, StageRequest};
use crate::command_executor::upgrade::{
    UpgradeError as StageFailed, UpgradeRequest, UpgradeStager,
};
use crate::commands::{CommandType, Status};
use crate::AgentContext;

/// Stages `update-version` for the launcher (see the module doc of [`super`]).
pub struct LauncherStager {
    ctx: AgentContext,
    limits: StageLimits,
}

impl LauncherStager {
    pub fn new(ctx: AgentContext) -> Arc<LauncherStager> {
        Arc::new(LauncherStager {
            ctx,
            limits: StageLimits::default(),
        })
    }

    /// The id of the `update-version` command being run for `asset_id`: the executor journals it
    /// RUNNING before it asks for staging, and runs one command at a time. The marker carries it
    /// so that [`super::settle`] can tell its upgrade from another.
    fn running_command_id(&self, asset_id: &str) -> String {
        let open = self.ctx.journal.open_commands(usize::MAX).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read the command journal; the upgrade marker gets no command id");
            Vec::new()
        });
        open.into_iter()
            .find(|r| {
                r.status == Status::Running
                    && CommandType::parse(&r.command_type) == Some(CommandType::UpdateVersion)
                    && r.fields
                        .get("commandContent")
                        .and_then(|c| c.get("assetId"))
                        .and_then(|a| a.as_str())
                        == Some(asset_id)
            })
            .map(|r| r.id)
            .unwrap_or_default()
    }
}

impl UpgradeStager for LauncherStager {
    fn stage(&self, request: UpgradeRequest) -> LocalBoxFuture<'static, Result<(), StageFailed>> {
        let config = self.ctx.config();
        let registration = self.ctx.registration.borrow().clone();
        let limits = self.limits.clone();
        let command_id = self.running_command_id(&request.asset_id);
        Box::pin(async move {
            let token = match (registration.is_registered(), registration.token) {
                (true, Some(token)) => token,
                _ => {
                    return Err(StageFailed::Failed(
                        "not registered with OIAnalytics".into(),
                    ))
                }
            };
            let factory = crate::oia::client_factory(&config)
                .map_err(|e| StageFailed::Failed(e.to_string()))?
                .ok_or_else(|| StageFailed::Failed("oianalytics.host is not set".into()))?;
            let staged = StageRequest {
                command_id,
                asset_id: request.asset_id,
                version: request.version,
                update_launcher: request.update_launcher,
            };
            stage_upgrade(
                &factory.client(),
                &token,
                &staged,
                &Layout::from_config(&config),
                &limits,
            )
            .await
            .map(|_| ())
            .map_err(|e| StageFailed::Failed(e.to_string()))
        })
    }
}
