//! The context memory behind [`super::ContextDetector`]: fact sets (halves), the contexts that
//! join a left half to a right half with their track record, and one learning step.

use std::collections::HashMap;

/// Neuron facts ("context c fired") are told apart from sensor facts by this bit.
const NEURON: u32 = 1 << 31;

/// One half of a context: a set of facts, and how many of them the latest input contained.
#[derive(Clone, Debug)]
struct Half {
    facts: Vec<u32>,
    /// How many of `facts` the latest crossed input contained.
    matched: usize,
    /// For a left half: the contexts it opens, as (right half, context) in creation order.
    contexts: Vec<(usize, usize)>,
}

impl Half {
    fn fully_matched(&self) -> bool {
        self.matched == self.facts.len()
    }

    /// The facts shared with `input` (sorted, as all fact lists are).
    fn overlap(&self, input: &[u32]) -> Vec<u32> {
        self.facts
            .iter()
            .copied()
            .filter(|f| input.binary_search(f).is_ok())
            .collect()
    }
}

#[derive(Clone, Debug, Default)]
struct Context {
    right: usize,
    /// Right facts expected over all the times the left half fully matched.
    expected: u64,
    /// Of those, right facts that came true.
    came_true: u64,
    /// Times every right fact came true.
    fired: u64,
    /// A stored (previous facts, sensor facts) pair rather than a grown sub-context: only these
    /// spawn sub-contexts.
    zero_level: bool,
}

impl Context {
    fn reliability(&self) -> f64 {
        if self.expected > 0 {
            self.came_true as f64 / self.expected as f64
        } else {
            0.0
        }
    }
}

/// Left or right halves, indexed by fact set and by fact.
#[derive(Clone, Debug, Default)]
struct Halves {
    all: Vec<Half>,
    by_set: HashMap<Vec<u32>, usize>,
    by_fact: HashMap<u32, Vec<usize>>,
    /// Halves with at least one fact in the latest input, in index order.
    touched: Vec<usize>,
}

impl Halves {
    fn get_or_insert(&mut self, facts: &[u32]) -> usize {
        if let Some(&i) = self.by_set.get(facts) {
            return i;
        }
        let i = self.all.len();
        for &f in facts {
            self.by_fact.entry(f).or_default().push(i);
        }
        self.by_set.insert(facts.to_vec(), i);
        self.all.push(Half {
            facts: facts.to_vec(),
            matched: 0,
            contexts: Vec::new(),
        });
        i
    }

    /// Records, for every half, which of `input`'s facts it contains.
    fn cross(&mut self, input: &[u32]) {
        for &i in &self.touched {
            self.all[i].matched = 0;
        }
        self.touched.clear();
        for &f in input {
            if let Some(halves) = self.by_fact.get(&f) {
                for &i in halves {
                    if self.all[i].matched == 0 {
                        self.touched.push(i);
                    }
                    self.all[i].matched += 1;
                }
            }
        }
    }
}

/// Fact sets seen in one step, by small id.
#[derive(Default)]
struct Interner {
    sets: Vec<Vec<u32>>,
    ids: HashMap<Vec<u32>, u32>,
}

impl Interner {
    fn id(&mut self, facts: &[u32]) -> u32 {
        if let Some(&i) = self.ids.get(facts) {
            return i;
        }
        let i = self.sets.len() as u32;
        self.sets.push(facts.to_vec());
        self.ids.insert(facts.to_vec(), i);
        i
    }

    fn get(&self, id: u32) -> &[u32] {
        &self.sets[id as usize]
    }
}

/// The context memory and the last step's state.
#[derive(Clone, Debug, Default)]
pub(super) struct Memory {
    left: Halves,
    right: Halves,
    contexts: Vec<Context>,
    /// The previous step's facts: sensor facts plus fired-context facts, sorted.
    previous: Vec<u32>,
    /// The sensor facts the memory expects next.
    pub predicted: Vec<u32>,
}

/// What one step of the memory says about the new input.
pub(super) struct Step {
    /// Share of the contexts whose left half matched that also came true on the right.
    pub confirmed: f64,
    /// Share of the candidate new contexts that were really new.
    pub novel: f64,
}

