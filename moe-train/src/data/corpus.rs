//! The built-in corpus: a procedural language with four domains of different structure, so
//! experts have something to specialise on and every token's true probability is known.
//!
//! Each document is `<tag> body… <eos>`. The generator is a left-to-right state machine whose
//! choices at every step are among *distinct* tokens, so the probability the generator gave a
//! token is exactly `p(token | document so far)`. The mean of `-ln p` over a stream is therefore
//! the entropy floor of the data for a predictor that sees the whole document: no model can do
//! better in expectation, and a model whose window starts mid-document can only do worse. The
//! domains (see `docs/training.md` for grammars and their entropies):
//!
//! - **arithmetic** — `<arith> 4 7 + 0 9 = 0 5 6 ; …`: two-digit operands, the answer is
//!   determined (zero entropy), so the model must learn addition and subtraction;
//! - **records** — `<record> city oslo food rice … | ? food -> rice …`: four key–value pairs,
//!   then queries whose answers are copies from the record (in-context retrieval);
//! - **text** — English-like sentences with subject–verb number agreement across an optional
//!   adjective: `<text> these small dogs chase a cat . …`;
//! - **code** — nested brackets with identifiers: `<code> ( x [ y { } ] ) …`; closing brackets
//!   are determined by the stack;
//! - **facts** — `<fact> ka li city -> oslo , food of ka li -> rice , …`: questions about a fixed
//!   table of 1024 entities × 4 attributes (the same table in every split), asked in two
//!   templates; the answers are determined by the table (zero entropy) but must be memorised,
//!   so this domain rewards parameters — what experts add at equal FLOPs.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// The four domains, in tag order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Domain {
    /// Two-digit addition and subtraction with answers.
    Arithmetic,
    /// Key–value records followed by retrieval queries.
    Records,
    /// Sentences of a small stochastic grammar with number agreement.
    Text,
    /// Nested brackets with identifiers.
    Code,
    /// Questions about a fixed table of entity attributes (memorisation).
    Facts,
}

impl Domain {
    /// All domains, in id order.
    pub const ALL: [Domain; 5] = [
        Domain::Arithmetic,
        Domain::Records,
        Domain::Text,
        Domain::Code,
        Domain::Facts,
    ];

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Domain::Arithmetic => "arithmetic",
            Domain::Records => "records",
            Domain::Text => "text",
            Domain::Code => "code",
            Domain::Facts => "facts",
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Domain::Arithmetic => "<arith>",
            Domain::Records => "<record>",
            Domain::Text => "<text>",
            Domain::Code => "<code>",
            Domain::Facts => "<fact>",
        }
    }
}

/// End-of-document token (also the document separator of real-text streams).
pub const EOS: &str = "<eos>";
/// Unknown-word token of the word-level tokenizer (never generated).
pub const UNK: &str = "<unk>";

const DIGITS: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
const KEYS: [&str; 8] = [
    "name", "city", "color", "animal", "food", "job", "sport", "tool",
];
const VALUES: [[&str; 8]; 8] = [
    ["ada", "bo", "cyd", "dag", "eli", "fay", "gus", "hal"],
    [
        "oslo", "lima", "kyiv", "rome", "bern", "doha", "riga", "baku",
    ],
    [
        "red", "blue", "green", "gold", "gray", "pink", "teal", "plum",
    ],
    ["owl", "yak", "emu", "eel", "ant", "bee", "cod", "elk"],
    [
        "rice", "soup", "bread", "figs", "kale", "corn", "tofu", "eggs",
    ],
    [
        "chef", "poet", "monk", "nurse", "pilot", "judge", "baker", "smith",
    ],
    [
        "golf", "judo", "polo", "chess", "rugby", "darts", "skiing", "rowing",
    ],
    [
        "saw", "axe", "awl", "file", "drill", "lathe", "plane", "vise",
    ],
];
const DETS_SINGULAR: [&str; 4] = ["a", "this", "that", "every"];
const DETS_PLURAL: [&str; 4] = ["these", "those", "some", "many"];
const ADJECTIVES: [&str; 12] = [
    "small", "old", "happy", "quiet", "brave", "gentle", "tall", "lazy", "quick", "young", "wise",
    "loud",
];
const NOUNS_SINGULAR: [&str; 16] = [
    "cat", "dog", "bird", "child", "farmer", "teacher", "horse", "king", "queen", "robot",
    "sailor", "doctor", "mouse", "wolf", "friend", "student",
];
const NOUNS_PLURAL: [&str; 16] = [
    "cats", "dogs", "birds", "children", "farmers", "teachers", "horses", "kings", "queens",
    "robots", "sailors", "doctors", "mice", "wolves", "friends", "students",
];
const VERBS_SINGULAR: [&str; 10] = [
    "sees", "likes", "chases", "finds", "helps", "calls", "feeds", "knows", "meets", "follows",
];
const VERBS_PLURAL: [&str; 10] = [
    "see", "like", "chase", "find", "help", "call", "feed", "know", "meet", "follow",
];
const OPEN: [&str; 3] = ["(", "[", "{"];
const CLOSE: [&str; 3] = [")", "]", "}"];
const IDENTS: [&str; 8] = ["x", "y", "z", "w", "i", "j", "k", "n"];
const PUNCT: [&str; 8] = ["+", "-", "=", ";", "|", "?", "->", "."];

