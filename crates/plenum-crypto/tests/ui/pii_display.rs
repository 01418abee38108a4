use plenum_crypto::Pii;

fn main() {
    let email = Pii::new(String::from("ada@example.com"));
    // `Pii` has no Display: plaintext cannot reach a format string by accident.
    let _ = format!("{}", email);
}
