//! Canary by replica ratio behind the same Service (the design is in
//! `rollout_safe_policy::strategy::canary`).
//!
//! Before anything is written, the stable template with the new images goes through the policy
//! pre-flight (as `update`'s: enforced findings refuse it, exit 3, unless `--force`). Each step
//! scales the canary up first and the stable Deployment down after, so capacity never drops
//! below the total; it is watched with the shared judge until complete, then (in a second
//! watch) held until every canary pod has stayed Ready for `--interval` with no container
//! restarted more than `--max-restarts` times. A failing step, `--timeout`, or `canary abort`
//! restores the stable replicas, waits for them, and deletes the canary. After the last step
//! the stable Deployment is rolled to the new images through the safe update ([`SafeUpdate`]:
//! pre-flight, change-cause, precondition, watch, automatic rollback), scaled back to the
//! total, and the canary deleted. The state lives in annotations on the stable Deployment, so
//! Ctrl-C (exit 4) and a re-run resume at the next step.
//!
//! [`SafeUpdate`]: crate::ops::update::SafeUpdate

pub mod abort;
pub mod run;
