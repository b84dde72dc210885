//! Prints the LoadTest CustomResourceDefinition as YAML (the content of `deploy/crd.yaml`).

fn main() {
    print!("{}", hatchery_operator::crd::crd_yaml());
}
