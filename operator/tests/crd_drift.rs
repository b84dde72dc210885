//! `deploy/crd.yaml` and the chart's copy, `charts/hatchery-operator/files/crd.yaml`, are
//! generated: each must be exactly what `crdgen` prints.
//! `HATCHERY_BLESS=1 cargo test -p hatchery-operator --test crd_drift` rewrites both.

use std::path::PathBuf;

use hatchery_operator::crd::{crd, crd_yaml};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

fn committed(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

fn check(relative: &str) {
    let generated = crd_yaml();
    let path = committed(relative);
    if std::env::var_os("HATCHERY_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &generated).expect("write the CRD");
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == generated,
        "{relative} is out of date: run `HATCHERY_BLESS=1 cargo test -p hatchery-operator --test \
         crd_drift` and commit it (then `python3 deploy/render-chart.py` for deploy/operator.yaml)",
    );
}

#[test]
fn deploy_crd_yaml_is_what_crdgen_prints() {
    check("deploy/crd.yaml");
}

#[test]
fn the_charts_crd_is_what_crdgen_prints() {
    check("charts/hatchery-operator/files/crd.yaml");
}

#[test]
fn deploy_crd_yaml_reads_back_as_the_same_crd() {
    let parsed: CustomResourceDefinition =
        serde_saphyr::from_str(&crd_yaml()).expect("the YAML parses as a CRD");
    assert_eq!(parsed, crd());
}
