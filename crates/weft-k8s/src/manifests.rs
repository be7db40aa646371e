//! `weft k8s manifests`: the static objects a user applies once per
//! namespace: the `weft serve` Deployment and its Service, the
//! ServiceAccount, Role and RoleBinding the launcher needs (least verbs),
//! and the reconcile CronJob.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, EnvVarSource, PodSpec, PodTemplateSpec, SecretKeySelector, Service,
    ServiceAccount, ServicePort, ServiceSpec,
};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;

use crate::K8sError;
use crate::objects::{MANAGED_BY, MASTER_NAME};

/// What the manifests are made of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestOptions {
    /// The namespace of every object.
    pub namespace: String,
    /// The image of `weft serve`, the workers and the reconcile job.
    pub image: String,
    /// The project folder inside the image.
    pub project: String,
    /// The port `weft serve` listens on.
    pub port: u16,
    /// The reconcile CronJob's schedule.
    pub schedule: String,
    /// The Secret holding the server's bearer token under key `token`.
    pub token_secret: String,
}

impl ManifestOptions {
    /// Manifests for `image` in `namespace`, project `/project`, port 8080,
    /// reconcile every 15 minutes, token Secret `weft-serve-token`.
    pub fn new(namespace: impl Into<String>, image: impl Into<String>) -> Self {
        ManifestOptions {
            namespace: namespace.into(),
            image: image.into(),
            project: "/project".into(),
            port: 8080,
            schedule: "*/15 * * * *".into(),
            token_secret: "weft-serve-token".into(),
        }
    }
}

/// The rules of the launcher's Role: each verb the launcher or reconcile
/// calls, and nothing else.
pub fn launcher_rules() -> Vec<PolicyRule> {
    let rule = |group: &str, resources: &[&str], verbs: &[&str]| PolicyRule {
        api_groups: Some(vec![group.to_string()]),
        resources: Some(resources.iter().map(|s| s.to_string()).collect()),
        verbs: verbs.iter().map(|s| s.to_string()).collect(),
        ..PolicyRule::default()
    };
    vec![
        // Pods: created per worker, read for phase and IP, listed and
        // deleted by reconcile, deleted on termination.
        rule("", &["pods"], &["create", "get", "list", "delete"]),
        // The root ConfigMap: created per session, read when it exists
        // already (409), listed by reconcile, deleted on termination.
        rule("", &["configmaps"], &["create", "get", "list", "delete"]),
        // Services and token Secrets: never read back, only created,
        // listed by reconcile and deleted.
        rule("", &["services", "secrets"], &["create", "list", "delete"]),
        rule(
            "networking.k8s.io",
            &["networkpolicies"],
            &["create", "list", "delete"],
        ),
    ]
}

fn meta(name: &str, o: &ManifestOptions) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some(o.namespace.clone()),
        labels: Some(BTreeMap::from([
            ("app.kubernetes.io/name".to_string(), name.to_string()),
            ("app.kubernetes.io/part-of".to_string(), MANAGED_BY.to_string()),
        ])),
        ..ObjectMeta::default()
    }
}

