//! Topic-exchange binding index: a trie over the dot-separated words of
//! binding keys that finds every destination whose pattern matches a routing
//! key, with exactly the semantics of RabbitMQ 3.x (`rabbit_exchange_type_topic`
//! before 3.12, `rabbit_db_topic_exchange` since). A key is split on every
//! `.`, except that the empty key has no words at all (so `"a."` is
//! `["a", ""]` but `""` is `[]`); in a pattern, `*` matches exactly one word
//! (which may be empty) and `#` matches zero or more words; every other word,
//! including the empty word, matches only itself. Routing walks the trie once
//! per key with explicit (node, position) states and never revisits a state,
//! so its cost is bounded by the trie nodes reachable from the key, not by the
//! number of bindings, and patterns with many `#` cannot make it exponential.
//! RabbitMQ also tells bindings apart by their arguments, which do not affect
//! topic routing; this index keys on (pattern, destination) only, so a caller
//! holding two bindings that differ only in arguments unbinds here when the
//! last of them goes.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

/// Node id meaning "no such node"; node ids are `u32` to keep nodes small.
const NONE: u32 = u32::MAX;
/// The root node, reached by the empty pattern, always lives at index 0.
const ROOT: u32 = 0;
/// Collections at most this long are scanned linearly: cheaper than hashing
/// for the small fan-outs and binding counts that dominate real tries.
const SMALL: usize = 16;

/// Index of topic bindings (pattern → destinations) for one topic exchange.
#[derive(Debug, Clone)]
pub struct TopicIndex<D> {
    /// Arena of trie nodes; freed slots are recycled through `free`.
    nodes: Vec<Node<D>>,
    free: Vec<u32>,
    /// Which nodes hold a binding to each destination, so that deleting a
    /// queue costs its own bindings rather than a scan of the whole trie.
    by_dest: HashMap<D, SmallSet<u32>>,
    /// Number of (pattern, destination) bindings.
    len: usize,
}

#[derive(Debug, Clone)]
struct Node<D> {
    parent: u32,
    /// The edge from the parent, kept so pruning can unlink the node without
    /// searching the parent's children.
    label: Label,
    /// Children reached by a literal word.
    words: Children,
    /// Child reached by `*`, or `NONE`.
    star: u32,
    /// Child reached by `#`, or `NONE`.
    hash: u32,
    /// Destinations bound with the pattern that ends at this node.
    dests: SmallSet<D>,
}

#[derive(Debug, Clone)]
enum Label {
    /// The root, or a vacant slot.
    None,
    Star,
    Hash,
    Word(Box<str>),
}

/// Literal-word children: a short list for the common small fan-out, a hash
/// map (boxed, so leaves stay small) once there are many.
#[derive(Debug, Clone)]
enum Children {
    Few(Vec<(Box<str>, u32)>),
    #[allow(
        clippy::box_collection,
        reason = "boxing halves the enum, and most nodes never need the map"
    )]
    Many(Box<HashMap<Box<str>, u32>>),
}

/// A set that is a plain vector while small, so the typical node with one or
/// two destinations costs no hash table, and a hash set when large, so a
/// pattern bound by thousands of queues still binds and unbinds in O(1).
#[derive(Debug, Clone)]
enum SmallSet<T> {
    Few(Vec<T>),
    #[allow(
        clippy::box_collection,
        reason = "boxing halves the enum, and most nodes never need the set"
    )]
    Many(Box<HashSet<T>>),
}

impl<T: Eq + Hash> SmallSet<T> {
    fn new() -> Self {
        SmallSet::Few(Vec::new())
    }

    fn len(&self) -> usize {
        match self {
            SmallSet::Few(v) => v.len(),
            SmallSet::Many(s) => s.len(),
        }
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn insert(&mut self, item: T) -> bool {
        match self {
            SmallSet::Few(v) => {
                if v.contains(&item) {
                    return false;
                }
                if v.len() < SMALL {
                    v.push(item);
                } else {
                    let mut set: HashSet<T> = v.drain(..).collect();
                    set.insert(item);
                    *self = SmallSet::Many(Box::new(set));
                }
                true
            }
            SmallSet::Many(s) => s.insert(item),
        }
    }

    fn remove(&mut self, item: &T) -> bool {
        match self {
            SmallSet::Few(v) => match v.iter().position(|x| x == item) {
                Some(i) => {
                    v.swap_remove(i);
                    true
                }
                None => false,
            },
            SmallSet::Many(s) => {
                let removed = s.remove(item);
                // Shrink back once small again, so a burst of bindings does
                // not leave a hash set behind on a node that now holds one.
                if removed && s.len() <= SMALL / 2 {
                    *self = SmallSet::Few(s.drain().collect());
                }
                removed
            }
        }
    }

    fn iter(&self) -> SmallSetIter<'_, T> {
        match self {
            SmallSet::Few(v) => SmallSetIter::Few(v.iter()),
            SmallSet::Many(s) => SmallSetIter::Many(s.iter()),
        }
    }
}