/// Syllables of entity names: an entity is two of them (32² = 1024 entities).
const SYLLABLES: [&str; 32] = [
    "ba", "be", "bi", "bu", "da", "de", "di", "du", "fa", "fe", "fi", "fu", "ga", "ge", "gi", "gu",
    "ka", "ke", "ki", "ku", "la", "le", "li", "lu", "ma", "me", "mi", "mu", "na", "ne", "ni", "nu",
];
/// The facts' attributes (indices into [`KEYS`] / [`VALUES`]): city, animal, food, sport.
const FACT_ATTRIBUTES: [usize; 4] = [1, 3, 4, 6];
/// Seed of the fact table: fixed, so training and validation ask about the same facts.
const FACT_TABLE_SEED: u64 = 0x00FA_C7AB_1E00;
/// Probability that a facts document asks another question after a `,`.
const FACT_CONTINUE: f64 = 0.6;

/// The value (index into the attribute's [`VALUES`] row) of attribute `attribute` (an index
/// into [`FACT_ATTRIBUTES`]) of entity `entity` (`0..1024`) in the fixed fact table.
pub fn fact_value(entity: usize, attribute: usize) -> usize {
    let mut z = FACT_TABLE_SEED
        ^ ((entity * FACT_ATTRIBUTES.len() + attribute) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) % VALUES[0].len() as u64) as usize
}

/// Probability that an arithmetic document goes on after a `;`.
const ARITH_CONTINUE: f64 = 0.8;
/// Fields per record and queries after it.
const RECORD_FIELDS: usize = 4;
const RECORD_QUERIES: usize = 3;
/// Probability of an adjective before a noun; of an object after a verb; of another sentence.
const ADJ_PROB: f64 = 0.4;
const OBJECT_PROB: f64 = 0.7;
const SENTENCE_CONTINUE: f64 = 0.75;
/// Bracket depth limit and the action probabilities of the code domain.
const CODE_MAX_DEPTH: usize = 6;
const CODE_END_PROB: f64 = 0.3;

/// The vocabulary of the built-in corpus, in id order: `<eos>`, `<unk>`, the four tags, then
/// every word the domains use.
pub fn vocabulary() -> Vec<&'static str> {
    let mut words = vec![EOS, UNK];
    words.extend(Domain::ALL[..4].iter().map(|d| d.tag()));
    words.extend(DIGITS);
    words.extend(PUNCT);
    words.extend(KEYS);
    words.extend(VALUES.iter().flatten());
    words.extend(DETS_SINGULAR);
    words.extend(DETS_PLURAL);
    words.extend(ADJECTIVES);
    words.extend(NOUNS_SINGULAR);
    words.extend(NOUNS_PLURAL);
    words.extend(VERBS_SINGULAR);
    words.extend(VERBS_PLURAL);
    words.extend(OPEN);
    words.extend(CLOSE);
    words.extend(IDENTS);
    // Added with the facts domain, at the end so earlier ids keep their meaning.
    words.push(Domain::Facts.tag());
    words.push("of");
    words.push(",");
    words.extend(SYLLABLES);
    words
}

