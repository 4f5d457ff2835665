//! Server-generated names: `amq.gen-…` queues and `amq.ctag-…` consumer tags.
//!
//! Like RabbitMQ, a prefix followed by 128 random bits in URL-safe base64.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

/// A fresh name `prefix-<22 base64url chars>`.
pub fn generate(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // Each RandomState is freshly seeded from the OS, so two hashes give 128 unpredictable bits.
    let half = |salt: u64| {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(n ^ salt);
        h.finish()
    };
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&half(0).to_le_bytes());
    bytes[8..].copy_from_slice(&half(u64::MAX).to_le_bytes());
    format!("{prefix}-{}", base64url(&bytes))
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len() * 4 / 3 + 2);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let v = u32::from_be_bytes([0, b[0], b[1], b[2]]);
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(v >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_have_the_prefix_and_differ() {
        let a = super::generate("amq.gen");
        let b = super::generate("amq.gen");
        assert!(a.starts_with("amq.gen-"));
        assert_eq!(a.len(), "amq.gen-".len() + 22);
        assert_ne!(a, b);
    }
}
