//! Pause and resume: flip `spec.paused`, guarded by a resourceVersion precondition.

use crate::cluster::client::Cluster;
use crate::cluster::deployments::get_deployment;
use crate::cluster::patch::write_deployment;
use crate::error::Error;

/// Pauses (`pause`) or resumes the Deployment `name`. `Ok(false)`: it already was.
pub async fn set_paused(cluster: &Cluster, name: &str, pause: bool) -> Result<bool, Error> {
    let d = get_deployment(cluster, name).await?;
    let written = write_deployment(cluster, d, false, false, |cur, _| {
        if cur.spec.paused.unwrap_or(false) == pause {
            return Ok(None);
        }
        let mut new = cur.clone();
        new.spec.paused = if pause { Some(true) } else { None };
        Ok(Some(new))
    })
    .await?;
    Ok(written.is_some())
}
