//! Password hashes in RabbitMQ's format, so that users move between RabbitMQ
//! and Warren through definitions files unchanged.
//!
//! A hash is a 4-byte random salt followed by `digest(salt ++ password)`,
//! stored base64-encoded next to the name of the hashing module RabbitMQ
//! would use (`rabbit_password_hashing_sha256`, its default since 3.6, or
//! `rabbit_password_hashing_sha512`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256, Sha512};

/// Bytes of random salt in front of the digest.
const SALT_LEN: usize = 4;

/// The digest a hash was made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashingAlgorithm {
    /// SHA-256, RabbitMQ's default.
    Sha256,
    /// SHA-512.
    Sha512,
}

impl HashingAlgorithm {
    /// RabbitMQ's name for it, as written in definitions files.
    pub fn name(self) -> &'static str {
        match self {
            HashingAlgorithm::Sha256 => "rabbit_password_hashing_sha256",
            HashingAlgorithm::Sha512 => "rabbit_password_hashing_sha512",
        }
    }

    /// The algorithm RabbitMQ names `name`, if Warren supports it.
    pub fn parse(name: &str) -> Option<HashingAlgorithm> {
        [HashingAlgorithm::Sha256, HashingAlgorithm::Sha512]
            .into_iter()
            .find(|algorithm| algorithm.name() == name)
    }

    fn digest(self, salt: &[u8], password: &[u8]) -> Vec<u8> {
        match self {
            HashingAlgorithm::Sha256 => Sha256::new()
                .chain_update(salt)
                .chain_update(password)
                .finalize()
                .to_vec(),
            HashingAlgorithm::Sha512 => Sha512::new()
                .chain_update(salt)
                .chain_update(password)
                .finalize()
                .to_vec(),
        }
    }
}

/// A salted password hash; an empty one means the user has no password and
/// cannot log in with one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordHash {
    algorithm: HashingAlgorithm,
    /// Salt followed by digest.
    bytes: Vec<u8>,
}

impl PasswordHash {
    /// Hashes `password` with a fresh random salt and SHA-256, as RabbitMQ does.
    pub fn new(password: &str) -> PasswordHash {
        PasswordHash::with_salt(HashingAlgorithm::Sha256, random_salt(), password)
    }

    fn with_salt(
        algorithm: HashingAlgorithm,
        salt: [u8; SALT_LEN],
        password: &str,
    ) -> PasswordHash {
        let mut bytes = salt.to_vec();
        bytes.extend(algorithm.digest(&salt, password.as_bytes()));
        PasswordHash { algorithm, bytes }
    }

    /// A hash as RabbitMQ exports it: `password_hash` (base64) and `hashing_algorithm`.
    pub fn from_definition(algorithm: &str, encoded: &str) -> Result<PasswordHash, String> {
        let algorithm = HashingAlgorithm::parse(algorithm)
            .ok_or_else(|| format!("unsupported hashing algorithm '{algorithm}'"))?;
        let bytes = STANDARD
            .decode(encoded)
            .map_err(|e| format!("password hash is not valid base64: {e}"))?;
        Ok(PasswordHash { algorithm, bytes })
    }

    /// The hash base64-encoded, as in RabbitMQ's definitions.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(&self.bytes)
    }

    /// The digest used.
    pub fn algorithm(&self) -> HashingAlgorithm {
        self.algorithm
    }

    /// Whether `password` is the one hashed. A blank password never matches,
    /// as in RabbitMQ's internal backend.
    pub fn verify(&self, password: &str) -> bool {
        if password.is_empty() || self.bytes.len() <= SALT_LEN {
            return false;
        }
        let (salt, expected) = self.bytes.split_at(SALT_LEN);
        constant_time_eq(&self.algorithm.digest(salt, password.as_bytes()), expected)
    }
}

/// Four bytes from the operating system's random source.
fn random_salt() -> [u8; SALT_LEN] {
    let mut salt = [0u8; SALT_LEN];
    let mut filled = 0;
    while filled < SALT_LEN {
        let rest = &mut salt[filled..];
        // SAFETY: the pointer and length describe the unfilled part of `salt`.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n > 0 {
            filled += n as usize;
        }
    }
    salt
}

/// Compares without leaking through timing where the first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hash of `guest` that RabbitMQ 3.10 exported for its default user.
    const RABBITMQ_GUEST: &str = "Sc/69FeR3s5ZdNjtxLgGvH9TErEsjruX5SpnNMMgmkNHSWwu";

    #[test]
    fn verifies_a_hash_exported_by_rabbitmq() {
        let hash = PasswordHash::from_definition("rabbit_password_hashing_sha256", RABBITMQ_GUEST)
            .unwrap();
        assert!(hash.verify("guest"));
        assert!(!hash.verify("Guest"));
        assert!(!hash.verify(""));
        assert_eq!(hash.to_base64(), RABBITMQ_GUEST);
    }

    #[test]
    fn fresh_hashes_are_salted_and_verify() {
        let (a, b) = (PasswordHash::new("s3cret"), PasswordHash::new("s3cret"));
        assert_ne!(a, b, "two hashes of one password differ by their salt");
        assert!(a.verify("s3cret") && b.verify("s3cret"));
        assert!(!a.verify("s3cre"));
        assert_eq!(a.to_base64().len(), 48, "4 + 32 bytes, as RabbitMQ's");
    }

    #[test]
    fn sha512_hashes_round_trip() {
        let hash = PasswordHash::with_salt(HashingAlgorithm::Sha512, [1, 2, 3, 4], "pw");
        let back =
            PasswordHash::from_definition("rabbit_password_hashing_sha512", &hash.to_base64())
                .unwrap();
        assert!(back.verify("pw"));
    }

    #[test]
    fn unknown_algorithms_and_bad_base64_are_refused() {
        assert!(PasswordHash::from_definition("rabbit_password_hashing_md5", "").is_err());
        assert!(PasswordHash::from_definition("rabbit_password_hashing_sha256", "!!").is_err());
    }

    #[test]
    fn an_empty_hash_never_verifies() {
        let hash = PasswordHash::from_definition("rabbit_password_hashing_sha256", "").unwrap();
        assert!(!hash.verify("anything"));
    }
}
