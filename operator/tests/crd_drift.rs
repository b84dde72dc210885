//! `deploy/crd.yaml` is generated: it must be exactly what `crdgen` prints.
//! `HATCHERY_BLESS=1 cargo test -p hatchery-operator --test crd_drift` rewrites it.

use std::path::PathBuf;

use hatchery_operator::crd::{crd, crd_yaml};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

fn committed() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/crd.yaml")
}

#[test]
fn deploy_crd_yaml_is_what_crdgen_prints() {
    let generated = crd_yaml();
    let path = committed();
    if std::env::var_os("HATCHERY_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &generated).expect("write deploy/crd.yaml");
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == generated,
        "{} is out of date: run `HATCHERY_BLESS=1 cargo test -p hatchery-operator --test crd_drift` \
         (or `cargo run -p hatchery-operator --bin crdgen > deploy/crd.yaml`) and commit it",
        path.display()
    );
}

#[test]
fn deploy_crd_yaml_reads_back_as_the_same_crd() {
    let parsed: CustomResourceDefinition =
        serde_saphyr::from_str(&crd_yaml()).expect("the YAML parses as a CRD");
    assert_eq!(parsed, crd());
}
