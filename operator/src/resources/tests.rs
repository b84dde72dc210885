use k8s_openapi::api::core::v1::{
    Affinity, EnvVar, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm,
    PodSpec, ResourceRequirements, SecretKeySelector, Toleration,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::*;
use crate::crd::{Lenient, PullPolicy, RoleSpec};

fn blueprint(lt: &LoadTest) -> Blueprint<'_> {
    Blueprint::new(lt).expect("a valid LoadTest")
}

fn error(lt: LoadTest) -> Error {
    Blueprint::new(&lt).expect_err("an invalid LoadTest")
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

fn master_pod(lt: &LoadTest) -> PodSpec {
    let d = blueprint(lt).master_deployment();
    d.spec.unwrap().template.spec.unwrap()
}

fn worker_pod(lt: &LoadTest) -> PodSpec {
    let s = blueprint(lt).workers_stateful_set();
    s.spec.unwrap().template.spec.unwrap()
}

fn role(zone: &str, cpu: &str) -> RoleSpec {
    RoleSpec {
        resources: Some(ResourceRequirements {
            limits: Some(BTreeMap::from([(
                "cpu".to_string(),
                Quantity(cpu.to_string()),
            )])),
            ..ResourceRequirements::default()
        }),
        node_selector: BTreeMap::from([("zone".to_string(), zone.to_string())]),
        tolerations: vec![Toleration {
            key: Some("dedicated".to_string()),
            operator: Some("Exists".to_string()),
            ..Toleration::default()
        }],
        affinity: Some(Lenient::new(&Affinity {
            node_affinity: Some(NodeAffinity {
                required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                    node_selector_terms: vec![NodeSelectorTerm {
                        match_expressions: Some(vec![NodeSelectorRequirement {
                            key: "zone".to_string(),
                            operator: "In".to_string(),
                            values: Some(vec![zone.to_string()]),
                        }]),
                        match_fields: None,
                    }],
                }),
                ..NodeAffinity::default()
            }),
            ..Affinity::default()
        })),
        env: vec![EnvVar {
            name: "HATCHERY_LOGLEVEL".to_string(),
            value: Some("debug".to_string()),
            value_from: None,
        }],
        annotations: BTreeMap::from([("team".to_string(), zone.to_string())]),
        ..RoleSpec::default()
    }
}

fn all_metadata(c: &Children) -> Vec<&ObjectMeta> {
    vec![
        &c.plan.as_ref().unwrap().metadata,
        &c.master.metadata,
        &c.master_service.metadata,
        &c.ui_service.metadata,
        &c.workers_service.metadata,
        &c.workers.metadata,
    ]
}

#[test]
fn every_child_carries_the_common_labels_and_the_namespace() {
    let lt = LoadTest::test();
    for meta in all_metadata(&blueprint(&lt).children()) {
        let labels = meta.labels.as_ref().unwrap();
        assert_eq!(labels["app.kubernetes.io/name"], "hatchery");
        assert_eq!(labels["app.kubernetes.io/instance"], "smoke");
        assert_eq!(labels["app.kubernetes.io/managed-by"], "hatchery-operator");
        assert_eq!(labels[LABEL_LOADTEST], "smoke");
        assert_eq!(meta.namespace.as_deref(), Some("default"));
    }
}

#[test]
fn every_child_is_owned_by_the_load_test_as_its_controller() {
    let lt = LoadTest::test();
    for meta in all_metadata(&blueprint(&lt).children()) {
        let owners = meta.owner_references.as_ref().unwrap();
        assert_eq!(owners.len(), 1);
        let owner = &owners[0];
        assert_eq!(owner.api_version, "hatchery.io/v1alpha1");
        assert_eq!(owner.kind, "LoadTest");
        assert_eq!(owner.name, "smoke");
        assert_eq!(Some(&owner.uid), lt.metadata.uid.as_ref());
        assert_eq!(owner.controller, Some(true));
        assert_eq!(owner.block_owner_deletion, Some(true));
    }
}

#[test]
fn children_have_the_documented_names() {
    let lt = LoadTest::test().name("checkout");
    let c = blueprint(&lt).children();
    let name = |m: &ObjectMeta| m.name.clone().unwrap();
    assert_eq!(name(&c.plan.unwrap().metadata), "checkout-plan");
    assert_eq!(name(&c.master.metadata), "checkout-master");
    assert_eq!(name(&c.master_service.metadata), "checkout-master");
    assert_eq!(name(&c.ui_service.metadata), "checkout-ui");
    assert_eq!(name(&c.workers_service.metadata), "checkout-workers");
    assert_eq!(name(&c.workers.metadata), "checkout-workers");
}

