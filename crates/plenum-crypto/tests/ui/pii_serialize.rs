use plenum_crypto::Pii;

fn main() {
    let email = Pii::new(String::from("ada@example.com"));
    // Serializing needs an explicit opt-in (`SerializablePii` or `serialize_exposed`).
    let _ = serde_json::to_string(&email);
}
