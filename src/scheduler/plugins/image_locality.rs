//! `ImageLocality`: prefer nodes that already have the pod's images (the kubelet reports
//! them in `node.status.images`), weighted by image size and by how widely the image is
//! spread (an image on every node says little about any one node).
//!
//! Mirrors pkg/scheduler/framework/plugins/imagelocality/image_locality.go. One addition: a
//! PreScore normalizes the pod's image names once per cycle instead of once per node (same
//! scores, no allocation per node).

use super::names;
use crate::scheduler::framework::{
    CycleState, NodeScore, Plugin, PreScorePlugin, ScorePlugin, Status, MAX_NODE_SCORE,
};
use crate::scheduler::snapshot::{NodeInfo, PodInfo, Snapshot};

const MB: i64 = 1024 * 1024;
/// Below this (summed, spread-scaled) size a node scores 0 (`minThreshold`).
pub const MIN_THRESHOLD: i64 = 23 * MB;
/// Per container, sizes above this count as this (`maxContainerThreshold`).
pub const MAX_CONTAINER_THRESHOLD: i64 = 1000 * MB;

pub struct ImageLocality;

/// `normalizedImageName`: add `:latest` when the name has no tag.
pub fn normalized_image_name(name: &str) -> String {
    let colon = name.rfind(':');
    let slash = name.rfind('/');
    if colon.map(|c| c as isize).unwrap_or(-1) <= slash.map(|s| s as isize).unwrap_or(-1) {
        format!("{name}:latest")
    } else {
        name.to_string()
    }
}

/// `calculatePriority`: clamp the sum to `[minThreshold, maxContainerThreshold × containers]`
/// and scale linearly to 0–100.
pub fn calculate_priority(sum_scores: i64, num_containers: usize) -> i64 {
    let max_threshold = MAX_CONTAINER_THRESHOLD * num_containers as i64;
    let sum = sum_scores.clamp(MIN_THRESHOLD, max_threshold.max(MIN_THRESHOLD));
    if max_threshold <= MIN_THRESHOLD {
        return 0;
    }
    MAX_NODE_SCORE * (sum - MIN_THRESHOLD) / (max_threshold - MIN_THRESHOLD)
}

impl Plugin for ImageLocality {
    fn name(&self) -> &'static str {
        names::IMAGE_LOCALITY
    }
    fn as_pre_score(&self) -> Option<&dyn PreScorePlugin> {
        Some(self)
    }
    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

/// The pod's images, normalized, one per container (init containers first); `None` for a
/// container without an image. `.1`: those some node has, with their spread (nodes with the
/// image / all nodes), worked out once per cycle — an image no node has scores nothing on
/// any node, so scoring a node looks up only these.
struct PodImages(Vec<Option<String>>, Vec<(String, f64)>);

const STATE_KEY: &str = "PreScoreImageLocality";

fn pod_images(pod: &PodInfo) -> PodImages {
    let Some(spec) = pod.pod.spec.as_ref() else {
        return PodImages(Vec::new(), Vec::new());
    };
    PodImages(
        spec.init_containers
            .iter()
            .flatten()
            .chain(spec.containers.iter())
            .map(|c| c.image.as_deref().map(normalized_image_name))
            .collect(),
        Vec::new(),
    )
}

/// [`pod_images`] with the images present on some node and their spread.
fn pod_images_present(pod: &PodInfo, snapshot: &Snapshot) -> PodImages {
    let mut images = pod_images(pod);
    let total_nodes = snapshot.len().max(1);
    images.1 = images
        .0
        .iter()
        .flatten()
        .filter_map(|name| match snapshot.image_num_nodes(name) {
            0 => None,
            n => Some((name.clone(), n as f64 / total_nodes as f64)),
        })
        .collect();
    images
}

impl PreScorePlugin for ImageLocality {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _nodes: &[&super::super::snapshot::NodeInfo],
        snapshot: &Snapshot,
    ) -> Status {
        state.write(STATE_KEY, pod_images_present(pod, snapshot));
        Status::success()
    }
}

/// Mirrors `sumImageScores` + `calculatePriority` for one node.
fn node_score(images: &PodImages, node: &NodeInfo) -> i64 {
    let mut sum = 0i64;
    for (name, spread) in &images.1 {
        if let Some(&size) = node.images.get(name) {
            // scaledImageScore: size × (nodes with the image / all nodes)
            sum += (size as f64 * spread) as i64;
        }
    }
    calculate_priority(sum, images.0.len())
}

