//! Prints Plenum's data map for the HVAC records under the default policy: a fideslang manifest
//! (JSON, loadable by Fides as a dataset and a system) and a record of processing activities
//! (GDPR Art. 30). Run with `cargo run --example data_map [json|art30]`.

#![expect(clippy::print_stdout, reason = "an example's job is to show output")]

use plenum::consent::Policy;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let map = plenum_hvac::data_map(Policy::plenum_default());
    match std::env::args().nth(1).as_deref() {
        Some("json") => println!("{}", serde_json::to_string_pretty(&map.to_fides_json())?),
        Some("art30") => println!("{}", map.to_record_of_processing()),
        _ => {
            println!("{}", serde_json::to_string_pretty(&map.to_fides_json())?);
            println!("\n{}", map.to_record_of_processing());
        }
    }
    Ok(())
}
