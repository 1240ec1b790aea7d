//! Each Gopher rule on small hand-made documents that pass and fail it, with only that rule
//! switched on; boundary cases sit exactly at the default thresholds (which pass: the rules
//! reject values strictly beyond them).

use moe_data::quality::{check, QualityConfig, Rule, Scratch};

/// 12 distinct English sentences, 119 words: passes every default rule.
const GOOD: &str = "The river valley was quiet in the early morning light.\n\
Farmers walked to the fields with their tools and baskets.\n\
A small bridge crossed the water near the old stone mill.\n\
Children gathered apples that had fallen during the night.\n\
\n\
The market opened at noon and traders set out their goods.\n\
Bread, cheese and honey were sold beside woven cloth.\n\
Travellers from distant towns brought news of the harvest.\n\
Everyone agreed that the season had been unusually kind.\n\
\n\
In the evening the families shared a long dinner together.\n\
Stories were told about storms that had passed years before.\n\
Lanterns burned in the windows until the moon was high.\n\
Then the valley slept again under a sky full of stars.";

fn only(rule: Rule) -> QualityConfig {
    QualityConfig {
        disable: Rule::ALL.into_iter().filter(|&r| r != rule).collect(),
        ..QualityConfig::default()
    }
}

fn run(text: &str, config: &QualityConfig) -> Result<(), Rule> {
    check(text, config, &mut Scratch::default()).map_err(|f| f.rule)
}

/// `n` distinct lines of a few words each.
fn distinct_lines(n: usize, prefix: &str) -> Vec<String> {
    (0..n)
        .map(|i| format!("{prefix}line number {i} talks about topic {}", i * 7 + 3))
        .collect()
}

