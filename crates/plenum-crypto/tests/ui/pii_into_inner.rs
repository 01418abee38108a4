use plenum_crypto::Pii;

fn main() {
    let email = Pii::new(String::from("ada@example.com"));
    // The value is private: the only way out is `expose()`.
    let _plain: String = email.value;
}
