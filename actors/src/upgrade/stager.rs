//! The seam between the CommandExecutor and [`stage_upgrade`]: the executor hands an
//! [`UpgradeStager`] the `update-version` request (with its command id, which the marker
//! carries so that [`super::settle`] can tell this upgrade from another) and, when staging
//! succeeds, exits with `exit::UPGRADE`, leaving the command RUNNING.

use std::sync::Arc;

use futures_util::future::LocalBoxFuture;

use super::{stage_upgrade, Layout, StageLimits, StageRequest, UpgradeError};
use crate::AgentContext;

/// Prepares an upgrade for the launcher to apply once the engine exits. A trait so that the
/// executor's tests run without a launcher or a network.
pub trait UpgradeStager {
    fn stage(&self, request: StageRequest) -> LocalBoxFuture<'static, Result<(), UpgradeError>>;
}

/// Stages `update-version` for the launcher. It takes the client, the token and the install
/// layout from the engine's [`AgentContext`] at the moment of the command, so a SIGHUP or a
/// re-registration in between is honoured.
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
}

impl UpgradeStager for LauncherStager {
    fn stage(&self, request: StageRequest) -> LocalBoxFuture<'static, Result<(), UpgradeError>> {
        let config = self.ctx.config();
        let registration = self.ctx.registration.borrow().clone();
        let limits = self.limits.clone();
        Box::pin(async move {
            let access = || {
                let token = match (registration.is_registered(), registration.token) {
                    (true, Some(token)) => token,
                    _ => return Err(UpgradeError::NotRegistered),
                };
                let factory = crate::oia::client_factory(&config)
                    .map_err(|e| UpgradeError::Client(e.to_string()))?
                    .ok_or_else(|| UpgradeError::Client("oianalytics.host is not set".into()))?;
                Ok((factory.client(), token))
            };
            stage_upgrade(access, &request, &Layout::from_config(&config), &limits)
                .await
                .map(drop)
        })
    }
}