fn token_env(o: &ManifestOptions) -> EnvVar {
    EnvVar {
        name: "WEFT_TOKEN".into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: o.token_secret.clone(),
                key: "token".into(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

/// The `weft serve` Deployment (one replica; its pods carry
/// `app.kubernetes.io/name=weft-serve`, the label the workers'
/// NetworkPolicy admits).
pub fn deployment(o: &ManifestOptions) -> Deployment {
    let labels = BTreeMap::from([("app.kubernetes.io/name".to_string(), MASTER_NAME.to_string())]);
    Deployment {
        metadata: meta(MASTER_NAME, o),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            selector: LabelSelector {
                match_labels: Some(labels.clone()),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(MASTER_NAME.into()),
                    containers: vec![Container {
                        name: "serve".into(),
                        image: Some(o.image.clone()),
                        command: Some(vec!["weft".into()]),
                        args: Some(vec![
                            "--project".into(),
                            o.project.clone(),
                            "serve".into(),
                            "--listen".into(),
                            format!("0.0.0.0:{}", o.port),
                            "--launcher".into(),
                            "kubernetes".into(),
                            "--k8s-namespace".into(),
                            o.namespace.clone(),
                            "--k8s-image".into(),
                            o.image.clone(),
                        ]),
                        env: Some(vec![token_env(o)]),
                        ports: Some(vec![ContainerPort {
                            name: Some("http".into()),
                            container_port: i32::from(o.port),
                            ..ContainerPort::default()
                        }]),
                        ..Container::default()
                    }],
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        status: None,
    }
}

/// The Service in front of `weft serve` (clients and the reconcile job call it).
pub fn service(o: &ManifestOptions) -> Service {
    Service {
        metadata: meta(MASTER_NAME, o),
        spec: Some(ServiceSpec {
            selector: Some(BTreeMap::from([(
                "app.kubernetes.io/name".to_string(),
                MASTER_NAME.to_string(),
            )])),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: i32::from(o.port),
                target_port: Some(IntOrString::Int(i32::from(o.port))),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// The service account of `weft serve` and of the reconcile job.
pub fn service_account(o: &ManifestOptions) -> ServiceAccount {
    ServiceAccount {
        metadata: meta(MASTER_NAME, o),
        ..ServiceAccount::default()
    }
}

/// The Role with [`launcher_rules`].
pub fn role(o: &ManifestOptions) -> Role {
    Role {
        metadata: meta(MASTER_NAME, o),
        rules: Some(launcher_rules()),
    }
}

/// Binds the Role to the service account.
pub fn role_binding(o: &ManifestOptions) -> RoleBinding {
    RoleBinding {
        metadata: meta(MASTER_NAME, o),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: MASTER_NAME.into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: MASTER_NAME.into(),
            namespace: Some(o.namespace.clone()),
            ..Subject::default()
        }]),
    }
}

/// The CronJob running `weft k8s reconcile` against the server's Service.
pub fn cron_job(o: &ManifestOptions) -> CronJob {
    CronJob {
        metadata: meta("weft-reconcile", o),
        spec: Some(CronJobSpec {
            schedule: o.schedule.clone(),
            concurrency_policy: Some("Forbid".into()),
            job_template: JobTemplateSpec {
                metadata: None,
                spec: Some(JobSpec {
                    backoff_limit: Some(0),
                    template: PodTemplateSpec {
                        metadata: None,
                        spec: Some(PodSpec {
                            service_account_name: Some(MASTER_NAME.into()),
                            restart_policy: Some("Never".into()),
                            containers: vec![Container {
                                name: "reconcile".into(),
                                image: Some(o.image.clone()),
                                command: Some(vec!["weft".into()]),
                                args: Some(vec![
                                    "k8s".into(),
                                    "reconcile".into(),
                                    "--server".into(),
                                    format!("http://{MASTER_NAME}.{}.svc:{}", o.namespace, o.port),
                                    "--k8s-namespace".into(),
                                    o.namespace.clone(),
                                    "--stale-after".into(),
                                    "24h".into(),
                                ]),
                                env: Some(vec![token_env(o)]),
                                ..Container::default()
                            }],
                            ..PodSpec::default()
                        }),
                    },
                    ..JobSpec::default()
                }),
            },
            ..CronJobSpec::default()
        }),
        status: None,
    }
}

/// Every manifest as one YAML stream (documents separated by `---`).
pub fn manifests_yaml(o: &ManifestOptions) -> Result<String, K8sError> {
    fn doc<T: Serialize + k8s_openapi::Resource>(obj: &T) -> Result<String, K8sError> {
        // apiVersion and kind come from the type (its Serialize writes them).
        serde_saphyr::to_string(obj).map_err(|e| K8sError::Yaml(e.to_string()))
    }
    let docs = [
        doc(&service_account(o))?,
        doc(&role(o))?,
        doc(&role_binding(o))?,
        doc(&deployment(o))?,
        doc(&service(o))?,
        doc(&cron_job(o))?,
    ];
    Ok(docs.map(|d| format!("---\n{}", d.trim_end())).join("\n") + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_stream_has_every_object_and_parses_back() {
        let o = ManifestOptions::new("data", "ghcr.io/acme/weft:1.2");
        let yaml = manifests_yaml(&o).unwrap();
        let docs: Vec<serde_json::Value> = yaml
            .split("---\n")
            .filter(|d| !d.trim().is_empty())
            .map(|d| serde_saphyr::from_str(d).unwrap())
            .collect();
        let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "ServiceAccount",
                "Role",
                "RoleBinding",
                "Deployment",
                "Service",
                "CronJob"
            ]
        );
        for d in &docs {
            assert_eq!(d["metadata"]["namespace"], "data");
        }
        assert_eq!(docs[1]["apiVersion"], "rbac.authorization.k8s.io/v1");
        assert_eq!(
            docs[1]["rules"][0]["verbs"],
            serde_json::json!(["create", "get", "list", "delete"])
        );
        let verbs: Vec<String> = docs[1]["rules"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| {
                r["verbs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_string())
            })
            .collect();
        assert!(
            !verbs
                .iter()
                .any(|v| matches!(v.as_str(), "*" | "update" | "patch" | "watch"))
        );
        let serve = &docs[3]["spec"]["template"];
        assert_eq!(
            serve["metadata"]["labels"]["app.kubernetes.io/name"],
            "weft-serve"
        );
        assert_eq!(serve["spec"]["containers"][0]["image"], "ghcr.io/acme/weft:1.2");
        let job = &docs[5]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(job["args"][0], "k8s");
        assert_eq!(job["args"][1], "reconcile");
        assert_eq!(job["args"][3], "http://weft-serve.data.svc:8080");
        assert!(!yaml.contains("status:"), "{yaml}");
    }
}
