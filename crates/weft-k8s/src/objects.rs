//! The objects the launcher creates per session and per worker, built as
//! plain values (no API calls), so tests can compare them exactly.
//!
//! Per session: a root ConfigMap `weft-session-KEY` that every other
//! object names as its owner (deleting it removes everything through the
//! garbage collector) and a NetworkPolicy `weft-session-KEY` that admits
//! only the master's pods (`app.kubernetes.io/name=weft-serve`) to the
//! session's workers. Per worker (one per unit of `max_concurrency`): a
//! Secret holding its bearer token, a Pod running `weft worker` and a
//! Service in front of it, all three named `weft-KEY-SUFFIX`.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};

use k8s_openapi::api::core::v1::{
    ConfigMap, Container, ContainerPort, EnvVar, EnvVarSource, ObjectFieldSelector, Pod, PodSpec,
    ResourceRequirements, Secret, SecretKeySelector, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use weft_server::WorkerRequest;

use crate::K8sError;

/// Label naming the session an object belongs to (a label-safe form of its id).
pub const SESSION_LABEL: &str = "weft.dev/session";
/// Label naming the worker (Pod, Service, Secret) an object belongs to.
pub const WORKER_LABEL: &str = "weft.dev/worker";
/// Annotation holding the session's id exactly (labels cannot hold every id).
pub const SESSION_ID_ANNOTATION: &str = "weft.dev/session-id";
/// `app.kubernetes.io/managed-by` value on every object the launcher creates.
pub const MANAGED_BY: &str = "weft";
/// `app.kubernetes.io/name` of the master's (`weft serve`) pods.
pub const MASTER_NAME: &str = "weft-serve";
/// `app.kubernetes.io/name` of worker pods.
pub const WORKER_NAME: &str = "weft-worker";
/// The key of the token in a worker's Secret.
pub const TOKEN_KEY: &str = "token";
/// The selector of every object the launcher creates.
pub const MANAGED_SELECTOR: &str = "app.kubernetes.io/managed-by=weft";

/// What every worker Pod of a launcher looks like.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodTemplate {
    /// The namespace of every object.
    pub namespace: String,
    /// The container image holding `weft` (or a project's own binary) and the project.
    pub image: String,
    /// The program in the image, started as `PROGRAM worker ...`.
    pub program: String,
    /// The port the worker listens on (container and Service port).
    pub port: u16,
    /// CPU request and limit of each worker (a Kubernetes quantity, `500m`).
    pub cpu: Option<String>,
    /// Memory request and limit of each worker (a Kubernetes quantity, `1Gi`).
    pub memory: Option<String>,
    /// The service account worker pods run as (none: the namespace's default).
    pub service_account: Option<String>,
    /// The image pull policy (`IfNotPresent`, `Always`, `Never`).
    pub image_pull_policy: Option<String>,
}

impl PodTemplate {
    /// Workers of `image` in `namespace`, program `weft`, port 8080, no resources.
    pub fn new(namespace: impl Into<String>, image: impl Into<String>) -> Self {
        PodTemplate {
            namespace: namespace.into(),
            image: image.into(),
            program: "weft".into(),
            port: 8080,
            cpu: None,
            memory: None,
            service_account: None,
            image_pull_policy: None,
        }
    }

    /// Checks the names and quantities Kubernetes would refuse.
    pub fn validate(&self) -> Result<(), K8sError> {
        if !is_dns_label(&self.namespace) {
            return Err(K8sError::Invalid {
                field: "--k8s-namespace",
                value: self.namespace.clone(),
                expected: "a DNS label (lowercase letters, digits and `-`, at most 63)",
            });
        }
        if self.image.trim().is_empty() || self.image.contains(char::is_whitespace) {
            return Err(K8sError::Invalid {
                field: "--k8s-image",
                value: self.image.clone(),
                expected: "an image reference without spaces",
            });
        }
        if self.port == 0 {
            return Err(K8sError::Invalid {
                field: "--k8s-port",
                value: "0".into(),
                expected: "a port between 1 and 65535",
            });
        }
        for (field, value) in [("--k8s-cpu", &self.cpu), ("--k8s-memory", &self.memory)] {
            if let Some(v) = value
                && !is_quantity(v)
            {
                return Err(K8sError::Invalid {
                    field,
                    value: v.clone(),
                    expected: "a Kubernetes quantity (`500m`, `2`, `512Mi`, `1G`)",
                });
            }
        }
        if let Some(sa) = &self.service_account
            && !is_dns_subdomain(sa)
        {
            return Err(K8sError::Invalid {
                field: "--k8s-service-account",
                value: sa.clone(),
                expected: "a DNS subdomain name",
            });
        }
        if let Some(p) = &self.image_pull_policy
            && !matches!(p.as_str(), "Always" | "IfNotPresent" | "Never")
        {
            return Err(K8sError::Invalid {
                field: "--k8s-image-pull-policy",
                value: p.clone(),
                expected: "Always, IfNotPresent or Never",
            });
        }
        Ok(())
    }
}