/// A generated token stream with, per token, the probability the generator gave it and the
/// domain of its document.
#[derive(Debug, Clone, Default)]
pub struct Stream {
    /// Token ids (indices into [`vocabulary`]).
    pub tokens: Vec<u32>,
    /// `-ln p(token | document so far)` under the generator, nats.
    pub neg_log_prob: Vec<f32>,
    /// Domain of the token's document.
    pub domains: Vec<Domain>,
}

impl Stream {
    /// Mean `-ln p` over all tokens: the entropy floor of the stream (nats per token).
    pub fn floor(&self) -> f64 {
        self.neg_log_prob.iter().map(|&v| v as f64).sum::<f64>() / self.tokens.len().max(1) as f64
    }

    /// The stream as text: one document per line, tokens separated by spaces.
    pub fn render(&self) -> String {
        let vocab = vocabulary();
        let mut text = String::new();
        for &id in &self.tokens {
            text.push_str(vocab[id as usize]);
            text.push(if vocab[id as usize] == EOS { '\n' } else { ' ' });
        }
        text
    }
}

/// Generates documents of every domain (chosen uniformly per document) from `seed` until the
/// stream holds at least `min_tokens` tokens.
pub fn generate(seed: u64, min_tokens: usize) -> Stream {
    let mut writer = Writer::new(seed);
    while writer.stream.tokens.len() < min_tokens {
        let domain = Domain::ALL[writer.rng.random_range(0..Domain::ALL.len())];
        writer.emit(domain.tag(), 1.0 / Domain::ALL.len() as f64, domain);
        match domain {
            Domain::Arithmetic => writer.arithmetic(),
            Domain::Records => writer.record(),
            Domain::Text => writer.text(),
            Domain::Code => writer.code(),
            Domain::Facts => writer.facts(),
        }
    }
    writer.stream
}

/// Appends tokens with their generator probabilities.
struct Writer {
    rng: StdRng,
    ids: std::collections::HashMap<&'static str, u32>,
    stream: Stream,
    domain: Domain,
    /// Probability of a branch decision taken before the next token (e.g. "another
    /// sentence"); it multiplies that token's probability.
    carry: f64,
}

impl Writer {
    fn new(seed: u64) -> Self {
        let ids = vocabulary()
            .into_iter()
            .enumerate()
            .map(|(id, word)| (word, id as u32))
            .collect();
        Self {
            rng: StdRng::seed_from_u64(seed),
            ids,
            stream: Stream::default(),
            domain: Domain::Arithmetic,
            carry: 1.0,
        }
    }

    /// Appends `word`, which the generator chose with probability `p` (times any pending
    /// branch probability).
    fn emit(&mut self, word: &'static str, p: f64, domain: Domain) {
        let p = p * std::mem::replace(&mut self.carry, 1.0);
        self.domain = domain;
        self.stream.tokens.push(self.ids[word]);
        self.stream.neg_log_prob.push(-p.ln() as f32);
        self.stream.domains.push(domain);
    }

    /// Appends a word of the current document.
    fn push(&mut self, word: &'static str, p: f64) {
        self.emit(word, p, self.domain);
    }