#[test]
fn a_load_test_without_a_uid_is_refused() {
    let e = error(LoadTest::test().without_uid());
    assert!(matches!(e, Error::MissingMetadata("metadata.uid")), "{e}");
}

#[test]
fn an_inline_plan_lands_in_a_config_map_under_plan_yaml() {
    let lt = LoadTest::test();
    let cm = blueprint(&lt).plan_config_map().unwrap();
    let data = cm.data.unwrap();
    assert_eq!(data.len(), 1);
    assert_eq!(data["plan.yaml"], crate::crd::fixtures::PLAN);
    let pod = master_pod(&lt);
    let volume = &pod.volumes.unwrap()[0];
    assert_eq!(volume.config_map.as_ref().unwrap().name, "smoke-plan");
    assert_eq!(
        &blueprint(&lt).master_args()[..2],
        strings(&["-f", "/plan/plan.yaml"])
    );
}

#[test]
fn a_config_map_plan_is_mounted_whole_and_read_by_its_key() {
    let lt = LoadTest::test().plan_config_map("shop-plans", "checkout.yaml");
    let b = blueprint(&lt);
    assert!(b.plan_config_map().is_none());
    assert!(b.children().plan.is_none());
    let pod = master_pod(&lt);
    let source = pod.volumes.unwrap()[0].config_map.clone().unwrap();
    assert_eq!(source.name, "shop-plans");
    assert_eq!(
        source.items, None,
        "feeder files beside the plan must be mounted too"
    );
    let mount = &pod.containers[0].volume_mounts.as_ref().unwrap()[0];
    assert_eq!(
        (mount.mount_path.as_str(), mount.read_only),
        ("/plan", Some(true))
    );
    assert_eq!(
        &b.master_args()[..2],
        strings(&["-f", "/plan/checkout.yaml"])
    );
}

#[test]
fn master_args_hold_exactly_what_the_spec_says() {
    let mut lt = LoadTest::test().workers(4).expect_workers(3).users(100);
    lt.spec.spawn_rate = Some(2.5);
    lt.spec.run_time = Some("90s".to_string());
    lt.spec.expect_workers_max_wait = Some("2m".to_string());
    lt.spec.host = Some("http://demo-target:8080".to_string());
    lt.spec.tags = strings(&["checkout", "browse"]);
    lt.spec.exclude_tags = strings(&["slow"]);
    lt.spec.extra_args = strings(&["--stop-timeout", "5s"]);
    lt.spec.master.extra_args = strings(&["--csv", "/tmp/run"]);
    #[rustfmt::skip]
    let expected = strings(&[
        "-f", "/plan/plan.yaml", "--master", "--autostart",
        "-u", "100", "-r", "2.5", "-t", "1m30s",
        "--expect-workers", "3", "--expect-workers-max-wait", "2m",
        "--web-port", "8089", "--master-bind-port", "5557",
        "-H", "http://demo-target:8080",
        "--tags=checkout,browse", "--exclude-tags=slow",
        "--stop-timeout", "5s", "--csv", "/tmp/run",
    ]);
    assert_eq!(blueprint(&lt).master_args(), expected);
    assert_eq!(master_pod(&lt).containers[0].args.as_ref(), Some(&expected));
}

#[test]
fn master_args_leave_out_what_the_spec_leaves_out() {
    let mut lt = LoadTest::test().workers(2);
    lt.spec.users = None;
    lt.spec.spawn_rate = None;
    lt.spec.run_time = None;
    #[rustfmt::skip]
    let expected = strings(&[
        "-f", "/plan/plan.yaml", "--master", "--autostart",
        "--expect-workers", "2", "--expect-workers-max-wait", "10m",
        "--web-port", "8089", "--master-bind-port", "5557",
    ]);
    assert_eq!(blueprint(&lt).master_args(), expected);
}

#[test]
fn the_master_keeps_serving_after_the_run_so_it_never_gets_headless_or_autoquit() {
    let lt = LoadTest::test();
    let args = blueprint(&lt).master_args();
    assert!(args.contains(&"--autostart".to_string()));
    assert!(!args
        .iter()
        .any(|a| a == "--headless" || a.starts_with("--autoquit")));
}