/// `s` is a DNS-1123 label.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// `s` looks like a Kubernetes quantity: a decimal number and an optional suffix.
pub fn is_quantity(s: &str) -> bool {
    let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let suffix = &s[digits.len()..];
    let number_ok = !digits.is_empty()
        && digits.bytes().filter(|b| *b == b'.').count() <= 1
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && digits.bytes().any(|b| b.is_ascii_digit());
    number_ok
        && matches!(
            suffix,
            "" | "m" | "k" | "M" | "G" | "T" | "P" | "E" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei"
        )
}

/// The label-safe, name-safe key of a session id: the id itself when it
/// is a short lowercase DNS label, else a cleaned prefix plus a hash of the
/// whole id (so two ids never share a key by cleaning).
pub fn session_key(session_id: &str) -> String {
    if is_dns_label(session_id) && session_id.len() <= 40 {
        return session_id.to_string();
    }
    let mut clean = String::new();
    for c in session_id.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            clean.push(c);
        } else if !clean.ends_with('-') {
            clean.push('-');
        }
    }
    let clean: String = clean.trim_matches('-').chars().take(31).collect();
    let clean = clean.trim_end_matches('-');
    let hash = fnv1a(session_id.as_bytes());
    if clean.is_empty() {
        format!("s{hash:08x}")
    } else {
        format!("{clean}-{hash:08x}")
    }
}

fn fnv1a(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// The name of a session's root ConfigMap and NetworkPolicy.
pub fn root_name(session_id: &str) -> String {
    format!("weft-session-{}", session_key(session_id))
}

/// A fresh worker name of a session: `weft-KEY-SUFFIX` (8 random hex digits).
pub fn worker_name(session_id: &str) -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    format!("weft-{}-{:08x}", session_key(session_id), h.finish() as u32)
}

/// The labels of a session's objects.
pub fn session_labels(session_id: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/managed-by".to_string(), MANAGED_BY.to_string()),
        (SESSION_LABEL.to_string(), session_key(session_id)),
    ])
}

/// The labels of a worker's objects (its Pod, Service and Secret).
pub fn worker_labels(session_id: &str, worker: &str) -> BTreeMap<String, String> {
    let mut labels = session_labels(session_id);
    labels.insert("app.kubernetes.io/name".into(), WORKER_NAME.into());
    labels.insert(WORKER_LABEL.into(), worker.into());
    labels
}

fn meta(
    name: &str,
    template: &PodTemplate,
    labels: BTreeMap<String, String>,
    session_id: &str,
    owner: Option<&OwnerReference>,
) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some(template.namespace.clone()),
        labels: Some(labels),
        annotations: Some(BTreeMap::from([(
            SESSION_ID_ANNOTATION.to_string(),
            session_id.to_string(),
        )])),
        owner_references: owner.map(|o| vec![o.clone()]),
        ..ObjectMeta::default()
    }
}

/// The session's root ConfigMap, the owner of every other object of the session.
pub fn root_config_map(template: &PodTemplate, session_id: &str) -> ConfigMap {
    ConfigMap {
        metadata: meta(
            &root_name(session_id),
            template,
            session_labels(session_id),
            session_id,
            None,
        ),
        data: Some(BTreeMap::from([(
            "session_id".to_string(),
            session_id.to_string(),
        )])),
        ..ConfigMap::default()
    }
}

