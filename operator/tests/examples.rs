//! The example manifests in `deploy/examples/` are valid LoadTests.

use std::path::PathBuf;

use hatchery_operator::{Blueprint, LoadTest};

fn example(name: &str) -> LoadTest {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/examples")
        .join(name);
    let text = std::fs::read_to_string(&path).expect("read the example");
    serde_saphyr::from_str(&text).expect("the example is a LoadTest")
}

#[test]
fn the_example_load_test_passes_every_check_of_the_builders() {
    let mut lt = example("loadtest.yaml");
    // What the API server adds before the operator sees it.
    lt.metadata.namespace = Some("default".to_string());
    lt.metadata.uid = Some("00000000-0000-4000-8000-000000000000".to_string());
    let blueprint = Blueprint::new(&lt).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(blueprint.name(), "quickstart");
    assert!(blueprint.plan_config_map().is_some());
    assert!(lt.spec.headless);
}
