//! The context memory behind [`super::ContextDetector`]: fact sets (halves), the contexts that
//! join a left half to a right half with their track record, and one learning step.
//!
//! A step touches every context whose left half shares a fact with the previous step, which is
//! most of them, so each context lives inside its left half (one pass over memory, no lookups),
//! and the per-step lists are kept between steps to avoid allocating.

use std::collections::HashMap;

/// Neuron facts ("context c fired") are told apart from sensor facts by this bit.
const NEURON: u32 = 1 << 31;

#[derive(Clone, Debug)]
struct Context {
    id: u32,
    right: u32,
    /// Right facts expected over all the times the left half fully matched.
    expected: u32,
    /// Of those, right facts that came true.
    came_true: u32,
    /// Times every right fact came true.
    fired: u32,
    /// A stored (previous facts, sensor facts) transition rather than a grown sub-context: only
    /// these spawn sub-contexts.
    zero_level: bool,
}

impl Context {
    fn reliability(&self) -> f64 {
        if self.expected > 0 {
            f64::from(self.came_true) / f64::from(self.expected)
        } else {
            0.0
        }
    }
}

/// One half of a context: a set of facts, and how many of them the latest crossed input held.
#[derive(Clone, Debug)]
struct Half {
    facts: Vec<u32>,
    matched: usize,
    /// For a left half: the contexts it opens, in creation order.
    contexts: Vec<Context>,
}

/// The facts of `facts` also in `input` (both sorted, as all fact lists are).
fn overlap(facts: &[u32], input: &[u32]) -> Vec<u32> {
    facts
        .iter()
        .copied()
        .filter(|f| input.binary_search(f).is_ok())
        .collect()
}

/// Left or right halves, indexed by fact set and by fact.
#[derive(Clone, Debug, Default)]
struct Halves {
    all: Vec<Half>,
    by_set: HashMap<Vec<u32>, usize>,
    by_fact: HashMap<u32, Vec<usize>>,
    /// Halves with at least one fact in the latest crossed input.
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

    /// Records, for every half, how many of `input`'s facts it contains.
    fn cross(&mut self, input: &[u32]) {
        for &i in &self.touched {
            self.all[i].matched = 0;
        }
        self.touched.clear();
        for f in input {
            for &i in self.by_fact.get(f).map_or(&[][..], Vec::as_slice) {
                let half = &mut self.all[i];
                if half.matched == 0 {
                    self.touched.push(i);
                }
                half.matched += 1;
            }
        }
    }
}

/// Fact sets met during one step, by small id: many contexts share an overlap.
#[derive(Clone, Debug, Default)]
struct Interner {
    sets: Vec<Vec<u32>>,
    ids: HashMap<Vec<u32>, u32>,
}

impl Interner {
    fn id(&mut self, facts: Vec<u32>) -> u32 {
        if let Some(&i) = self.ids.get(&facts) {
            return i;
        }
        let i = self.sets.len() as u32;
        self.ids.insert(facts.clone(), i);
        self.sets.push(facts);
        i
    }

    fn clear(&mut self) {
        self.sets.clear();
        self.ids.clear();
    }
}

/// The context memory and the last step's state.
#[derive(Clone, Debug, Default)]
pub(super) struct Memory {
    left: Halves,
    right: Halves,
    next_id: u32,
    /// The previous step's facts: sensor facts plus fired-context facts, sorted.
    previous: Vec<u32>,
    /// The sensor facts the memory expects next, sorted.
    pub predicted: Vec<u32>,
    // Per-step scratch, kept for its capacity.
    fired: Vec<(u32, u32)>,
    sets: Interner,
    candidates: Vec<(u32, u32)>,
    right_sets: HashMap<usize, u32>,
}

/// What one step of the memory says about the new input.
pub(super) struct Step {
    /// Share of the contexts whose left half matched that also came true on the right.
    pub confirmed: f64,
    /// Share of the candidate new contexts that were really new.
    pub novel: f64,
}

impl Memory {
    /// Stores a context unless it exists; returns its place (left half, slot) and whether it is
    /// new.
    fn store(&mut self, left: &[u32], right: &[u32], zero_level: bool) -> ((usize, usize), bool) {
        let l = self.left.get_or_insert(left);
        let r = self.right.get_or_insert(right) as u32;
        let contexts = &mut self.left.all[l].contexts;
        if let Some(slot) = contexts.iter().position(|c| c.right == r) {
            contexts[slot].zero_level |= zero_level;
            return ((l, slot), false);
        }
        contexts.push(Context {
            id: self.next_id,
            right: r,
            expected: 0,
            came_true: 0,
            fired: 0,
            zero_level,
        });
        self.next_id += 1;
        ((l, contexts.len() - 1), true)
    }