/// The owner reference naming a session's root ConfigMap (`uid` as the API server gave it).
pub fn owner_reference(session_id: &str, uid: &str) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: root_name(session_id),
        uid: uid.into(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The session's NetworkPolicy: its worker pods admit connections to
/// their port from the master's pods only.
pub fn network_policy(template: &PodTemplate, session_id: &str, owner: &OwnerReference) -> NetworkPolicy {
    NetworkPolicy {
        metadata: meta(
            &root_name(session_id),
            template,
            session_labels(session_id),
            session_id,
            Some(owner),
        ),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    SESSION_LABEL.to_string(),
                    session_key(session_id),
                )])),
                ..LabelSelector::default()
            }),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(vec![NetworkPolicyPeer {
                    pod_selector: Some(LabelSelector {
                        match_labels: Some(BTreeMap::from([(
                            "app.kubernetes.io/name".to_string(),
                            MASTER_NAME.to_string(),
                        )])),
                        ..LabelSelector::default()
                    }),
                    ..NetworkPolicyPeer::default()
                }]),
                ports: Some(vec![NetworkPolicyPort {
                    protocol: Some("TCP".into()),
                    port: Some(IntOrString::Int(i32::from(template.port))),
                    ..NetworkPolicyPort::default()
                }]),
            }]),
            ..NetworkPolicySpec::default()
        }),
    }
}

/// A worker's Secret, holding its bearer token under [`TOKEN_KEY`].
pub fn token_secret(
    template: &PodTemplate,
    name: &str,
    request: &WorkerRequest,
    owner: &OwnerReference,
) -> Secret {
    Secret {
        metadata: meta(
            name,
            template,
            worker_labels(&request.session_id, name),
            &request.session_id,
            Some(owner),
        ),
        string_data: Some(BTreeMap::from([(TOKEN_KEY.to_string(), request.token.clone())])),
        type_: Some("Opaque".into()),
        ..Secret::default()
    }
}

/// The arguments of a worker's container: `worker --project P --session-id
/// ID --listen $(POD_IP):PORT [--env E] [--max-runs N] [limits]`.
pub fn worker_args(template: &PodTemplate, request: &WorkerRequest) -> Vec<String> {
    let mut args = vec![
        "worker".to_string(),
        "--project".into(),
        request.project.display().to_string(),
        "--session-id".into(),
        request.session_id.clone(),
        "--listen".into(),
        format!("$(POD_IP):{}", template.port),
    ];
    if let Some(env) = &request.env {
        args.extend(["--env".to_string(), env.clone()]);
    }
    if let Some(n) = request.max_runs {
        args.extend(["--max-runs".to_string(), n.to_string()]);
    }
    args.extend(request.limits.worker_args());
    args
}

/// The extended resource a session's `resources.gpus` asks for.
pub const GPU_RESOURCE: &str = "nvidia.com/gpu";

/// Bytes as a Kubernetes quantity: `100Mi` when a whole number of a binary
/// unit, else plain bytes.
pub fn memory_quantity(bytes: u64) -> String {
    for (unit, size) in [
        ("Ti", 1u64 << 40),
        ("Gi", 1 << 30),
        ("Mi", 1 << 20),
        ("Ki", 1 << 10),
    ] {
        if bytes.is_multiple_of(size) {
            return format!("{}{unit}", bytes / size);
        }
    }
    bytes.to_string()
}