#[test]
fn a_load_test_that_is_not_headless_waits_for_the_ui_to_start() {
    let lt = LoadTest::test().headless(false);
    let args = blueprint(&lt).master_args();
    assert!(!args.contains(&"--autostart".to_string()));
    assert!(args.contains(&"--master".to_string()));
}

#[test]
fn worker_args_dial_the_master_service_then_take_the_extra_args() {
    let mut lt = LoadTest::test();
    lt.spec.extra_args = strings(&["--loglevel", "debug"]);
    lt.spec.worker.extra_args = strings(&["--threads", "2"]);
    lt.spec.master.extra_args = strings(&["--csv", "/tmp/run"]);
    #[rustfmt::skip]
    let expected = strings(&[
        "--worker", "--master-host", "smoke-master", "--master-port", "5557",
        "--loglevel", "debug", "--threads", "2",
    ]);
    assert_eq!(blueprint(&lt).worker_args(), expected);
    assert_eq!(worker_pod(&lt).containers[0].args.as_ref(), Some(&expected));
    // With the master pod's IP, the workers dial it too.
    let ip = "10.244.0.7".parse().ok();
    let args = blueprint(&lt).with_master_address(ip).worker_args();
    assert_eq!(
        args[..7],
        strings(&[
            "--worker",
            "--master-host",
            "smoke-master",
            "--master-port",
            "5557",
            "--master-address",
            "10.244.0.7"
        ])[..]
    );
}

#[test]
fn extra_args_cannot_name_another_master_for_the_workers() {
    for (shared, flag) in [
        (true, "--master-host=elsewhere"),
        (false, "--master-address"),
    ] {
        let mut lt = LoadTest::test();
        if shared {
            lt.spec.extra_args = strings(&[flag]);
        } else {
            lt.spec.worker.extra_args = strings(&[flag, "10.0.0.1"]);
        }
        let e = error(lt).to_string();
        let field = if shared {
            "extraArgs"
        } else {
            "worker.extraArgs"
        };
        assert!(e.starts_with(&format!("spec.{field}: --master-")), "{e}");
        assert!(e.contains("the operator sets it"), "{e}");
    }
}

#[test]
fn the_master_is_one_recreated_replica_gated_on_the_workers() {
    let lt = LoadTest::test();
    let spec = blueprint(&lt).master_deployment().spec.unwrap();
    assert_eq!(spec.replicas, Some(1));
    assert_eq!(spec.strategy.unwrap().type_.as_deref(), Some("Recreate"));
    let template_labels = spec.template.metadata.unwrap().labels.unwrap();
    for (k, v) in spec.selector.match_labels.unwrap() {
        assert_eq!(
            template_labels.get(&k),
            Some(&v),
            "selector {k} must match the pods"
        );
    }
    assert_eq!(template_labels[LABEL_ROLE], "master");
    let gates = spec.template.spec.unwrap().readiness_gates.unwrap();
    assert_eq!(gates.len(), 1);
    assert_eq!(gates[0].condition_type, "hatchery.io/workers-connected");
}

#[test]
fn the_master_container_has_named_tcp_ports_and_healthz_probes() {
    let lt = LoadTest::test();
    let pod = master_pod(&lt);
    let c = &pod.containers[0];
    assert_eq!(c.name, "hatchery");
    assert_eq!(c.image.as_deref(), Some("hatchery:test"));
    let ports: Vec<_> = c
        .ports
        .as_ref()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p.name.as_deref().unwrap(),
                p.container_port,
                p.protocol.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        ports,
        [("grpc", 5557, Some("TCP")), ("http", 8089, Some("TCP"))]
    );
    for probe in [c.readiness_probe.as_ref(), c.liveness_probe.as_ref()] {
        let get = probe.unwrap().http_get.clone().unwrap();
        assert_eq!(get.path.as_deref(), Some("/healthz"));
        assert_eq!(get.port, IntOrString::String("http".to_string()));
    }
    assert!(pod.termination_grace_period_seconds.unwrap() <= 30);
}