    pub fn step(&mut self, sensors: &[u32], max_left: usize, max_active: usize) -> Step {
        // The whole transition, if never seen, is remembered as it is; it is not judged below.
        let mut zero_level = None;
        if !self.previous.is_empty() {
            let previous = std::mem::take(&mut self.previous);
            zero_level = Some(self.store(&previous, sensors, true));
            self.previous = previous;
        }
        let transition_new = zero_level.is_some_and(|(_, new)| new);
        let just_stored = zero_level.and_then(|(place, new)| new.then_some(place));

        // Judge the contexts whose left half the previous step's facts touched.
        self.right.cross(sensors);
        self.fired.clear();
        self.sets.clear();
        self.candidates.clear();
        self.right_sets.clear();
        if zero_level.is_some() {
            let pair = (
                self.sets.id(self.previous.clone()),
                self.sets.id(sensors.to_vec()),
            );
            self.candidates.push(pair);
        }
        let mut selected = 0usize;
        for &l in &self.left.touched {
            let Half {
                facts,
                matched,
                contexts,
            } = &mut self.left.all[l];
            let full_left = *matched == facts.len();
            let mut left_set = None;
            for (slot, ctx) in contexts.iter_mut().enumerate() {
                if just_stored == Some((l, slot)) {
                    continue;
                }
                let r = ctx.right as usize;
                let right = &self.right.all[r];
                let hits = right.matched;
                if full_left {
                    selected += 1;
                    ctx.expected += right.facts.len() as u32;
                    ctx.came_true += hits as u32;
                    if hits > 0 && hits == right.facts.len() {
                        ctx.fired += 1;
                        self.fired.push((ctx.fired, ctx.id));
                        continue;
                    }
                }
                // Partial overlaps of a stored transition seed smaller contexts, but only while
                // something new is being learned and the left overlap is short.
                if hits > 0 && ctx.zero_level && transition_new && *matched <= max_left {
                    let sets = &mut self.sets;
                    let l_id =
                        *left_set.get_or_insert_with(|| sets.id(overlap(facts, &self.previous)));
                    let r_id = *self
                        .right_sets
                        .entry(r)
                        .or_insert_with(|| sets.id(overlap(&right.facts, sensors)));
                    self.candidates.push((l_id, r_id));
                }
            }
        }
        let confirmed = if selected > 0 {
            self.fired.len() as f64 / selected as f64
        } else {
            0.0
        };

        // The most often fired of this step's fired contexts become facts of this step.
        self.fired.sort_unstable();
        let mut facts = sensors.to_vec();
        let strongest = self.fired.iter().rev().take(max_active);
        facts.extend(strongest.map(|&(_, id)| NEURON | id));
        facts.sort_unstable();
        self.previous = facts;

        // Learn the grown contexts, then predict from the left halves the new facts complete.
        let mut added = usize::from(transition_new);
        let grown = usize::from(zero_level.is_some())..self.candidates.len();
        for i in grown {
            let (l, r) = self.candidates[i];
            let (l, r) = (
                self.sets.sets[l as usize].clone(),
                self.sets.sets[r as usize].clone(),
            );
            added += usize::from(self.store(&l, &r, false).1);
        }
        self.candidates.sort_unstable();
        self.candidates.dedup();
        let novel = if transition_new && !self.candidates.is_empty() {
            added as f64 / self.candidates.len() as f64
        } else {
            0.0
        };
        self.predict();
        Step { confirmed, novel }
    }

    /// The sensor facts of the most reliable contexts whose left half the new facts complete.
    fn predict(&mut self) {
        self.left.cross(&self.previous);
        let mut best = 0.0;
        self.predicted.clear();
        for &l in &self.left.touched {
            let half = &self.left.all[l];
            if half.matched != half.facts.len() {
                continue;
            }
            for ctx in &half.contexts {
                let w = ctx.reliability();
                if w > best {
                    best = w;
                    self.predicted.clear();
                }
                if w == best {
                    self.predicted
                        .extend_from_slice(&self.right.all[ctx.right as usize].facts);
                }
            }
        }
        self.predicted.sort_unstable();
        self.predicted.dedup();
    }
}
