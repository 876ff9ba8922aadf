//! What the `harness = false` bench targets share: running the figures a filter selects.

/// Runs every figure of `benches`, or those whose name contains one of the arguments. Flags
/// (cargo passes `--bench`) are not filters.
pub fn run(benches: &[(&str, fn())]) {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    for (name, run) in benches {
        if filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())) {
            println!("== {name}");
            run();
        }
    }
}