#[test]
fn master_pods_take_their_settings_from_spec_master_and_workers_from_spec_worker() {
    let mut lt = LoadTest::test();
    lt.spec.master = role("a", "1");
    lt.spec.worker = role("b", "2");
    lt.spec.image_pull_policy = PullPolicy::Never;
    let b = blueprint(&lt);
    for (role_spec, template) in [
        (
            &lt.spec.master,
            b.master_deployment().spec.unwrap().template,
        ),
        (
            &lt.spec.worker,
            b.workers_stateful_set().spec.unwrap().template,
        ),
    ] {
        let pod = template.spec.unwrap();
        let c = &pod.containers[0];
        assert_eq!(c.resources, role_spec.resources);
        let env = c.env.as_ref().unwrap();
        assert_eq!(env[..env.len() - 1], role_spec.env[..]);
        assert_eq!(env.last().unwrap().name, "HATCHERY_AUTH_TOKEN");
        assert_eq!(c.image_pull_policy.as_deref(), Some("Never"));
        assert_eq!(pod.node_selector.as_ref(), Some(&role_spec.node_selector));
        assert_eq!(pod.tolerations.as_ref(), Some(&role_spec.tolerations));
        let affinity = role_spec.affinity.as_ref().map(|a| a.decode().unwrap());
        assert_eq!(pod.affinity, affinity);
        let annotations = template.metadata.unwrap().annotations;
        assert_eq!(annotations.as_ref(), Some(&role_spec.annotations));
    }
}

#[test]
fn empty_role_settings_leave_the_pod_fields_unset() {
    let lt = LoadTest::test();
    let pod = worker_pod(&lt);
    assert_eq!(pod.node_selector, None);
    assert_eq!(pod.tolerations, None);
    assert_eq!(pod.affinity, None);
    let env = pod.containers[0].env.as_ref().unwrap();
    assert_eq!(env.len(), 1, "only the token: {env:?}");
    assert_eq!(
        pod.containers[0].image_pull_policy.as_deref(),
        Some("IfNotPresent")
    );
}

fn token_ref(pod: &PodSpec) -> SecretKeySelector {
    let env = pod.containers[0].env.as_ref().unwrap();
    let token = env
        .iter()
        .find(|e| e.name == "HATCHERY_AUTH_TOKEN")
        .unwrap();
    assert_eq!(token.value, None, "never inline");
    let from = token.value_from.as_ref().unwrap();
    from.secret_key_ref.clone().unwrap()
}

#[test]
fn master_and_workers_read_the_generated_token_from_its_owned_secret() {
    let lt = LoadTest::test().name("lt1");
    let b = blueprint(&lt);
    let secret = b.token_secret("0123abcd").expect("a token Secret");
    assert_eq!(secret.metadata.name.as_deref(), Some("lt1-token"));
    assert_eq!(
        secret.metadata.owner_references,
        Some(vec![b.owner.clone()])
    );
    let data = secret.string_data.unwrap();
    assert_eq!(data.get(TOKEN_KEY).map(String::as_str), Some("0123abcd"));
    for pod in [master_pod(&lt), worker_pod(&lt)] {
        let r = token_ref(&pod);
        assert_eq!((r.name.as_str(), r.key.as_str()), ("lt1-token", TOKEN_KEY));
        assert_eq!(r.optional, Some(false));
    }
}

#[test]
fn a_named_auth_token_secret_is_used_and_none_is_made() {
    let mut lt = LoadTest::test();
    lt.spec.auth_token_secret = Some("team-token".to_string());
    assert!(blueprint(&lt).token_secret("x").is_none());
    for pod in [master_pod(&lt), worker_pod(&lt)] {
        assert_eq!(token_ref(&pod).name, "team-token");
    }
}

#[test]
fn pods_get_no_service_links_that_would_read_as_hatchery_flags() {
    let lt = LoadTest::test().name("hatchery");
    assert_eq!(master_pod(&lt).enable_service_links, Some(false));
    assert_eq!(worker_pod(&lt).enable_service_links, Some(false));
}

#[test]
fn the_master_service_reaches_the_master_before_it_is_ready() {
    let lt = LoadTest::test();
    let b = blueprint(&lt);
    let spec = b.master_service().spec.unwrap();
    assert_eq!(spec.publish_not_ready_addresses, Some(true));
    assert_eq!(spec.selector, Some(b.selector(Role::Master)));
    let port = &spec.ports.unwrap()[0];
    assert_eq!((port.port, port.protocol.as_deref()), (5557, Some("TCP")));
    assert_eq!(
        port.target_port,
        Some(IntOrString::String("grpc".to_string()))
    );
}