fn lines_with(n: usize, marked: usize, mark: impl Fn(&str) -> String) -> String {
    distinct_lines(n, "")
        .iter()
        .enumerate()
        .map(|(i, l)| if i < marked { mark(l) } else { l.clone() })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `n` lines of which the last `repeats` repeat earlier lines.
fn repeated_lines(n: usize, repeats: usize, separator: &str) -> String {
    let mut lines = distinct_lines(n - repeats, "");
    for i in 0..repeats {
        lines.push(lines[i].clone());
    }
    lines.join(separator)
}

/// One long block repeated once among short distinct blocks.
fn repeated_long_block(separator: &str, long_words: usize) -> String {
    let long: String = (0..long_words).map(|i| format!("word{i} ")).collect();
    let mut blocks = distinct_lines(10, "");
    blocks.insert(0, long.trim().to_owned());
    blocks.push(long.trim().to_owned());
    blocks.join(separator)
}

#[test]
fn good_document_passes_every_default_rule() {
    assert_eq!(run(GOOD, &QualityConfig::default()), Ok(()));
}

#[test]
fn each_rule_passes_and_fails_hand_made_documents() {
    let words = |w: &str, n: usize| vec![w; n].join(" ");
    let numbered = |numeric: usize| -> String {
        (0..60)
            .map(|i| {
                if i < numeric {
                    format!("{}", 1000 + i)
                } else {
                    format!("word{i}")
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let interleaved = |phrase: &str, n: usize| -> String {
        (0..n)
            .map(|i| format!("{phrase} filler{i}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let sentence = "one two three four five six seven eight nine ten eleven twelve";
    // (rule, passing document, failing document, what the failure exercises)
    let cases: Vec<(Rule, String, String, &str)> = vec![
        (
            Rule::WordCount,
            GOOD.into(),
            "The cat sat on the mat with a hat.".into(),
            "9 words < 50",
        ),
        (
            Rule::MeanWordLength,
            GOOD.into(),
            words("a to", 40),
            "mean length 1.5 < 3",
        ),
        (
            Rule::MeanWordLength,
            GOOD.into(),
            words("internationalisation", 60),
            "mean length 20 > 10",
        ),
        (
            Rule::SymbolWordRatio,
            format!("{} {}", words("plain", 90), words("#tag", 10)), // 10 / 100: at the threshold
            format!("{} {}", words("plain", 90), words("#tag", 11)), // 11 / 101
            "'#' per word",
        ),
        (
            Rule::SymbolWordRatio,
            format!("{} {}", words("plain", 90), words("wait…", 10)),
            format!("{} {}", words("plain", 90), words("wait...", 11)),
            "ellipses per word",
        ),
        (
            Rule::BulletLines,
            lines_with(10, 9, |l| format!("- {l}")), // 0.9: at the threshold
            lines_with(10, 10, |l| format!("• {l}")),
            "all lines bulleted",
        ),
        (
            Rule::EllipsisLines,
            lines_with(10, 3, |l| format!("{l}...")), // 0.3: at the threshold
            lines_with(10, 4, |l| format!("{l}…")),
            "0.4 of lines end with an ellipsis",
        ),
        (
            Rule::AlphaWords,
            numbered(12),
            numbered(13),
            "48/60 vs 47/60 words with a letter",
        ),
        (
            Rule::StopWords,
            "Quick brown foxes jump over the lazy dogs with care".into(),
            "Quick brown foxes jump over lazy dogs".into(),
            "2 stop words vs 0",
        ),
        (
            Rule::DuplicateLines,
            repeated_lines(10, 3, "\n"),
            repeated_lines(10, 4, "\n"),
            "0.4 of lines repeat",
        ),
        (
            Rule::DuplicateParagraphs,
            repeated_lines(10, 3, "\n\n"),
            repeated_lines(10, 4, "\n\n"),
            "0.4 of paragraphs repeat",
        ),
        (
            Rule::DuplicateLineChars,
            repeated_long_block("\n", 10),
            repeated_long_block("\n", 40),
            "one long repeated line",
        ),
        (
            Rule::DuplicateParagraphChars,
            repeated_long_block("\n\n", 10),
            repeated_long_block("\n\n", 40),
            "one long repeated paragraph",
        ),
        (
            Rule::TopNgramChars,
            GOOD.into(),
            interleaved("big cat", 30),
            "'big cat' covers half the characters",
        ),
        (
            Rule::DuplicateNgramChars,
            format!("{GOOD}\n{sentence}"),
            format!("{GOOD}\n{}", [sentence; 5].join("\n")),
            "a 12-word sentence five times",
        ),
    ];
    for (rule, pass, fail, what) in &cases {
        let config = only(*rule);
        assert_eq!(
            run(pass, &config),
            Ok(()),
            "{rule:?} should pass ({what}):\n{pass}"
        );
        assert_eq!(
            run(fail, &config),
            Err(*rule),
            "{rule:?} should fail ({what}):\n{fail}"
        );
        let off = QualityConfig {
            disable: Rule::ALL.to_vec(),
            ..QualityConfig::default()
        };
        assert_eq!(run(fail, &off), Ok(()), "{rule:?} switched off must pass");
    }
}

#[test]
fn word_count_upper_bound_and_thresholds_are_configurable() {
    let config = QualityConfig {
        max_words: 90,
        ..only(Rule::WordCount)
    };
    assert_eq!(run(GOOD, &config), Err(Rule::WordCount), "119 words > 90");
    let config = QualityConfig {
        min_stop_words: 30,
        ..only(Rule::StopWords)
    };
    assert_eq!(run(GOOD, &config), Err(Rule::StopWords));
    let config = QualityConfig {
        top_ngrams: vec![(1, 0.01)],
        ..only(Rule::TopNgramChars)
    };
    assert_eq!(
        run(GOOD, &config),
        Err(Rule::TopNgramChars),
        "'the' covers > 1 %"
    );
}

#[test]
fn disabled_quality_passes_anything_and_failure_names_the_first_rule() {
    let config = QualityConfig {
        enabled: false,
        ..QualityConfig::default()
    };
    assert_eq!(run("", &config), Ok(()));
    let failure = check("# # #", &QualityConfig::default(), &mut Scratch::default())
        .expect_err("fails several rules");
    assert_eq!(
        failure.rule,
        Rule::WordCount,
        "rules run in Rule::ALL order"
    );
    assert!(failure.detail.contains("0 words"), "{}", failure.detail);
}

#[test]
fn repetition_rules_agree_with_reference_counts() {
    // Hand count (datatrove's GopherRepetitionFilter conventions): text of 10 distinct lines
    // plus 4 repeats has 4/14 = 0.286 duplicate lines: passes 0.3; with a 0.28 threshold fails.
    let text = repeated_lines(14, 4, "\n");
    let mut config = only(Rule::DuplicateLines);
    assert_eq!(run(&text, &config), Ok(()));
    config.max_duplicate_line_fraction = 0.28;
    assert_eq!(run(&text, &config), Err(Rule::DuplicateLines));
}