enum SmallSetIter<'a, T> {
    Few(std::slice::Iter<'a, T>),
    Many(std::collections::hash_set::Iter<'a, T>),
}

impl<'a, T> Iterator for SmallSetIter<'a, T> {
    type Item = &'a T;

    fn next(&mut self) -> Option<&'a T> {
        match self {
            SmallSetIter::Few(it) => it.next(),
            SmallSetIter::Many(it) => it.next(),
        }
    }
}

impl Children {
    fn get(&self, word: &str) -> Option<u32> {
        match self {
            Children::Few(v) => v.iter().find(|(w, _)| &**w == word).map(|&(_, id)| id),
            Children::Many(m) => m.get(word).copied(),
        }
    }

    fn insert(&mut self, word: Box<str>, id: u32) {
        match self {
            Children::Few(v) if v.len() < SMALL => v.push((word, id)),
            Children::Few(v) => {
                let mut map: HashMap<Box<str>, u32> = v.drain(..).collect();
                map.insert(word, id);
                *self = Children::Many(Box::new(map));
            }
            Children::Many(m) => {
                m.insert(word, id);
            }
        }
    }

    fn remove(&mut self, word: &str) {
        match self {
            Children::Few(v) => {
                if let Some(i) = v.iter().position(|(w, _)| &**w == word) {
                    v.swap_remove(i);
                }
            }
            Children::Many(m) => {
                m.remove(word);
                if m.len() <= SMALL / 2 {
                    *self = Children::Few(m.drain().collect());
                }
            }
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Children::Few(v) => v.is_empty(),
            Children::Many(m) => m.is_empty(),
        }
    }
}

impl<D> Node<D> {
    fn new(parent: u32, label: Label) -> Self {
        Node {
            parent,
            label,
            words: Children::Few(Vec::new()),
            star: NONE,
            hash: NONE,
            dests: SmallSet::Few(Vec::new()),
        }
    }
}

/// Splits a binding or routing key into words as RabbitMQ's
/// `split_topic_key/1` does: on every `.`, except that `""` has no words.
fn split_words(key: &str) -> std::str::Split<'_, char> {
    let mut words = key.split('.');
    if key.is_empty() {
        // `"".split('.')` yields one empty word; RabbitMQ yields none.
        words.next();
    }
    words
}

/// The word starting at byte offset `pos` of `key` and the offset of the word
/// after it, where `key.len() + 1` means "no words left". Routing works on
/// offsets rather than a split-up vector so it never allocates per word, and
/// the sentinel keeps "one empty word left" (offset `key.len()`, as after
/// `"a."`) distinct from "no words left".
fn next_word(key: &str, pos: usize) -> (&str, usize) {
    let rest = &key[pos..];
    match rest.bytes().position(|b| b == b'.') {
        Some(i) => (&rest[..i], pos + i + 1),
        None => (rest, key.len() + 1),
    }
}

/// Per-call record of the lowest key position from which each `#` node has
/// already been expanded. A `#` node entered at position `p` is expanded at
/// every position from `p` to the end, so a later entry at `q >= p` adds
/// nothing and one at `q < p` only needs positions `q..p`; this is what keeps
/// patterns such as `#.#.#.#` linear instead of exponential in the key length.
struct Watermarks {
    entries: Vec<(u32, usize)>,
}

impl Watermarks {
    fn get(&self, node: u32) -> usize {
        self.entries
            .iter()
            .find(|&&(n, _)| n == node)
            .map_or(usize::MAX, |&(_, low)| low)
    }

    fn set(&mut self, node: u32, low: usize) {
        match self.entries.iter_mut().find(|(n, _)| *n == node) {
            Some(entry) => entry.1 = low,
            None => self.entries.push((node, low)),
        }
    }
}

impl<D> Default for TopicIndex<D> {
    fn default() -> Self {
        TopicIndex {
            nodes: vec![Node::new(NONE, Label::None)],
            free: Vec::new(),
            by_dest: HashMap::new(),
            len: 0,
        }
    }
}

impl<D: Clone + Eq + Hash> TopicIndex<D> {
    /// Creates an empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a binding; returns false if it was already there.
    pub fn bind(&mut self, pattern: &str, dest: D) -> bool {
        let mut node = ROOT;
        for word in split_words(pattern) {
            node = self.child_or_insert(node, word);
        }
        if !self.nodes[node as usize].dests.insert(dest.clone()) {
            return false;
        }
        self.by_dest
            .entry(dest)
            .or_insert_with(SmallSet::new)
            .insert(node);
        self.len += 1;
        true
    }

    /// Removes a binding; returns false if it was not there. Prunes empty trie nodes.
    pub fn unbind(&mut self, pattern: &str, dest: &D) -> bool {
        let Some(node) = self.find(pattern) else {
            return false;
        };
        if !self.nodes[node as usize].dests.remove(dest) {
            return false;
        }
        if let Some(nodes) = self.by_dest.get_mut(dest) {
            nodes.remove(&node);
            if nodes.is_empty() {
                self.by_dest.remove(dest);
            }
        }
        self.len -= 1;
        self.prune(node);
        true
    }

    /// Appends every destination whose pattern matches `routing_key` to `out`, each at most once.
    ///
    /// Only the destinations appended by this call are deduplicated; whatever
    /// `out` already held is left as it was.
    pub fn route(&self, routing_key: &str, out: &mut Vec<D>) {
        self.route_counting(routing_key, out);
    }