#[test]
fn the_ui_service_is_a_normal_service_on_8089() {
    let lt = LoadTest::test();
    let b = blueprint(&lt);
    let spec = b.ui_service().spec.unwrap();
    assert_eq!(spec.publish_not_ready_addresses, None);
    assert_eq!(spec.cluster_ip, None);
    assert_eq!(spec.selector, Some(b.selector(Role::Master)));
    let port = &spec.ports.unwrap()[0];
    assert_eq!((port.port, port.protocol.as_deref()), (8089, Some("TCP")));
}

#[test]
fn every_service_port_declares_tcp() {
    let lt = LoadTest::test();
    let c = blueprint(&lt).children();
    for svc in [c.master_service, c.ui_service, c.workers_service] {
        for port in svc.spec.unwrap().ports.unwrap_or_default() {
            assert_eq!(port.protocol.as_deref(), Some("TCP"));
        }
    }
}

#[test]
fn the_workers_service_is_headless_and_selects_the_workers() {
    let lt = LoadTest::test();
    let b = blueprint(&lt);
    let spec = b.workers_service().spec.unwrap();
    assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
    assert_eq!(spec.selector, Some(b.selector(Role::Worker)));
}

#[test]
fn the_workers_start_in_parallel_as_many_as_spec_workers() {
    let lt = LoadTest::test().workers(7).expect_workers(5);
    let spec = blueprint(&lt).workers_stateful_set().spec.unwrap();
    assert_eq!(spec.replicas, Some(7));
    assert_eq!(spec.pod_management_policy.as_deref(), Some("Parallel"));
    assert_eq!(spec.service_name.as_deref(), Some("smoke-workers"));
    let template_labels = spec.template.metadata.unwrap().labels.unwrap();
    assert_eq!(template_labels[LABEL_ROLE], "worker");
    for (k, v) in spec.selector.match_labels.unwrap() {
        assert_eq!(template_labels.get(&k), Some(&v));
    }
    let pod = spec.template.spec.unwrap();
    assert_eq!(pod.readiness_gates, None);
    assert_eq!(pod.volumes, None, "workers get the plan from the master");
}

#[test]
fn expect_workers_defaults_to_workers() {
    let lt = LoadTest::test().workers(3);
    assert_eq!(blueprint(&lt).expect_workers(), 3);
    let lt = LoadTest::test().workers(3).expect_workers(2);
    assert_eq!(blueprint(&lt).expect_workers(), 2);
}

#[test]
fn the_gate_timeout_is_expect_workers_max_wait() {
    let mut lt = LoadTest::test();
    // Never an endless wait: 10 minutes unless the spec says otherwise.
    assert_eq!(
        blueprint(&lt).expect_workers_max_wait(),
        Some(DEFAULT_MAX_WAIT)
    );
    lt.spec.expect_workers_max_wait = Some("1m30s".to_string());
    assert_eq!(
        blueprint(&lt).expect_workers_max_wait(),
        Some(Duration::from_secs(90))
    );
}

#[test]
fn zero_workers_are_refused() {
    let e = error(LoadTest::test().workers(0));
    assert_eq!(e.to_string(), "spec.workers: must be at least 1");
}

#[test]
fn expecting_more_workers_than_there_are_is_refused() {
    let e = error(LoadTest::test().workers(2).expect_workers(3));
    assert_eq!(
        e.to_string(),
        "spec.expectWorkers: must be between 1 and workers (2), not 3"
    );
    assert!(Blueprint::new(&LoadTest::test().workers(2).expect_workers(0)).is_err());
}

#[test]
fn a_bad_run_time_is_refused_with_the_parser_message() {
    let e = error(LoadTest::test().run_time("5 minutes"));
    assert!(
        e.to_string().starts_with("spec.runTime: invalid duration"),
        "{e}"
    );
    let e = error(LoadTest::test().run_time("0s"));
    assert_eq!(e.to_string(), "spec.runTime: must be more than 0");
    let mut lt = LoadTest::test();
    lt.spec.expect_workers_max_wait = Some("soon".to_string());
    assert!(error(lt)
        .to_string()
        .starts_with("spec.expectWorkersMaxWait:"));
}

#[test]
fn a_plan_needs_exactly_one_source() {
    let mut lt = LoadTest::test();
    lt.spec.plan.inline = None;
    assert!(matches!(error(lt), Error::PlanMissing));
    let mut lt = LoadTest::test().plan_config_map("plans", "plan.yaml");
    lt.spec.plan.inline = Some(crate::crd::fixtures::PLAN.to_string());
    assert!(matches!(error(lt), Error::PlanAmbiguous));
}