impl ScorePlugin for ImageLocality {
    fn score(
        &self,
        state: &CycleState,
        pod: &PodInfo,
        node: &NodeInfo,
        snapshot: &Snapshot,
    ) -> Result<i64, Status> {
        let computed;
        let images = match state.read::<PodImages>(STATE_KEY) {
            Some(i) => i,
            None => {
                computed = pod_images_present(pod, snapshot);
                &computed
            }
        };
        Ok(node_score(images, node))
    }

    /// The cycle state is read once for all nodes; when no node has any of the pod's
    /// images every node gets the same score, computed once.
    fn score_nodes(
        &self,
        state: &CycleState,
        pod: &PodInfo,
        nodes: &[&NodeInfo],
        snapshot: &Snapshot,
        out: &mut Vec<NodeScore>,
    ) -> Result<(), Status> {
        let computed;
        let images = match state.read::<PodImages>(STATE_KEY) {
            Some(i) => i,
            None => {
                computed = pod_images_present(pod, snapshot);
                &computed
            }
        };
        if images.1.is_empty() {
            let score = calculate_priority(0, images.0.len());
            out.extend((0..nodes.len()).map(|index| NodeScore { index, score }));
        } else {
            out.extend(nodes.iter().enumerate().map(|(index, node)| NodeScore {
                index,
                score: node_score(images, node),
            }));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use k8s_openapi::api::core::v1::{Container, ContainerImage, Node, Pod, PodSpec};

    use super::*;
    use crate::scheduler::snapshot::testing::*;

    fn pod_with_images(images: &[&str]) -> Pod {
        Pod {
            spec: Some(PodSpec {
                containers: images
                    .iter()
                    .map(|i| Container {
                        name: "c".into(),
                        image: Some(i.to_string()),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn node_with(name: &str, images: &[(&[&str], i64)]) -> Node {
        let mut n = node(name, 1000, 1 << 30);
        n.status.as_mut().unwrap().images = Some(
            images
                .iter()
                .map(|(names, size)| ContainerImage {
                    names: Some(names.iter().map(|s| s.to_string()).collect()),
                    size_bytes: Some(*size),
                })
                .collect(),
        );
        n
    }

    /// Upstream TestImageLocalityPriority cases (two nodes, each image on one node, so
    /// every size counts half).
    #[test]
    fn scores_match_upstream_cases() {
        let mut snap = Snapshot::new();
        snap.add_node(Arc::new(node_with(
            "node1",
            &[
                (&["gcr.io/40:latest", "gcr.io/40:v1"], 40 * MB),
                (&["gcr.io/300:latest", "gcr.io/300:v1"], 300 * MB),
                (&["gcr.io/2000:latest"], 2000 * MB),
            ],
        )));
        snap.add_node(Arc::new(node_with(
            "node2",
            &[
                (&["gcr.io/250:latest"], 250 * MB),
                (&["gcr.io/10:latest", "gcr.io/10:v1"], 10 * MB),
            ],
        )));
        let score = |p: Pod, n: &str| {
            ImageLocality
                .score(
                    &CycleState::new(),
                    &PodInfo::new(Arc::new(p)),
                    snap.node(n).unwrap(),
                    &snap,
                )
                .unwrap()
        };
        let cases: [(&str, &[&str], [i64; 2]); 4] = [
            // node1: 40M/2 < 23M → 0; node2: 100 * (250M/2 - 23M) / (2000M - 23M) = 5
            (
                "two images spread on two nodes, prefer the larger image one",
                &["gcr.io/40", "gcr.io/250"],
                [0, 5],
            ),
            // node1: 100 * ((40M + 300M)/2 - 23M) / (2000M - 23M) = 7
            (
                "two images on one node, prefer this node",
                &["gcr.io/40", "gcr.io/300"],
                [7, 0],
            ),
            // node1: 100 * (2000M/2 - 23M) / (2000M - 23M) = 49; node2: 10M/2 < 23M → 0
            (
                "if exceed limit, use limit",
                &["gcr.io/10", "gcr.io/2000"],
                [49, 0],
            ),
            ("tagged names match", &["gcr.io/300:v1"], [12, 0]),
        ];
        for (name, images, want) in cases {
            let got = [
                score(pod_with_images(images), "node1"),
                score(pod_with_images(images), "node2"),
            ];
            assert_eq!(got, want, "{name}");
        }
    }

    /// Upstream TestNormalizedImageName.
    #[test]
    fn normalized_names() {
        let cases = [
            ("root", "root:latest"),
            ("root:tag", "root:tag"),
            ("gcr.io:5000/root", "gcr.io:5000/root:latest"),
            ("root@abcdef", "root@abcdef:latest"),
        ];
        for (input, want) in cases {
            assert_eq!(normalized_image_name(input), want);
        }
    }
}
