//! Named queues as configuration sees them: the queue-name rule ([`is_valid_queue_name`]),
//! `QUEUE_ORDER` ([`QueueOrder`]) and the `QUEUES` list of `name[:weight]` entries
//! ([`parse_queues`]).

use std::str::FromStr;

/// Longest queue name.
pub const MAX_QUEUE_NAME_LEN: usize = 64;
/// Largest weight of a queue in `QUEUES`.
pub const MAX_QUEUE_WEIGHT: u32 = 1000;

/// Whether `name` is a usable queue name: 1-64 of `[A-Za-z0-9_.:-]`, the same characters as a
/// job type, so both can sit in Redis keys and URL paths without escaping. Defined here, at the
/// bottom layer, because `QUEUES` and `LIMITS_FILE` name queues; the API uses the same rule.
pub fn is_valid_queue_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_QUEUE_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
}

/// How a worker picks the queue of its next job among those it serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueOrder {
    /// Each queue in turn in proportion to its weight (the default), so no queue starves.
    Weighted,
    /// Always the first queue of `QUEUES` that has a job ready; later queues wait.
    Strict,
}

impl QueueOrder {
    /// The QUEUE_ORDER value that selects this order.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueOrder::Weighted => "weighted",
            QueueOrder::Strict => "strict",
        }
    }
}

impl FromStr for QueueOrder {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s.to_ascii_lowercase().as_str() {
            "weighted" => Ok(QueueOrder::Weighted),
            "strict" => Ok(QueueOrder::Strict),
            _ => Err(()),
        }
    }
}

/// A parsed `QUEUES` value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueueList {
    /// `(name, weight)` in the order given; weight 1 where none was given.
    pub queues: Vec<(String, u32)>,
    /// Whether any entry gave a weight, even 1: QUEUE_ORDER=strict refuses weights.
    pub weights_given: bool,
}

/// Parses `QUEUES`: comma-separated `name` or `name:weight`. Queue names may contain ':', so
/// only a last ':'-part made of digits is a weight: `mail:eu` is the queue "mail:eu", weight 1;
/// `mail:eu:3` is "mail:eu", weight 3. Empty entries (a trailing comma) are skipped. On error,
/// one message per bad entry, without the variable's name (the caller adds it).
pub fn parse_queues(raw: &str) -> Result<QueueList, Vec<String>> {
    let mut list = QueueList::default();
    let mut problems = Vec::new();
    for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, weight) = match entry.rsplit_once(':') {
            Some((name, w)) if !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit()) => {
                match w.parse::<u32>() {
                    Ok(n) if (1..=MAX_QUEUE_WEIGHT).contains(&n) => (name, Some(n)),
                    _ => {
                        problems.push(format!(
                            "{entry:?}: the weight after the last ':' must be an integer from 1 to {MAX_QUEUE_WEIGHT}"
                        ));
                        continue;
                    }
                }
            }
            _ => (entry, None),
        };
        if !is_valid_queue_name(name) {
            problems.push(format!(
                "{name:?}: a queue name must be 1-{MAX_QUEUE_NAME_LEN} characters of A-Z a-z 0-9 _ - . :"
            ));
        } else if list.queues.iter().any(|(q, _)| q == name) {
            problems.push(format!("{name:?} is listed twice"));
        } else {
            list.weights_given |= weight.is_some();
            list.queues.push((name.to_string(), weight.unwrap_or(1)));
        }
    }
    if problems.is_empty() {
        Ok(list)
    } else {
        Err(problems)
    }
}

/// `QUEUES` written back so that [`parse_queues`] reads the same list: a weight is shown when
/// it is not 1, or when the name itself ends in `:digits` (which would otherwise read as one).
pub fn format_queues(queues: &[(String, u32)]) -> String {
    queues
        .iter()
        .map(|(name, weight)| {
            let ends_like_weight = name
                .rsplit_once(':')
                .is_some_and(|(_, w)| !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit()));
            if *weight != 1 || ends_like_weight {
                format!("{name}:{weight}")
            } else {
                name.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}