#[test]
fn an_invalid_inline_plan_is_refused_with_every_diagnostic() {
    let e = error(LoadTest::test().inline_plan("users:\n  - name: A\n    wieght: 2\n"));
    let Error::InvalidPlan(diagnostics) = &e else {
        panic!("expected InvalidPlan, got {e}")
    };
    assert_eq!(diagnostics.origin, "LoadTest smoke");
    assert!(!diagnostics.items.is_empty());
    assert!(e.to_string().contains("LoadTest smoke:"), "{e}");
    assert_eq!(e.reason(), "InvalidPlan");
}

#[test]
fn a_config_map_key_with_a_slash_is_refused() {
    let e = error(LoadTest::test().plan_config_map("plans", "../plan.yaml"));
    assert!(e.to_string().starts_with("spec.plan.configMap.key:"), "{e}");
}

#[test]
fn names_that_cannot_name_a_service_or_fit_a_stateful_set_are_refused() {
    for name in ["Smoke", "1smoke", "smoke.test", "smoke-", &"a".repeat(45)] {
        let e = error(LoadTest::test().name(name));
        assert!(matches!(e, Error::InvalidName { .. }), "{name}: {e}");
    }
    assert!(Blueprint::new(&LoadTest::test().name(&"a".repeat(44))).is_ok());
}

#[test]
fn spawn_rate_host_and_tags_are_checked() {
    let mut lt = LoadTest::test();
    lt.spec.spawn_rate = Some(0.0);
    assert!(error(lt).to_string().starts_with("spec.spawnRate:"));
    let mut lt = LoadTest::test();
    lt.spec.spawn_rate = Some(1e308);
    assert!(error(lt).to_string().starts_with("spec.spawnRate:"));
    let mut lt = LoadTest::test().users(1_000_000_000);
    assert!(error(lt.clone()).to_string().starts_with("spec.users:"));
    lt.spec.users = Some(hatchery_core::limits::DEFAULT_MAX_USERS);
    assert!(Blueprint::new(&lt).is_ok());
    let mut lt = LoadTest::test();
    lt.spec.host = Some("demo-target:8080".to_string());
    assert!(error(lt).to_string().starts_with("spec.host:"));
    let mut lt = LoadTest::test();
    lt.spec.tags = strings(&["a,b"]);
    assert!(error(lt).to_string().starts_with("spec.tags:"));
}

#[test]
fn a_host_that_a_worker_cannot_use_is_refused_like_a_worker_would() {
    // Each passed the operator's old prefix check, and then failed on every worker.
    for host in ["http://:8080", "http://demo:99999", "http://demo/\u{7f}"] {
        let mut lt = LoadTest::test();
        lt.spec.host = Some(host.to_string());
        let e = error(lt).to_string();
        assert!(e.starts_with("spec.host:"), "{host}: {e}");
    }
    let mut lt = LoadTest::test();
    lt.spec.host = Some("http://demo-target:8080/api/".to_string());
    assert!(Blueprint::new(&lt).is_ok());
}

#[test]
fn master_flags_that_would_lock_the_operator_out_of_its_api_are_refused() {
    let mut lt = LoadTest::test();
    lt.spec.master.extra_args = strings(&["--web-auth=admin:secret"]);
    let e = error(lt).to_string();
    assert!(e.starts_with("spec.master.extraArgs: --web-auth: "), "{e}");
    assert!(e.contains("use spec.webAuth"), "{e}");
    let mut lt = LoadTest::test();
    lt.spec.extra_args = strings(&["--tls-cert", "/certs/tls.crt"]);
    assert!(error(lt)
        .to_string()
        .starts_with("spec.extraArgs: --tls-cert: "));
    let mut lt = LoadTest::test();
    lt.spec.master.env = vec![EnvVar {
        name: "HATCHERY_WEB_BASE_PATH".to_string(),
        value: Some("/lt".to_string()),
        value_from: None,
    }];
    let e = error(lt).to_string();
    assert!(
        e.starts_with("spec.master.env: HATCHERY_WEB_BASE_PATH: "),
        "{e}"
    );
    // Workers may take what they like, and harmless master flags pass.
    let mut lt = LoadTest::test();
    lt.spec.worker.extra_args = strings(&["--web-auth", "x:y"]);
    lt.spec.master.extra_args = strings(&["--reset-stats"]);
    assert!(Blueprint::new(&lt).is_ok());
}
