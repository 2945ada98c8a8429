//! Canary by partition, for StatefulSets: the new template is written with
//! `spec.updateStrategy.rollingUpdate.partition` high, so that only the highest ordinals move to
//! the new revision, and each step lowers it. A step says how many pods run the new revision
//! (`1`, `2`) or which share of them (`50%`, rounded up); the last one must cover every pod, so a
//! canary that passes ends fully rolled out.
//!
//! The state lives in two annotations on the StatefulSet: the partition it had before
//! ([`ORIGINAL_PARTITION`], put back at the end or on abort) and the images under canary
//! ([`super::schema::ann::CANARY_IMAGES`]); how far the canary got is the partition itself, so a
//! re-run resumes with the steps that lower it further ([`remaining`]).

use k8s_openapi::api::apps::v1::{
    RollingUpdateStatefulSetStrategy, StatefulSet, StatefulSetUpdateStrategy,
};

use super::schema::ann;

/// The partition the StatefulSet had before the canary began.
pub const ORIGINAL_PARTITION: &str = "rollout-safe.dev/canary-partition";

/// How big a step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepSize {
    /// This many of the highest ordinals.
    Pods(u32),
    /// This share of the replicas, rounded up (at least one pod).
    Percent(u32),
}

/// One step as given on the command line, and what it means for a StatefulSet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionStep {
    /// `2`, `50%`.
    pub text: String,
    /// How many pods run the new revision once the step is done.
    pub pods: i32,
    /// The partition that gets them there: `replicas - pods`.
    pub partition: i32,
}

/// Why the steps cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    #[error("--steps is empty: give the pod counts or shares of each step, e.g. --steps 1,2,100%")]
    NoSteps,
    #[error("--steps: {0:?} is neither a pod count (2) nor a share of the pods (50%)")]
    NotAStep(String),
    #[error("--steps: {0:?} is out of range (a pod count from 1, a share from 1% to 100%)")]
    OutOfRange(String),
    #[error(
        "--steps: {text:?} means {pods} of the {replicas} pod(s), no more than the step before: each step must move more pods"
    )]
    NotIncreasing {
        text: String,
        pods: i32,
        replicas: i32,
    },
    #[error(
        "--steps: the last step ({text:?}) moves {pods} of the {replicas} pod(s); end with one that moves them all (e.g. 100%)"
    )]
    DoesNotFinish {
        text: String,
        pods: i32,
        replicas: i32,
    },
    #[error("statefulset/{0} has no replicas: there is nothing to canary")]
    NoReplicas(String),
}

/// Parses one step: `3` (pods) or `25%` (a share).
pub fn parse_step(text: &str) -> Result<StepSize, StepError> {
    let t = text.trim();
    let (number, percent) = match t.strip_suffix('%') {
        Some(n) => (n, true),
        None => (t, false),
    };
    let n: u32 = number
        .parse()
        .map_err(|_| StepError::NotAStep(text.to_owned()))?;
    if n == 0 || (percent && n > 100) {
        return Err(StepError::OutOfRange(text.to_owned()));
    }
    Ok(if percent {
        StepSize::Percent(n)
    } else {
        StepSize::Pods(n)
    })
}

/// How many pods a step moves out of `replicas` (at least 1, at most all).
pub fn pods_at(size: StepSize, replicas: i32) -> i32 {
    let r = i64::from(replicas.max(0));
    let n = match size {
        StepSize::Pods(n) => i64::from(n),
        StepSize::Percent(p) => (r * i64::from(p) + 99) / 100,
    };
    i32::try_from(n.clamp(1, r.max(1))).unwrap_or(replicas)
}

/// The steps for a StatefulSet `name` of `replicas` pods: each moves more pods than the one
/// before, and the last moves them all.
pub fn plan_steps(
    name: &str,
    texts: &[String],
    replicas: i32,
) -> Result<Vec<PartitionStep>, StepError> {
    if replicas <= 0 {
        return Err(StepError::NoReplicas(name.to_owned()));
    }
    if texts.is_empty() {
        return Err(StepError::NoSteps);
    }
    let mut out: Vec<PartitionStep> = Vec::new();
    for text in texts {
        let pods = pods_at(parse_step(text)?, replicas);
        if out.last().is_some_and(|prev| prev.pods >= pods) {
            return Err(StepError::NotIncreasing {
                text: text.clone(),
                pods,
                replicas,
            });
        }
        out.push(PartitionStep {
            text: text.trim().to_owned(),
            pods,
            partition: replicas - pods,
        });
    }
    if let Some(last) = out.last().filter(|l| l.pods < replicas) {
        return Err(StepError::DoesNotFinish {
            text: last.text.clone(),
            pods: last.pods,
            replicas,
        });
    }
    Ok(out)
}

/// The steps still to run when the partition is `current` (a canary resumed): those that lower
/// it.
pub fn remaining(steps: &[PartitionStep], current: i32) -> Vec<PartitionStep> {
    steps
        .iter()
        .filter(|s| s.partition < current)
        .cloned()
        .collect()
}

/// `spec.updateStrategy.rollingUpdate.partition` (0 when unset).
pub fn partition_of(s: &StatefulSet) -> i32 {
    s.spec
        .update_strategy
        .as_ref()
        .and_then(|u| u.rolling_update.as_ref())
        .and_then(|r| r.partition)
        .unwrap_or(0)
}