    /// Picks uniformly from `words`, `p_branch` being the probability of this branch.
    fn pick(&mut self, words: &[&'static str], p_branch: f64) -> usize {
        let i = self.rng.random_range(0..words.len());
        self.push(words[i], p_branch / words.len() as f64);
        i
    }

    /// A branch taken with probability `p`; the probability of the outcome is charged to the
    /// next token.
    fn branch(&mut self, p: f64) -> bool {
        let taken = self.rng.random_bool(p);
        self.carry *= if taken { p } else { 1.0 - p };
        taken
    }

    fn digits(&mut self, value: usize, width: usize) {
        let text = format!("{value:0width$}");
        for c in text.bytes() {
            self.push(DIGITS[(c - b'0') as usize], 1.0);
        }
    }

    /// `a op b = c ;` repeated; `b ≤ a` for subtraction, so answers stay non-negative.
    fn arithmetic(&mut self) {
        loop {
            let a = 10 * self.pick(&DIGITS, 1.0) + self.pick(&DIGITS, 1.0);
            let plus = self.branch(0.5);
            self.push(if plus { "+" } else { "-" }, 1.0);
            let b = if plus {
                10 * self.pick(&DIGITS, 1.0) + self.pick(&DIGITS, 1.0)
            } else {
                self.bounded_two_digits(a)
            };
            self.push("=", 1.0);
            if plus {
                self.digits(a + b, 3);
            } else {
                self.digits(a - b, 2);
            }
            self.push(";", 1.0);
            if !self.branch(ARITH_CONTINUE) {
                self.push(EOS, 1.0);
                return;
            }
        }
    }

    /// Draws `b` uniformly from `0..=a` and writes its two digits with their conditional
    /// probabilities: `p(tens = t) = |{b ≤ a : b / 10 = t}| / (a + 1)`, then the units
    /// uniformly among those left.
    fn bounded_two_digits(&mut self, a: usize) -> usize {
        let b = self.rng.random_range(0..=a);
        let (tens, units) = (b / 10, b % 10);
        let in_tens = if tens == a / 10 { a % 10 + 1 } else { 10 };
        self.push(DIGITS[tens], in_tens as f64 / (a + 1) as f64);
        self.push(DIGITS[units], 1.0 / in_tens as f64);
        b
    }

    /// `k₁ v₁ … k₄ v₄ | ? kᵢ -> vᵢ …`: distinct keys in random order, values uniform per key,
    /// then queries of keys present in the record (answers are copies).
    fn record(&mut self) {
        let mut left: Vec<usize> = (0..KEYS.len()).collect();
        let mut fields = Vec::with_capacity(RECORD_FIELDS);
        for _ in 0..RECORD_FIELDS {
            let i = self.rng.random_range(0..left.len());
            let key = left.remove(i);
            self.push(KEYS[key], 1.0 / (left.len() + 1) as f64);
            let value = self.pick(&VALUES[key], 1.0);
            fields.push((key, value));
        }
        self.push("|", 1.0);
        for _ in 0..RECORD_QUERIES {
            self.push("?", 1.0);
            let (key, value) = fields[self.rng.random_range(0..fields.len())];
            // Queries draw uniformly (with replacement) from the record's keys.
            self.push(KEYS[key], 1.0 / fields.len() as f64);
            self.push("->", 1.0);
            self.push(VALUES[key][value], 1.0);
        }
        self.push(EOS, 1.0);
    }

    /// `NP VP .` sentences: `NP = det [adj] noun` (the determiner fixes the number), the verb
    /// agrees with the subject, an object NP follows with probability [`OBJECT_PROB`].
    fn text(&mut self) {
        loop {
            let plural = self.noun_phrase();
            self.pick(
                if plural {
                    &VERBS_PLURAL
                } else {
                    &VERBS_SINGULAR
                },
                1.0,
            );
            if self.branch(OBJECT_PROB) {
                self.noun_phrase();
            }
            self.push(".", 1.0);
            if !self.branch(SENTENCE_CONTINUE) {
                self.push(EOS, 1.0);
                return;
            }
        }
    }

    /// Writes a noun phrase; returns whether it is plural.
    fn noun_phrase(&mut self) -> bool {
        let plural = self.rng.random_bool(0.5);
        self.pick(if plural { &DETS_PLURAL } else { &DETS_SINGULAR }, 0.5);
        if self.branch(ADJ_PROB) {
            self.pick(&ADJECTIVES, 1.0);
        }
        self.pick(
            if plural {
                &NOUNS_PLURAL
            } else {
                &NOUNS_SINGULAR
            },
            1.0,
        );
        plural
    }

    /// Questions about the fixed fact table: per question an entity (two syllables, uniform),
    /// an attribute (uniform), in one of two templates (`E a -> v` or `a of E -> v`, each
    /// 1/2), the answer determined by the table; another question follows with probability
    /// [`FACT_CONTINUE`].
    fn facts(&mut self) {
        loop {
            let attribute_first = self.branch(0.5);
            let (a, entity) = if attribute_first {
                let a = self.pick_attribute();
                self.push("of", 1.0);
                (a, self.entity())
            } else {
                let entity = self.entity();
                (self.pick_attribute(), entity)
            };
            self.push("->", 1.0);
            self.push(VALUES[FACT_ATTRIBUTES[a]][fact_value(entity, a)], 1.0);
            self.push(",", 1.0);
            if !self.branch(FACT_CONTINUE) {
                self.push(EOS, 1.0);
                return;
            }
        }
    }

    /// Writes a uniformly drawn attribute word; returns its index in [`FACT_ATTRIBUTES`].
    fn pick_attribute(&mut self) -> usize {
        let words: Vec<&'static str> = FACT_ATTRIBUTES.iter().map(|&k| KEYS[k]).collect();
        self.pick(&words, 1.0)
    }

    /// Writes an entity's two syllables; returns its index.
    fn entity(&mut self) -> usize {
        let first = self.pick(&SYLLABLES, 1.0);
        let second = self.pick(&SYLLABLES, 1.0);
        first * SYLLABLES.len() + second
    }

    /// Balanced brackets with identifiers. At depth 0 (after the first group) the document
    /// ends with probability [`CODE_END_PROB`]; inside, the next token is an opening bracket
    /// (0.3, up to [`CODE_MAX_DEPTH`]), an identifier (0.3) or the closing bracket of the
    /// innermost group (0.4; determined by the stack).
    fn code(&mut self) {
        let mut stack: Vec<usize> = Vec::new();
        let open = |w: &mut Self, stack: &mut Vec<usize>, p: f64| stack.push(w.pick(&OPEN, p));
        open(self, &mut stack, 1.0);
        loop {
            if stack.is_empty() {
                if self.branch(CODE_END_PROB) {
                    self.push(EOS, 1.0);
                    return;
                }
                open(self, &mut stack, 1.0);
                continue;
            }
            let can_open = stack.len() < CODE_MAX_DEPTH;
            let (p_open, p_ident) = if can_open { (0.3, 0.3) } else { (0.0, 0.5) };
            let u: f64 = self.rng.random();
            if u < p_open {
                open(self, &mut stack, p_open);
            } else if u < p_open + p_ident {
                self.pick(&IDENTS, p_ident);
            } else {
                let top = stack.pop().expect("stack is non-empty here");
                self.push(CLOSE[top], 1.0 - p_open - p_ident);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabulary_is_unique_and_tags_come_first() {
        let vocab = vocabulary();
        let unique: std::collections::HashSet<_> = vocab.iter().collect();
        assert_eq!(
            unique.len(),
            vocab.len(),
            "duplicate word in the vocabulary"
        );
        assert_eq!(
            &vocab[..6],
            &[EOS, UNK, "<arith>", "<record>", "<text>", "<code>"]
        );
    }

    #[test]
    fn generation_is_deterministic_and_documents_are_well_formed() {
        let a = generate(7, 5_000);
        let b = generate(7, 5_000);
        assert_eq!(a.tokens, b.tokens, "same seed, same stream");
        assert_ne!(a.tokens, generate(8, 5_000).tokens, "seed matters");
        let vocab = vocabulary();
        // Every document starts with its tag and the probabilities are valid.
        let mut expect_tag = true;
        for (i, &id) in a.tokens.iter().enumerate() {
            let word = vocab[id as usize];
            if expect_tag {
                assert_eq!(word, a.domains[i].tag(), "token {i}");
            }
            expect_tag = word == EOS;
            assert!(a.neg_log_prob[i] >= 0.0 && a.neg_log_prob[i].is_finite());
        }
        // Brackets balance within code documents.
        for doc in a.render().lines().filter(|l| l.starts_with("<code>")) {
            let mut depth = 0i32;
            for w in doc.split(' ') {
                depth += OPEN.contains(&w) as i32 - CLOSE.contains(&w) as i32;
                assert!(depth >= 0, "{doc}");
            }
            assert_eq!(depth, 0, "{doc}");
        }
        // Arithmetic answers are right.
        for doc in a.render().lines().filter(|l| l.starts_with("<arith>")) {
            for problem in doc.trim_start_matches("<arith> ").split(" ; ") {
                let Some((lhs, rhs)) = problem.split_once(" = ") else {
                    continue;
                };
                let parts: Vec<&str> = lhs.split(' ').collect();
                let num = |s: &[&str]| s.concat().parse::<i64>().unwrap();
                let (x, y) = (num(&parts[0..2]), num(&parts[3..5]));
                let want = if parts[2] == "+" { x + y } else { x - y };
                let got = num(&rhs.trim_end_matches(" ;").split(' ').collect::<Vec<_>>());
                assert_eq!(got, want, "{problem}");
            }
        }
    }

    /// In contexts where the previous word alone fixes the next-token distribution (after `;`,
    /// after `.`, after a verb, after an opening bracket at depth 1), the stated probabilities
    /// of the distinct next words sum to 1, each word always gets the same probability, and the
    /// empirical frequencies match the stated ones.
    #[test]
    fn stated_probabilities_are_distributions_matching_frequencies() {
        let stream = generate(3, 300_000);
        let vocab = vocabulary();
        let mut contexts: Vec<&str> = vec![";", ".", ","];
        contexts.extend(VERBS_SINGULAR);
        contexts.extend(VERBS_PLURAL);
        for context in contexts {
            // next word -> (stated p, count)
            let mut next = std::collections::BTreeMap::<&str, (f64, usize)>::new();
            let mut total = 0;
            for i in 1..stream.tokens.len() {
                if vocab[stream.tokens[i - 1] as usize] != context {
                    continue;
                }
                let word = vocab[stream.tokens[i] as usize];
                let p = (-stream.neg_log_prob[i] as f64).exp();
                let entry = next.entry(word).or_insert((p, 0));
                assert!(
                    (entry.0 - p).abs() < 1e-6,
                    "after {context:?}: {word} has p {p} and {}",
                    entry.0
                );
                entry.1 += 1;
                total += 1;
            }
            let sum: f64 = next.values().map(|v| v.0).sum();
            assert!(
                (sum - 1.0).abs() < 1e-6,
                "after {context:?}: probabilities sum to {sum}"
            );
            for (word, (p, count)) in next {
                let freq = count as f64 / total as f64;
                // 5 standard errors of a binomial frequency.
                let tol = 5.0 * (p * (1.0 - p) / total as f64).sqrt() + 1e-3;
                assert!(
                    (freq - p).abs() < tol,
                    "after {context:?}: {word} freq {freq} vs p {p} ({total} samples)"
                );
            }
        }
    }

    /// Facts documents state the table's answers, and an answer costs no entropy.
    #[test]
    fn fact_answers_follow_the_table() {
        let stream = generate(13, 40_000);
        let vocab = vocabulary();
        let word = |i: usize| vocab[stream.tokens[i] as usize];
        let mut seen = 0;
        for i in 0..stream.tokens.len() {
            if stream.domains[i] != Domain::Facts || word(i) != "->" {
                continue;
            }
            // `s1 s2 attr ->` or `attr of s1 s2 ->`.
            let (attr, s1, s2) = if word(i - 3) == "of" {
                (word(i - 4), word(i - 2), word(i - 1))
            } else {
                (word(i - 1), word(i - 3), word(i - 2))
            };
            let a = FACT_ATTRIBUTES
                .iter()
                .position(|&k| KEYS[k] == attr)
                .expect("an attribute");
            let pos = |s: &str| SYLLABLES.iter().position(|&x| x == s).expect("a syllable");
            let entity = pos(s1) * SYLLABLES.len() + pos(s2);
            assert_eq!(
                word(i + 1),
                VALUES[FACT_ATTRIBUTES[a]][fact_value(entity, a)]
            );
            assert_eq!(stream.neg_log_prob[i + 1], 0.0, "the answer is determined");
            seen += 1;
        }
        assert!(seen > 100, "{seen} questions");
    }

    /// The entropy floor is what the closed forms give: a record document has exactly
    /// `ln 5 (tag) + ln(8·7·6·5) + 4 ln 8 (fields) + 3 ln 4 (queries)` nats.
    #[test]
    fn record_document_entropy_is_closed_form() {
        let stream = generate(11, 20_000);
        let vocab = vocabulary();
        let mut start = 0;
        for end in 0..stream.tokens.len() {
            if vocab[stream.tokens[end] as usize] != EOS {
                continue;
            }
            if stream.domains[end] == Domain::Records {
                let nats: f64 = stream.neg_log_prob[start..=end]
                    .iter()
                    .map(|&v| v as f64)
                    .sum();
                let want =
                    5f64.ln() + (8.0 * 7.0 * 6.0 * 5.0f64).ln() + 4.0 * 8f64.ln() + 3.0 * 4f64.ln();
                assert!((nats - want).abs() < 1e-4, "{nats} vs {want}");
            }
            start = end + 1;
        }
    }
}