    /// Removes every binding to `dest` (used when a queue is deleted).
    pub fn remove_destination(&mut self, dest: &D) {
        let Some(nodes) = self.by_dest.remove(dest) else {
            return;
        };
        for &node in nodes.iter() {
            self.nodes[node as usize].dests.remove(dest);
            self.len -= 1;
            // A node still holding another binding of `dest` is never pruned
            // here (it is not empty), so the ids still to visit stay valid.
            self.prune(node);
        }
    }

    /// Whether the index holds no bindings.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of (pattern, destination) bindings in the index.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Routes like [`TopicIndex::route`] and returns how many (node, position)
    /// states were processed, which tests use to prove the walk stays bounded.
    fn route_counting(&self, key: &str, out: &mut Vec<D>) -> usize {
        if self.len == 0 {
            return 0;
        }
        let start = out.len();
        let end = key.len() + 1;
        let first = if key.is_empty() { end } else { 0 };
        let mut stack: Vec<(u32, usize)> = Vec::with_capacity(16);
        let mut marks = Watermarks {
            entries: Vec::new(),
        };
        let mut matched_nodes = 0usize;
        let mut states = 0usize;
        stack.push((ROOT, first));
        while let Some((id, pos)) = stack.pop() {
            states += 1;
            let node = &self.nodes[id as usize];
            if pos == end {
                // Every node reaches its end state at most once (see
                // `Watermarks`), so each node's destinations are added once.
                if !node.dests.is_empty() {
                    matched_nodes += 1;
                    out.extend(node.dests.iter().cloned());
                }
            } else {
                let (word, next) = next_word(key, pos);
                if let Some(child) = node.words.get(word) {
                    stack.push((child, next));
                }
                if node.star != NONE {
                    stack.push((node.star, next));
                }
            }
            if node.hash != NONE {
                // `#` swallows zero or more words: continue from its node at
                // this position and at every later one.
                let low = marks.get(node.hash);
                if pos < low {
                    let mut p = pos;
                    loop {
                        stack.push((node.hash, p));
                        if p == end {
                            break;
                        }
                        p = next_word(key, p).1;
                        if p >= low {
                            break;
                        }
                    }
                    marks.set(node.hash, pos);
                }
            }
        }
        // One node's destinations are distinct already; duplicates can only
        // come from one destination bound under several matching patterns.
        if matched_nodes > 1 {
            dedup_tail(out, start);
        }
        states
    }

    fn find(&self, pattern: &str) -> Option<u32> {
        let mut node = ROOT;
        for word in split_words(pattern) {
            let n = &self.nodes[node as usize];
            node = match word {
                "*" => n.star,
                "#" => n.hash,
                _ => n.words.get(word).unwrap_or(NONE),
            };
            if node == NONE {
                return None;
            }
        }
        Some(node)
    }

    fn child_or_insert(&mut self, parent: u32, word: &str) -> u32 {
        let p = &self.nodes[parent as usize];
        let existing = match word {
            "*" => p.star,
            "#" => p.hash,
            _ => p.words.get(word).unwrap_or(NONE),
        };
        if existing != NONE {
            return existing;
        }
        let label = match word {
            "*" => Label::Star,
            "#" => Label::Hash,
            _ => Label::Word(word.into()),
        };
        let child = self.alloc(Node::new(parent, label));
        let p = &mut self.nodes[parent as usize];
        match word {
            "*" => p.star = child,
            "#" => p.hash = child,
            _ => p.words.insert(word.into(), child),
        }
        child
    }

    fn alloc(&mut self, node: Node<D>) -> u32 {
        match self.free.pop() {
            Some(id) => {
                self.nodes[id as usize] = node;
                id
            }
            None => {
                let id = u32::try_from(self.nodes.len())
                    .ok()
                    .filter(|&id| id != NONE)
                    .expect("topic index exceeds u32::MAX - 1 trie nodes");
                self.nodes.push(node);
                id
            }
        }
    }

    /// Unlinks `id` and then each ancestor that is left with neither
    /// bindings nor children, as RabbitMQ's `remove_path_if_empty` does, so
    /// the trie never grows with bindings that are gone.
    fn prune(&mut self, mut id: u32) {
        while id != ROOT {
            let node = &self.nodes[id as usize];
            if !node.dests.is_empty()
                || !node.words.is_empty()
                || node.star != NONE
                || node.hash != NONE
            {
                return;
            }
            let parent = node.parent;
            // Replacing the slot drops the node's label and empty collections.
            let vacant =
                std::mem::replace(&mut self.nodes[id as usize], Node::new(NONE, Label::None));
            let p = &mut self.nodes[parent as usize];
            match vacant.label {
                Label::Star => p.star = NONE,
                Label::Hash => p.hash = NONE,
                Label::Word(word) => p.words.remove(&word),
                Label::None => unreachable!("only the root has no label"),
            }
            self.free.push(id);
            id = parent;
        }
    }
}