/// Whether the StatefulSet replaces its pods only when they are deleted.
pub fn is_on_delete(s: &StatefulSet) -> bool {
    s.spec
        .update_strategy
        .as_ref()
        .and_then(|u| u.type_.as_deref())
        == Some("OnDelete")
}

/// The StatefulSet with its partition set to `partition`.
pub fn with_partition(s: &StatefulSet, partition: i32) -> StatefulSet {
    let mut out = s.clone();
    let strategy = out
        .spec
        .update_strategy
        .get_or_insert_with(StatefulSetUpdateStrategy::default);
    if strategy.type_.is_none() {
        strategy.type_ = Some("RollingUpdate".to_owned());
    }
    strategy
        .rolling_update
        .get_or_insert_with(RollingUpdateStatefulSetStrategy::default)
        .partition = Some(partition);
    out
}

/// A canary under way, as the StatefulSet's annotations say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionCanary {
    /// The partition to put back.
    pub original_partition: i32,
    /// The images under canary (`app=db:16`).
    pub images: String,
}

fn annotation<'a>(s: &'a StatefulSet, key: &str) -> Option<&'a str> {
    s.metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

/// The canary under way on `s`, if any.
pub fn canary_of(s: &StatefulSet) -> Option<PartitionCanary> {
    let original_partition = annotation(s, ORIGINAL_PARTITION)?.parse().ok()?;
    Some(PartitionCanary {
        original_partition,
        images: annotation(s, ann::CANARY_IMAGES)
            .unwrap_or_default()
            .to_owned(),
    })
}

/// `s` marked as running a canary of `images` (keeping the original partition of a canary
/// already under way).
pub fn mark_started(s: &StatefulSet, images: &str) -> StatefulSet {
    let original = canary_of(s)
        .map(|c| c.original_partition)
        .unwrap_or_else(|| partition_of(s));
    let mut out = s.clone();
    let a = out.metadata.annotations.get_or_insert_default();
    a.insert(ORIGINAL_PARTITION.to_owned(), original.to_string());
    a.insert(ann::CANARY_IMAGES.to_owned(), images.to_owned());
    out
}

/// `s` without the canary's annotations, its partition back to what it was.
pub fn ended(s: &StatefulSet) -> StatefulSet {
    let original = canary_of(s).map_or_else(|| partition_of(s), |c| c.original_partition);
    let mut out = with_partition(s, original);
    if let Some(a) = out.metadata.annotations.as_mut() {
        a.remove(ORIGINAL_PARTITION);
        a.remove(ann::CANARY_IMAGES);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn steps_count_the_highest_ordinals() {
        let steps = plan_steps("db", &texts(&["1", "2", "100%"]), 3).unwrap();
        let got: Vec<(i32, i32)> = steps.iter().map(|s| (s.pods, s.partition)).collect();
        assert_eq!(got, [(1, 2), (2, 1), (3, 0)]);
        let steps = plan_steps("db", &texts(&["10%", "50%", "100%"]), 5).unwrap();
        let got: Vec<i32> = steps.iter().map(|s| s.partition).collect();
        assert_eq!(got, [4, 2, 0]);
        // Resuming at partition 1: only the last step is left.
        let left = remaining(
            &plan_steps("db", &texts(&["1", "2", "100%"]), 3).unwrap(),
            1,
        );
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].partition, 0);
    }

    #[test]
    fn bad_steps_are_refused_with_what_is_wrong() {
        assert_eq!(
            plan_steps("db", &texts(&["2", "1", "100%"]), 3),
            Err(StepError::NotIncreasing {
                text: "1".into(),
                pods: 1,
                replicas: 3
            })
        );
        // 5 pods of 3 is all of them: the 100% after it moves nothing more.
        assert!(matches!(
            plan_steps("db", &texts(&["5", "100%"]), 3),
            Err(StepError::NotIncreasing { .. })
        ));
        assert!(matches!(
            plan_steps("db", &texts(&["1", "2"]), 3),
            Err(StepError::DoesNotFinish { pods: 2, .. })
        ));
        assert_eq!(
            plan_steps("db", &texts(&["x"]), 3),
            Err(StepError::NotAStep("x".into()))
        );
        assert_eq!(
            plan_steps("db", &texts(&["0"]), 3),
            Err(StepError::OutOfRange("0".into()))
        );
        assert_eq!(
            plan_steps("db", &texts(&["101%"]), 3),
            Err(StepError::OutOfRange("101%".into()))
        );
        assert_eq!(plan_steps("db", &[], 3), Err(StepError::NoSteps));
        assert_eq!(
            plan_steps("db", &texts(&["1"]), 0),
            Err(StepError::NoReplicas("db".into()))
        );
    }

    #[test]
    fn state_round_trip() {
        let s: StatefulSet = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "db"},
            "spec": {"selector": {}, "serviceName": "db", "template": {},
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}}}
        }))
        .unwrap();
        assert_eq!(partition_of(&s), 1);
        assert!(canary_of(&s).is_none());
        let started = with_partition(&mark_started(&s, "db=db:16"), 0);
        assert_eq!(
            canary_of(&started),
            Some(PartitionCanary {
                original_partition: 1,
                images: "db=db:16".into()
            })
        );
        // A second start keeps the partition of before the first.
        assert_eq!(
            canary_of(&mark_started(&started, "db=db:16"))
                .unwrap()
                .original_partition,
            1
        );
        let done = ended(&started);
        assert_eq!(partition_of(&done), 1);
        assert!(canary_of(&done).is_none());
        assert!(!is_on_delete(&s));
    }
}
