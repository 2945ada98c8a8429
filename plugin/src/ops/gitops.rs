//! The GitOps guard of the commands that write a workload (`update`, `undo`, `blue-green`,
//! `canary`): `rollout_safe_policy::gitops` decides; this narrates what `--allow-gitops-owned`
//! let through.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rollout_safe_policy::gitops::Settings;

use crate::error::Error;

/// Refuses `command` on a GitOps-owned `workload` (exit 2) unless `--allow-gitops-owned`; then
/// says what will happen.
pub fn refuse_gitops_owned(
    settings: &Settings,
    command: &'static str,
    workload: &str,
    meta: &ObjectMeta,
) -> Result<(), Error> {
    if let Some(owner) = settings.check(command, workload, meta)? {
        eprintln!(
            "warning: {workload} is managed by {owner}; going ahead (--allow-gitops-owned): its next sync may revert this {command}"
        );
    }
    Ok(())
}