impl Memory {
    /// Stores a context unless it exists; returns its id and whether it is new.
    fn store(&mut self, left: &[u32], right: &[u32], zero_level: bool) -> (usize, bool) {
        let l = self.left.get_or_insert(left);
        let r = self.right.get_or_insert(right);
        if let Some(&(_, c)) = self.left.all[l].contexts.iter().find(|(rr, _)| *rr == r) {
            if zero_level {
                self.contexts[c].zero_level = true;
            }
            return (c, false);
        }
        let c = self.contexts.len();
        self.contexts.push(Context {
            right: r,
            zero_level,
            ..Context::default()
        });
        self.left.all[l].contexts.push((r, c));
        (c, true)
    }

    pub fn step(&mut self, sensors: &[u32], max_left: usize, max_active: usize) -> Step {
        // The whole transition, if never seen, is remembered as it is.
        let mut zero_level = None;
        if !self.previous.is_empty() {
            let previous = std::mem::take(&mut self.previous);
            zero_level = Some(self.store(&previous, sensors, true));
            self.previous = previous;
        }
        let transition_new = zero_level.is_some_and(|(_, new)| new);

        // Judge the contexts that the previous step's facts touched.
        self.right.cross(sensors);
        let mut selected = 0usize;
        let mut fired: Vec<(u64, usize)> = Vec::new();
        // Candidate new contexts as pairs of interned fact sets: many contexts share an overlap.
        let mut sets = Interner::default();
        let mut candidates: Vec<(u32, u32)> = Vec::new();
        if zero_level.is_some() {
            candidates.push((sets.id(&self.previous), sets.id(sensors)));
        }
        let mut right_sets: HashMap<usize, u32> = HashMap::new();
        for &l in &self.left.touched {
            let half = &self.left.all[l];
            let full_left = half.fully_matched();
            let mut left_set = None;
            for &(r, c) in &half.contexts {
                if zero_level == Some((c, true)) {
                    continue;
                }
                let right = &self.right.all[r];
                let ctx = &mut self.contexts[c];
                let hits = right.matched;
                if full_left {
                    selected += 1;
                    ctx.expected += right.facts.len() as u64;
                    ctx.came_true += hits as u64;
                    if hits > 0 && hits == right.facts.len() {
                        ctx.fired += 1;
                        fired.push((ctx.fired, c));
                        continue;
                    }
                }
                // Partial overlaps of a stored transition seed smaller contexts, but only while
                // something new is being learned and the left overlap is short.
                if hits > 0 && ctx.zero_level && transition_new && half.matched <= max_left {
                    let l_id =
                        *left_set.get_or_insert_with(|| sets.id(&half.overlap(&self.previous)));
                    let r_id = *right_sets
                        .entry(r)
                        .or_insert_with(|| sets.id(&right.overlap(sensors)));
                    candidates.push((l_id, r_id));
                }
            }
        }
        let confirmed = if selected > 0 {
            fired.len() as f64 / selected as f64
        } else {
            0.0
        };

        // The most reliable fired contexts become facts of this step.
        fired.sort_unstable();
        let mut facts: Vec<u32> = sensors.to_vec();
        facts.extend(
            fired
                .iter()
                .rev()
                .take(max_active)
                .map(|&(_, c)| NEURON | c as u32),
        );
        facts.sort_unstable();
        facts.dedup();
        self.previous = facts;

        // Learn the grown contexts, then predict from the left halves the new facts complete.
        let grown = candidates.len() - usize::from(zero_level.is_some());
        let mut added = usize::from(transition_new);
        for &(l, r) in &candidates[candidates.len() - grown..] {
            let (l, r) = (sets.get(l).to_vec(), sets.get(r).to_vec());
            added += usize::from(self.store(&l, &r, false).1);
        }
        candidates.sort_unstable();
        candidates.dedup();
        let novel = if transition_new && !candidates.is_empty() {
            added as f64 / candidates.len() as f64
        } else {
            0.0
        };
        self.predict();
        Step { confirmed, novel }
    }

    fn predict(&mut self) {
        self.left.cross(&self.previous);
        let mut best = 0.0;
        let mut winners: Vec<usize> = Vec::new();
        for &l in &self.left.touched {
            let half = &self.left.all[l];
            if !half.fully_matched() {
                continue;
            }
            for &(_, c) in &half.contexts {
                let w = self.contexts[c].reliability();
                if w > best {
                    best = w;
                    winners.clear();
                }
                if w == best {
                    winners.push(c);
                }
            }
        }
        self.predicted.clear();
        for c in winners {
            self.predicted
                .extend_from_slice(&self.right.all[self.contexts[c].right].facts);
        }
        self.predicted.sort_unstable();
        self.predicted.dedup();
    }
}
