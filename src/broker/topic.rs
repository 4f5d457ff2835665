//! TEMPORARY STUB (replaced by the real trie).
use std::collections::HashSet;
#[derive(Debug)]
pub struct TopicIndex<D> {
    b: Vec<(String, D)>,
}
impl<D> Default for TopicIndex<D> {
    fn default() -> Self {
        TopicIndex { b: Vec::new() }
    }
}
impl<D: Clone + Eq + std::hash::Hash> TopicIndex<D> {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn bind(&mut self, p: &str, d: D) -> bool {
        if self.b.iter().any(|(x, y)| x == p && *y == d) {
            return false;
        }
        self.b.push((p.to_string(), d));
        true
    }
    pub fn unbind(&mut self, p: &str, d: &D) -> bool {
        let n = self.b.len();
        self.b.retain(|(x, y)| !(x == p && y == d));
        n != self.b.len()
    }
    pub fn route(&self, key: &str, out: &mut Vec<D>) {
        let mut seen = HashSet::new();
        for (p, d) in &self.b {
            if m(
                &p.split('.').collect::<Vec<_>>(),
                &key.split('.').collect::<Vec<_>>(),
            ) && seen.insert(d.clone())
            {
                out.push(d.clone());
            }
        }
    }
}
fn m(p: &[&str], k: &[&str]) -> bool {
    match p.first() {
        None => k.is_empty(),
        Some(&"#") => (0..=k.len()).any(|i| m(&p[1..], &k[i..])),
        Some(&"*") => !k.is_empty() && m(&p[1..], &k[1..]),
        Some(w) => k.first() == Some(w) && m(&p[1..], &k[1..]),
    }
}