/// A worker's Pod: `PROGRAM worker ...` listening on its Pod IP, the token
/// in `WEFT_TOKEN` from its Secret, never restarted by the kubelet (the
/// master replaces a worker that ends).
pub fn worker_pod(
    template: &PodTemplate,
    name: &str,
    request: &WorkerRequest,
    owner: &OwnerReference,
) -> Pod {
    // The session's resources override the template's.
    let session = &request.resources;
    let mut quantities = BTreeMap::new();
    if let Some(cpu) = session
        .cpus
        .map(|n| n.to_string())
        .or_else(|| template.cpu.clone())
    {
        quantities.insert("cpu".to_string(), Quantity(cpu));
    }
    if let Some(memory) = session
        .memory
        .map(memory_quantity)
        .or_else(|| template.memory.clone())
    {
        quantities.insert("memory".to_string(), Quantity(memory));
    }
    if let Some(gpus) = session.gpus {
        quantities.insert(GPU_RESOURCE.to_string(), Quantity(gpus.to_string()));
    }
    let resources = (!quantities.is_empty()).then(|| ResourceRequirements {
        requests: Some(quantities.clone()),
        limits: Some(quantities),
        ..ResourceRequirements::default()
    });
    Pod {
        metadata: meta(
            name,
            template,
            worker_labels(&request.session_id, name),
            &request.session_id,
            Some(owner),
        ),
        spec: Some(PodSpec {
            restart_policy: Some("Never".into()),
            // The session's time limit: past it the kubelet ends the Pod
            // (`DeadlineExceeded`), which the master sees as a dead worker.
            active_deadline_seconds: session
                .time_limit_seconds()
                .map(|s| i64::try_from(s).unwrap_or(i64::MAX)),
            service_account_name: template.service_account.clone(),
            // A worker never calls the Kubernetes API.
            automount_service_account_token: Some(false),
            containers: vec![Container {
                name: "worker".into(),
                image: Some(template.image.clone()),
                image_pull_policy: template.image_pull_policy.clone(),
                command: Some(vec![template.program.clone()]),
                args: Some(worker_args(template, request)),
                env: Some(vec![
                    EnvVar {
                        name: "POD_IP".into(),
                        value_from: Some(EnvVarSource {
                            field_ref: Some(ObjectFieldSelector {
                                field_path: "status.podIP".into(),
                                ..ObjectFieldSelector::default()
                            }),
                            ..EnvVarSource::default()
                        }),
                        ..EnvVar::default()
                    },
                    EnvVar {
                        name: "WEFT_TOKEN".into(),
                        value_from: Some(EnvVarSource {
                            secret_key_ref: Some(SecretKeySelector {
                                name: name.into(),
                                key: TOKEN_KEY.into(),
                                optional: Some(false),
                            }),
                            ..EnvVarSource::default()
                        }),
                        ..EnvVar::default()
                    },
                ]),
                ports: Some(vec![ContainerPort {
                    name: Some("http".into()),
                    container_port: i32::from(template.port),
                    protocol: Some("TCP".into()),
                    ..ContainerPort::default()
                }]),
                resources,
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
        status: None,
    }
}

/// The Service in front of a worker's Pod.
pub fn worker_service(
    template: &PodTemplate,
    name: &str,
    request: &WorkerRequest,
    owner: &OwnerReference,
) -> Service {
    Service {
        metadata: meta(
            name,
            template,
            worker_labels(&request.session_id, name),
            &request.session_id,
            Some(owner),
        ),
        spec: Some(ServiceSpec {
            selector: Some(BTreeMap::from([(WORKER_LABEL.to_string(), name.to_string())])),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: i32::from(template.port),
                target_port: Some(IntOrString::Int(i32::from(template.port))),
                protocol: Some("TCP".into()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn request() -> WorkerRequest {
        WorkerRequest {
            session_id: "s1".into(),
            project: PathBuf::from("/srv/project"),
            env: Some("prod".into()),
            max_runs: Some(3),
            token: "secret-token".into(),
            limits: weft_server::WorkerLimits::default(),
            resources: weft_server::SessionResources::default(),
        }
    }

    #[test]
    fn session_keys_are_dns_labels_and_distinct() {
        assert_eq!(session_key("s1"), "s1");
        let a = session_key("My_Session");
        let b = session_key("my-session");
        assert_ne!(a, b);
        assert!(is_dns_label(&a), "{a}");
        assert!(a.starts_with("my-session-"), "{a}");
        let long = "x".repeat(200);
        assert!(is_dns_label(&session_key(&long)));
        assert!(session_key(&long).len() <= 40);
        assert!(is_dns_label(&session_key("___")));
        let w = worker_name(&long);
        assert!(is_dns_label(&w) && w.len() <= 63, "{w}");
        assert_ne!(worker_name("s1"), worker_name("s1"));
    }

    #[test]
    fn quantities() {
        for ok in ["500m", "2", "0.5", "512Mi", "1G", "1.5Gi"] {
            assert!(is_quantity(ok), "{ok}");
        }
        for bad in ["", "m", "1.2.3", "12 Mi", "1gb", "-1"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }

    #[test]
    fn validate_names_the_flag() {
        let mut t = PodTemplate::new("weft", "ghcr.io/x/weft:1");
        assert!(t.validate().is_ok());
        t.memory = Some("1gb".into());
        let err = t.validate().unwrap_err().to_string();
        assert!(err.contains("--k8s-memory") && err.contains("1gb"), "{err}");
        t.memory = None;
        t.namespace = "Bad_NS".into();
        assert!(t.validate().unwrap_err().to_string().contains("--k8s-namespace"));
    }

    #[test]
    fn pod_carries_labels_owner_resources_and_token_from_secret() {
        let mut t = PodTemplate::new("weft", "img:1");
        t.cpu = Some("500m".into());
        t.memory = Some("1Gi".into());
        let owner = owner_reference("s1", "uid-1");
        let pod = serde_json::to_value(worker_pod(&t, "weft-s1-abc", &request(), &owner)).unwrap();
        assert_eq!(pod["metadata"]["labels"]["weft.dev/session"], "s1");
        assert_eq!(pod["metadata"]["labels"]["weft.dev/worker"], "weft-s1-abc");
        assert_eq!(pod["metadata"]["ownerReferences"][0]["uid"], "uid-1");
        assert_eq!(pod["metadata"]["ownerReferences"][0]["name"], "weft-session-s1");
        let c = &pod["spec"]["containers"][0];
        assert_eq!(c["resources"]["requests"]["cpu"], "500m");
        assert_eq!(c["resources"]["limits"]["memory"], "1Gi");
        assert_eq!(
            c["args"],
            serde_json::json!([
                "worker",
                "--project",
                "/srv/project",
                "--session-id",
                "s1",
                "--listen",
                "$(POD_IP):8080",
                "--env",
                "prod",
                "--max-runs",
                "3"
            ])
        );
        let text = pod.to_string();
        assert!(
            !text.contains("secret-token"),
            "the token is not in the Pod: {text}"
        );
        assert_eq!(c["env"][1]["valueFrom"]["secretKeyRef"]["name"], "weft-s1-abc");
        assert_eq!(pod["spec"]["restartPolicy"], "Never");
        assert!(pod["spec"].get("activeDeadlineSeconds").is_none());
    }

    #[test]
    fn a_sessions_resources_override_the_template() {
        let mut t = PodTemplate::new("weft", "img:1");
        t.cpu = Some("500m".into());
        t.memory = Some("1Gi".into());
        let owner = owner_reference("s1", "uid-1");
        let mut r = request();
        r.resources.cpus = Some(2);
        r.resources.time_limit = Some("1:30".into());
        r.resources.gpus = Some(1);
        let pod = serde_json::to_value(worker_pod(&t, "w", &r, &owner)).unwrap();
        let res = &pod["spec"]["containers"][0]["resources"];
        assert_eq!(res["requests"]["cpu"], "2");
        assert_eq!(res["limits"]["cpu"], "2");
        assert_eq!(res["limits"]["memory"], "1Gi", "the template's memory stays");
        assert_eq!(res["limits"]["nvidia.com/gpu"], "1");
        assert_eq!(pod["spec"]["activeDeadlineSeconds"], 90);
        r.resources.memory = Some(100 << 20);
        let pod = serde_json::to_value(worker_pod(&t, "w", &r, &owner)).unwrap();
        assert_eq!(
            pod["spec"]["containers"][0]["resources"]["requests"]["memory"],
            "100Mi"
        );
        assert_eq!(memory_quantity(3 << 30), "3Gi");
        assert_eq!(memory_quantity(1000), "1000");
    }

    #[test]
    fn network_policy_admits_only_the_master() {
        let t = PodTemplate::new("weft", "img:1");
        let np = serde_json::to_value(network_policy(&t, "s1", &owner_reference("s1", "u"))).unwrap();
        assert_eq!(np["spec"]["podSelector"]["matchLabels"]["weft.dev/session"], "s1");
        assert_eq!(np["spec"]["policyTypes"], serde_json::json!(["Ingress"]));
        assert_eq!(
            np["spec"]["ingress"][0]["from"],
            serde_json::json!([{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "weft-serve"}}}])
        );
        assert_eq!(np["spec"]["ingress"][0]["ports"][0]["port"], 8080);
    }
}
