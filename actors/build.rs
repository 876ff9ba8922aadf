// Rebuild when the release pipeline sets a different reported version.
fn main() {
    println!("cargo:rerun-if-env-changed=OIBUS_AGENT_VERSION");
}