/// Removes duplicates from `out[start..]`, keeping first occurrences.
fn dedup_tail<D: Clone + Eq + Hash>(out: &mut Vec<D>, start: usize) {
    if out.len() - start <= 2 * SMALL {
        // Quadratic, but on a handful of items it beats building a hash set.
        let mut kept = start;
        for i in start..out.len() {
            if !out[start..kept].contains(&out[i]) {
                out.swap(kept, i);
                kept += 1;
            }
        }
        out.truncate(kept);
    } else {
        let tail = out.split_off(start);
        let mut seen: HashSet<&D> = HashSet::with_capacity(tail.len());
        for d in &tail {
            if seen.insert(d) {
                out.push(d.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference matcher: a direct transcription of RabbitMQ's `trie_match`
    /// on word lists, used to check the trie on every small pattern and key.
    fn naive_match(pattern: &[&str], key: &[&str]) -> bool {
        match pattern.split_first() {
            None => key.is_empty(),
            Some((&"#", rest)) => (0..=key.len()).any(|i| naive_match(rest, &key[i..])),
            Some((&"*", rest)) => !key.is_empty() && naive_match(rest, &key[1..]),
            Some((word, rest)) => key.first() == Some(word) && naive_match(rest, &key[1..]),
        }
    }

    fn naive(pattern: &str, key: &str) -> bool {
        let p: Vec<&str> = split_words(pattern).collect();
        let k: Vec<&str> = split_words(key).collect();
        naive_match(&p, &k)
    }

    fn routed<D: Clone + Eq + Hash + Ord>(index: &TopicIndex<D>, key: &str) -> Vec<D> {
        let mut out = Vec::new();
        index.route(key, &mut out);
        let n = out.len();
        out.sort();
        out.dedup();
        assert_eq!(n, out.len(), "route returned duplicates for {key:?}");
        out
    }

    fn single(pattern: &str, key: &str) -> bool {
        let mut index = TopicIndex::new();
        index.bind(pattern, 1u32);
        !routed(&index, key).is_empty()
    }

    /// Every combination of `alphabet` words, 0 to `max` words long, as
    /// distinct dotted strings.
    fn combos(alphabet: &[&str], max: usize) -> Vec<String> {
        let mut all: Vec<String> = Vec::new();
        let mut level: Vec<Vec<&str>> = vec![vec![]];
        for _ in 0..=max {
            let mut next = Vec::new();
            for words in &level {
                let s = words.join(".");
                if !all.contains(&s) {
                    all.push(s);
                }
                for w in alphabet {
                    let mut longer = words.clone();
                    longer.push(w);
                    next.push(longer);
                }
            }
            level = next;
        }
        all
    }

    #[test]
    fn splitting_matches_rabbitmq_split_topic_key() {
        // rabbit_exchange_type_topic:split_topic_key/1 (3.10.8): <<>> -> [],
        // every '.' separates words, so leading/trailing dots give empty words.
        fn split(s: &str) -> Vec<&str> {
            split_words(s).collect()
        }
        assert_eq!(split(""), Vec::<&str>::new());
        assert_eq!(split("a"), ["a"]);
        assert_eq!(split("a."), ["a", ""]);
        assert_eq!(split(".a"), ["", "a"]);
        assert_eq!(split("."), ["", ""]);
        assert_eq!(split("a..b"), ["a", "", "b"]);
    }

    #[test]
    fn next_word_walks_offsets_like_split() {
        for key in ["", "a", "a.", ".", "..", "a..b", "abc.de.f", "é.ü"] {
            let mut got = Vec::new();
            let end = key.len() + 1;
            let mut pos = if key.is_empty() { end } else { 0 };
            while pos != end {
                let (w, next) = next_word(key, pos);
                got.push(w);
                pos = next;
            }
            assert_eq!(got, split_words(key).collect::<Vec<_>>(), "{key:?}");
        }
    }

    /// The binding set and expectations of RabbitMQ's own topic test,
    /// `topic_matching1` in deps/rabbit/test/unit_access_control_SUITE.erl
    /// (3.10.8; `topic1` in routing_SUITE.erl on main).
    fn rabbitmq_suite_bindings() -> Vec<(&'static str, &'static str)> {
        vec![
            ("a.b.c", "t1"),
            ("a.*.c", "t2"),
            ("a.#.b", "t3"),
            ("a.b.b.c", "t4"),
            ("#", "t5"),
            ("#.#", "t6"),
            ("#.b", "t7"),
            ("*.*", "t8"),
            ("a.*", "t9"),
            ("*.b.c", "t10"),
            ("a.#", "t11"),
            ("a.#.#", "t12"),
            ("b.b.c", "t13"),
            ("a.b.b", "t14"),
            ("a.b", "t15"),
            ("b.c", "t16"),
            ("", "t17"),
            ("*.*.*", "t18"),
            ("vodka.martini", "t19"),
            ("a.b.c", "t20"),
            ("*.#", "t21"),
            ("#.*.#", "t22"),
            ("*.#.#", "t23"),
            ("#.#.#", "t24"),
            ("*", "t25"),
            ("#.b.#", "t26"),
            ("args-test", "t27"),
        ]
    }

    fn expect(index: &TopicIndex<&'static str>, cases: &[(&str, &[&'static str])]) {
        for (key, expected) in cases {
            let mut want = expected.to_vec();
            want.sort();
            assert_eq!(routed(index, key), want, "routing key {key:?}");
        }
    }

    #[test]
    fn rabbitmq_topic_matching_suite() {
        let mut index = TopicIndex::new();
        for (pattern, q) in rabbitmq_suite_bindings() {
            assert!(index.bind(pattern, q));
        }
        expect(
            &index,
            &[
                (
                    "a.b.c",
                    &[
                        "t1", "t2", "t5", "t6", "t10", "t11", "t12", "t18", "t20", "t21", "t22",
                        "t23", "t24", "t26",
                    ],
                ),
                (
                    "a.b",
                    &[
                        "t3", "t5", "t6", "t7", "t8", "t9", "t11", "t12", "t15", "t21", "t22",
                        "t23", "t24", "t26",
                    ],
                ),
                (
                    "a.b.b",
                    &[
                        "t3", "t5", "t6", "t7", "t11", "t12", "t14", "t18", "t21", "t22", "t23",
                        "t24", "t26",
                    ],
                ),
                ("", &["t5", "t6", "t17", "t24"]),
                (
                    "b.c.c",
                    &["t5", "t6", "t18", "t21", "t22", "t23", "t24", "t26"],
                ),
                (
                    "a.a.a.a.a",
                    &["t5", "t6", "t11", "t12", "t21", "t22", "t23", "t24"],
                ),
                ("vodka.gin", &["t5", "t6", "t8", "t21", "t22", "t23", "t24"]),
                (
                    "vodka.martini",
                    &["t5", "t6", "t8", "t19", "t21", "t22", "t23", "t24"],
                ),
                (
                    "b.b.c",
                    &[
                        "t5", "t6", "t10", "t13", "t18", "t21", "t22", "t23", "t24", "t26",
                    ],
                ),
                (
                    "nothing.here.at.all",
                    &["t5", "t6", "t21", "t22", "t23", "t24"],
                ),
                ("oneword", &["t5", "t6", "t21", "t22", "t23", "t24", "t25"]),
                (
                    "args-test",
                    &["t5", "t6", "t21", "t22", "t23", "t24", "t25", "t27"],
                ),
            ],
        );

        // The suite then removes bindings 1, 5, 11, 19 and 21 (its 28th, an
        // alias of "args-test" -> t27 with other arguments, is a separate
        // RabbitMQ binding; this index keys bindings on pattern and
        // destination only, so the caller keeps such aliases counted).
        for (pattern, q) in [
            ("a.b.c", "t1"),
            ("#", "t5"),
            ("a.#", "t11"),
            ("vodka.martini", "t19"),
            ("*.#", "t21"),
        ] {
            assert!(index.unbind(pattern, &q), "{pattern} -> {q}");
        }
        expect(
            &index,
            &[
                (
                    "a.b.c",
                    &[
                        "t2", "t6", "t10", "t12", "t18", "t20", "t22", "t23", "t24", "t26",
                    ],
                ),
                (
                    "a.b",
                    &[
                        "t3", "t6", "t7", "t8", "t9", "t12", "t15", "t22", "t23", "t24", "t26",
                    ],
                ),
                (
                    "a.b.b",
                    &[
                        "t3", "t6", "t7", "t12", "t14", "t18", "t22", "t23", "t24", "t26",
                    ],
                ),
                ("", &["t6", "t17", "t24"]),
                ("b.c.c", &["t6", "t18", "t22", "t23", "t24", "t26"]),
                ("a.a.a.a.a", &["t6", "t12", "t22", "t23", "t24"]),
                ("vodka.gin", &["t6", "t8", "t22", "t23", "t24"]),
                ("vodka.martini", &["t6", "t8", "t22", "t23", "t24"]),
                (
                    "b.b.c",
                    &["t6", "t10", "t13", "t18", "t22", "t23", "t24", "t26"],
                ),
                ("nothing.here.at.all", &["t6", "t22", "t23", "t24"]),
                ("oneword", &["t6", "t22", "t23", "t24", "t25"]),
                ("args-test", &["t6", "t22", "t23", "t24", "t25", "t27"]),
            ],
        );

        // Deleting the exchange: nothing matches any more.
        for (pattern, q) in rabbitmq_suite_bindings() {
            index.unbind(pattern, &q);
        }
        assert!(index.is_empty());
        expect(&index, &[("a.b.c", &[]), ("b.b.c", &[]), ("", &[])]);
        assert_eq!(index.nodes.len() - index.free.len(), 1, "trie fully pruned");
    }

    // The single-pattern cases below were all checked against a live
    // RabbitMQ 3.10.8 (one queue per pattern on a topic exchange).

    #[test]
    fn empty_routing_key_has_no_words() {
        assert!(single("", ""));
        assert!(single("#", ""));
        assert!(single("#.#", ""));
        assert!(!single("*", ""));
        assert!(!single("*.#", ""));
        assert!(!single("#.*", ""));
        assert!(!single(".", ""));
        assert!(!single("a", ""));
    }

    #[test]
    fn empty_pattern_matches_only_empty_key() {
        assert!(single("", ""));
        for key in [".", "a", "a.", ".a", "*", "#"] {
            assert!(!single("", key), "{key:?}");
        }
    }

    #[test]
    fn hash_matches_everything() {
        for key in [
            "",
            ".",
            "..",
            "a",
            "a.b",
            "a.",
            ".a",
            "*",
            "#",
            "a..b.c.d.e",
        ] {
            assert!(single("#", key), "{key:?}");
            assert!(single("#.#", key), "{key:?}");
        }
    }

    #[test]
    fn star_matches_exactly_one_possibly_empty_word() {
        assert!(single("*", "a"));
        assert!(single("*", "*"));
        assert!(single("*", "#"));
        assert!(!single("*", ""), "\"\" has no words");
        assert!(!single("*", "."), "\".\" has two empty words");
        assert!(single("*.*", "."));
        assert!(single("*.*", "a."));
        assert!(single("*.*", ".a"));
        assert!(!single("*.*", "a"));
        assert!(single("a.*.b", "a..b"));
        assert!(!single("a.*", "a"));
        assert!(single("a.*", "a."));
        assert!(!single("a.*", "a.b.c"));
    }

    #[test]
    fn hash_matches_zero_or_more_words() {
        assert!(single("a.#", "a"));
        assert!(single("a.#", "a."));
        assert!(single("a.#", "a.b.c"));
        assert!(!single("a.#", "b"));
        assert!(!single("a.#", ""));
        assert!(single("#.a", "a"));
        assert!(single("#.a", "x.y.a"));
        assert!(!single("#.a", "a.x"));
        assert!(single("a.#.b", "a.b"));
        assert!(single("a.#.b", "a.x.y.b"));
        assert!(single("#.b.#", "b"));
        assert!(single("#.*.#", "x"));
        assert!(!single("#.*.#", ""));
        assert!(single("*.#.*", "a.b"));
        assert!(!single("*.#.*", "a"));
    }

    #[test]
    fn empty_words_are_ordinary_words() {
        assert!(single("a..b", "a..b"));
        assert!(!single("a..b", "a.b"));
        assert!(single(".", "."));
        assert!(!single(".", ""));
        assert!(!single(".", "a"));
        assert!(single("a.", "a."));
        assert!(!single("a.", "a"));
        assert!(single(".a", ".a"));
        assert!(single("#.", "."));
        assert!(single("#.", "a."));
        assert!(!single("#.", "a"));
        assert!(single("a.#.", "a."));
        assert!(single("..", ".."));
    }

    #[test]
    fn wildcard_characters_inside_words_are_literal() {
        assert!(single("a*", "a*"));
        assert!(!single("a*", "ab"));
        assert!(single("##", "##"));
        assert!(!single("##", "a"));
        assert!(!single("a#", "a"));
        assert!(single("*a", "*a"));
        assert!(!single("*a", "ba"));
    }

    #[test]
    fn literal_wildcards_in_routing_keys_match_only_as_words() {
        // RabbitMQ looks a key word up as an edge label, so the key word "*"
        // follows the pattern's `*` edge: it matches "*" patterns only.
        assert!(single("*", "*"));
        assert!(!single("a", "*"));
        assert!(!single("a", "#"));
        assert!(single("#", "#"));
        assert!(single("*", "#"));
        assert!(!single("a.b", "a.#"));
        assert!(!single("a.b", "*.b"));
    }

    #[test]
    fn words_are_case_sensitive_and_utf8_safe() {
        assert!(!single("A", "a"));
        assert!(single("é.*", "é.ü"));
        assert!(single("*.ü", "é.ü"));
        assert!(!single("é", "e"));
    }

    #[test]
    fn trie_agrees_with_reference_on_all_small_patterns_and_keys() {
        let alphabet = ["a", "b", "", "*", "#"];
        let patterns = combos(&alphabet, 4);
        let keys = combos(&alphabet, 5);
        let mut index = TopicIndex::new();
        for (i, p) in patterns.iter().enumerate() {
            assert!(index.bind(p, i));
        }
        assert_eq!(index.len(), patterns.len());
        for key in &keys {
            let want: Vec<usize> = (0..patterns.len())
                .filter(|&i| naive(&patterns[i], key))
                .collect();
            assert_eq!(routed(&index, key), want, "routing key {key:?}");
        }
    }

    #[test]
    fn trie_agrees_with_reference_under_random_churn() {
        // Deterministic xorshift so failures reproduce.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rand = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let words = ["a", "b", "c", "", "*", "#"];
        let make_key = |rand: &mut dyn FnMut(usize) -> usize, wildcards: bool| {
            let n = rand(6);
            (0..n)
                .map(|_| words[rand(if wildcards { 6 } else { 4 })])
                .collect::<Vec<_>>()
                .join(".")
        };
        let mut index = TopicIndex::new();
        let mut model: HashSet<(String, u8)> = HashSet::new();
        for round in 0..3000 {
            let pattern = make_key(&mut rand, true);
            let dest = rand(5) as u8;
            match rand(4) {
                0 | 1 => {
                    let fresh = model.insert((pattern.clone(), dest));
                    assert_eq!(index.bind(&pattern, dest), fresh);
                }
                2 => {
                    let present = model.remove(&(pattern.clone(), dest));
                    assert_eq!(index.unbind(&pattern, &dest), present);
                }
                _ if round % 50 == 0 => {
                    index.remove_destination(&dest);
                    model.retain(|(_, d)| *d != dest);
                }
                _ => {}
            }
            assert_eq!(index.len(), model.len());
            let key = make_key(&mut rand, false);
            let mut want: Vec<u8> = model
                .iter()
                .filter(|(p, _)| naive(p, &key))
                .map(|&(_, d)| d)
                .collect();
            want.sort();
            want.dedup();
            assert_eq!(routed(&index, &key), want, "round {round} key {key:?}");
        }
        for (p, d) in model.clone() {
            assert!(index.unbind(&p, &d));
        }
        assert!(index.is_empty());
        assert_eq!(index.nodes.len() - index.free.len(), 1, "trie fully pruned");
    }

    #[test]
    fn bind_reports_duplicates_and_unbind_reports_absence() {
        let mut index = TopicIndex::new();
        assert!(index.is_empty());
        assert!(index.bind("a.*", "q1"));
        assert!(!index.bind("a.*", "q1"));
        assert!(index.bind("a.*", "q2"));
        assert!(index.bind("a.#", "q1"));
        assert_eq!(index.len(), 3);
        assert!(!index.unbind("a.*", &"q3"));
        assert!(!index.unbind("a.b", &"q1"));
        assert!(!index.unbind("a", &"q1"), "a prefix node is not a binding");
        assert!(index.unbind("a.*", &"q1"));
        assert!(!index.unbind("a.*", &"q1"));
        assert_eq!(routed(&index, "a.x"), ["q1", "q2"]);
        assert!(index.unbind("a.*", &"q2"));
        assert!(index.unbind("a.#", &"q1"));
        assert!(index.is_empty());
        assert_eq!(routed(&index, "a.x"), Vec::<&str>::new());
    }

    #[test]
    fn unbinding_prunes_only_empty_nodes() {
        let mut index = TopicIndex::new();
        index.bind("a.b.c", 1);
        index.bind("a.b", 2);
        index.bind("a.*.#", 3);
        let live = |i: &TopicIndex<i32>| i.nodes.len() - i.free.len();
        assert_eq!(live(&index), 6); // root, a, b, c, *, #
        index.unbind("a.b.c", &1);
        assert_eq!(live(&index), 5, "c pruned, b kept for binding 2");
        index.unbind("a.*.#", &3);
        assert_eq!(live(&index), 3, "* and # pruned");
        index.unbind("a.b", &2);
        assert_eq!(live(&index), 1, "only the root is left");
        // Freed slots are reused.
        index.bind("x.y.z", 4);
        assert_eq!(index.nodes.len(), 6);
        assert_eq!(routed(&index, "x.y.z"), [4]);
    }

    #[test]
    fn remove_destination_removes_all_its_bindings_only() {
        let mut index = TopicIndex::new();
        for p in ["#", "a.*", "a.b", "", "*.b.#"] {
            index.bind(p, "gone");
            index.bind(p, "kept");
        }
        index.bind("only.gone", "gone");
        assert_eq!(index.len(), 11);
        index.remove_destination(&"gone");
        assert_eq!(index.len(), 5);
        assert_eq!(routed(&index, "a.b"), ["kept"]);
        assert_eq!(routed(&index, "only.gone"), ["kept"]);
        assert_eq!(routed(&index, ""), ["kept"]);
        index.remove_destination(&"gone"); // unknown now: no-op
        index.remove_destination(&"kept");
        assert!(index.is_empty());
        assert_eq!(index.nodes.len() - index.free.len(), 1);
        assert!(index.by_dest.is_empty());
    }

    #[test]
    fn destination_bound_by_many_matching_patterns_is_routed_once() {
        let mut index = TopicIndex::new();
        for p in [
            "#", "#.#", "a.#", "*.b", "a.b", "a.*", "#.b", "*.*", "#.*.#",
        ] {
            index.bind(p, "q");
        }
        index.bind("a.b", "r");
        assert_eq!(routed(&index, "a.b"), ["q", "r"]);
        // Many destinations on many nodes exercises the hash-set dedup path.
        let mut big = TopicIndex::new();
        for d in 0..100u32 {
            for p in ["#", "a.#", "a.b", "*.*"] {
                big.bind(p, d);
            }
        }
        assert_eq!(routed(&big, "a.b"), (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn route_appends_and_leaves_existing_contents_alone() {
        let mut index = TopicIndex::new();
        index.bind("#", 7);
        index.bind("a", 7);
        let mut out = vec![7, 7];
        index.route("a", &mut out);
        assert_eq!(out, [7, 7, 7]);
    }

    #[test]
    fn many_destinations_on_one_pattern_switch_to_hash_sets() {
        let mut index = TopicIndex::new();
        for d in 0..1000u32 {
            assert!(index.bind("a.*", d));
            assert!(!index.bind("a.*", d));
        }
        assert!(matches!(
            index.nodes[index.find("a.*").unwrap() as usize].dests,
            SmallSet::Many(_)
        ));
        assert_eq!(routed(&index, "a.z").len(), 1000);
        for d in 0..995u32 {
            assert!(index.unbind("a.*", &d));
        }
        assert!(matches!(
            index.nodes[index.find("a.*").unwrap() as usize].dests,
            SmallSet::Few(_)
        ));
        assert_eq!(routed(&index, "a.z"), [995, 996, 997, 998, 999]);
    }

    #[test]
    fn wide_fan_out_switches_children_to_a_map_and_back() {
        let mut index = TopicIndex::new();
        for i in 0..1000 {
            index.bind(&format!("w{i}.x"), i);
        }
        assert!(matches!(index.nodes[0].words, Children::Many(_)));
        assert_eq!(routed(&index, "w500.x"), [500]);
        assert_eq!(routed(&index, "w500"), Vec::<i32>::new());
        for i in 0..1000 {
            assert!(index.unbind(&format!("w{i}.x"), &i));
        }
        assert!(matches!(index.nodes[0].words, Children::Few(_)));
        assert!(index.nodes[0].words.is_empty());
    }

    #[test]
    fn many_hashes_stay_polynomial() {
        // RabbitMQ's own walk is exponential here; the watermarks make each
        // (node, position) state run once, so states <= nodes * (words + 1).
        let mut index = TopicIndex::new();
        let pattern = vec!["#"; 20].join(".") + ".z";
        index.bind(&pattern, 1);
        let key = vec!["w"; 200].join(".");
        let mut out = Vec::new();
        let states = index.route_counting(&key, &mut out);
        assert!(out.is_empty());
        assert!(states <= 22 * 201, "{states} states");
        let key_z = key + ".z";
        let states = index.route_counting(&key_z, &mut out);
        assert_eq!(out, [1]);
        assert!(states <= 22 * 202, "{states} states");
    }

    #[test]
    fn star_hash_mixtures_stay_polynomial() {
        let mut index = TopicIndex::new();
        for (i, p) in ["#.*.#.*.#.*.#", "*.#.*.#.*.#.*", "#.a.#.a.#.a.#.b"]
            .into_iter()
            .enumerate()
        {
            index.bind(p, i);
        }
        let key = vec!["a"; 120].join(".");
        let mut out = Vec::new();
        let states = index.route_counting(&key, &mut out);
        out.sort();
        assert_eq!(out, [0, 1]);
        let nodes = index.nodes.len() - index.free.len();
        assert!(states <= nodes * 121, "{states} states for {nodes} nodes");
    }

    #[test]
    fn routing_cost_does_not_grow_with_unrelated_bindings() {
        let mut index = TopicIndex::new();
        for i in 0..20_000u32 {
            index.bind(&format!("stock.s{i}.nyse"), i);
        }
        index.bind("stock.*.nyse", 100_000);
        index.bind("stock.#", 100_001);
        let mut out = Vec::new();
        let states = index.route_counting("stock.s42.nyse", &mut out);
        out.sort();
        assert_eq!(out, [42, 100_000, 100_001]);
        assert!(states <= 12, "{states} states");
    }

    #[test]
    fn default_and_generic_destinations() {
        let mut index: TopicIndex<String> = TopicIndex::default();
        assert!(index.is_empty());
        index.bind("logs.#", "audit".to_string());
        assert_eq!(routed(&index, "logs.error.db"), ["audit".to_string()]);
        let copy = index.clone();
        index.remove_destination(&"audit".to_string());
        assert!(index.is_empty());
        assert_eq!(copy.len(), 1);
    }

    /// Routing among 1,000,000 bindings must take well under 5 µs. Run with
    /// `cargo test --release -- --ignored --nocapture`.
    #[test]
    #[ignore = "benchmark; run in release mode"]
    fn million_bindings_route_fast() {
        use std::time::Instant;
        let mut index = TopicIndex::new();
        let t = Instant::now();
        let mut n = 0u32;
        // Mostly literal keys with shared prefixes, plus a mix of wildcards.
        for region in 0..100 {
            for svc in 0..100 {
                for lvl in 0..90 {
                    index.bind(&format!("r{region}.svc{svc}.l{lvl}"), n);
                    n += 1;
                }
                index.bind(&format!("r{region}.svc{svc}.*"), n);
                index.bind(&format!("r{region}.svc{svc}.#"), n + 1);
                index.bind(&format!("*.svc{svc}.l{region}"), n + 2);
                index.bind(&format!("#.l{svc}.x{region}"), n + 3);
                index.bind(&format!("r{region}.#.l{svc}"), n + 4);
                n += 5;
                for extra in 0..5 {
                    index.bind(&format!("r{region}.svc{svc}.l{extra}.e{extra}"), n);
                    n += 1;
                }
            }
        }
        println!("bound {} bindings in {:?}", index.len(), t.elapsed());
        assert!(index.len() >= 1_000_000);
        let keys = [
            "r42.svc17.l3",
            "r99.svc0.l89",
            "r1.svc2.l3.e3",
            "nomatch.at.all",
            "r5.svc5.l5.x5",
            "r7.a.b.c.d.e.f.l9",
        ];
        let mut out = Vec::with_capacity(64);
        let iterations = 200_000;
        for key in keys {
            out.clear();
            index.route(key, &mut out);
            let found = out.len();
            let t = Instant::now();
            for _ in 0..iterations {
                out.clear();
                index.route(std::hint::black_box(key), &mut out);
            }
            let per = t.elapsed() / iterations;
            println!("{key:>22}: {found} destinations, {per:?} per route");
            assert!(per.as_nanos() < 5_000, "{key}: {per:?}");
        }
    }
}
