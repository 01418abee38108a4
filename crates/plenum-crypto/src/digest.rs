//! SHA-256 and random bytes for the other crates (the audit log's Merkle tree and salts), so
//! that only this crate names a hash implementation or a random number generator.

use sha2::Digest as _;

/// `N` bytes from the thread-local CSPRNG (salts, nonces of other crates).
pub fn random_bytes<const N: usize>() -> [u8; N] {
    use rand::RngCore as _;
    let mut out = [0u8; N];
    rand::thread_rng().fill_bytes(&mut out);
    out
}

/// SHA-256 over the concatenation of `parts`.
pub fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = sha2::Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    #[test]
    fn sha256_of_nothing_is_the_published_value() {
        let empty = super::sha256(&[]);
        assert_eq!(
            hex::encode(empty),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(super::sha256(&[b"ab", b"c"]), super::sha256(&[b"abc"]));
    }
}
