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

/// Most partitions a queue may have (`QUEUE_PARTITIONS`).
pub const MAX_QUEUE_PARTITIONS: u32 = 64;

/// A parsed `QUEUE_PARTITIONS`: how many partitions each queue's jobs are spread over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuePartitions {
    /// For every queue not named below.
    pub default: u32,
    /// `(queue, partitions)` in the order given.
    pub per_queue: Vec<(String, u32)>,
}

impl Default for QueuePartitions {
    fn default() -> Self {
        QueuePartitions {
            default: 1,
            per_queue: Vec::new(),
        }
    }
}

impl QueuePartitions {
    /// The partitions `queue` is spread over.
    pub fn of(&self, queue: &str) -> u32 {
        self.per_queue
            .iter()
            .find(|(q, _)| q == queue)
            .map_or(self.default, |(_, n)| *n)
    }

    /// The most partitions any queue asks for: how many the deployment needs.
    pub fn most(&self) -> u32 {
        self.per_queue
            .iter()
            .map(|(_, n)| *n)
            .fold(self.default, u32::max)
    }
}

/// Parses `QUEUE_PARTITIONS`: a number for every queue, then optional `queue=number` entries
/// that override it, comma-separated (`3`, `3,critical=1`, `bulk=4`: the others 1). On error,
/// one message per bad entry, without the variable's name.
pub fn parse_queue_partitions(raw: &str) -> Result<QueuePartitions, Vec<String>> {
    let mut out = QueuePartitions::default();
    let mut problems = Vec::new();
    let count = |s: &str| {
        s.parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_QUEUE_PARTITIONS).contains(n))
    };
    let range = format!("an integer from 1 to {MAX_QUEUE_PARTITIONS}");
    for (i, entry) in raw.split(',').map(str::trim).enumerate() {
        if entry.is_empty() {
            continue;
        }
        match entry.rsplit_once('=') {
            None if i == 0 => match count(entry) {
                Some(n) => out.default = n,
                None => problems.push(format!("{entry:?}: expected {range}")),
            },
            None => problems.push(format!(
                "{entry:?}: only the first entry may be a bare number; name the queue as queue=number"
            )),
            Some((name, n)) => {
                if !is_valid_queue_name(name) {
                    problems.push(format!(
                        "{name:?}: a queue name must be 1-{MAX_QUEUE_NAME_LEN} characters of A-Z a-z 0-9 _ - . :"
                    ));
                } else if out.per_queue.iter().any(|(q, _)| q == name) {
                    problems.push(format!("{name:?} is listed twice"));
                } else {
                    match count(n) {
                        Some(n) => out.per_queue.push((name.to_string(), n)),
                        None => problems.push(format!("{entry:?}: expected {range} after '='")),
                    }
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// `QUEUE_PARTITIONS` written back so that [`parse_queue_partitions`] reads the same value.
pub fn format_queue_partitions(p: &QueuePartitions) -> String {
    std::iter::once(p.default.to_string())
        .chain(p.per_queue.iter().map(|(q, n)| format!("{q}={n}")))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod partition_tests {
    use super::*;

    #[test]
    fn queue_partitions_parse_a_default_and_overrides() {
        let p = parse_queue_partitions("3, critical=1,mail:eu=2").unwrap();
        assert_eq!((p.of("x"), p.of("critical"), p.of("mail:eu")), (3, 1, 2));
        assert_eq!(p.most(), 3);
        assert_eq!(format_queue_partitions(&p), "3,critical=1,mail:eu=2");
        let only = parse_queue_partitions("bulk=4").unwrap();
        assert_eq!(
            (only.of("default"), only.of("bulk"), only.most()),
            (1, 4, 4)
        );
        let errs = parse_queue_partitions("0,a=2,a=3,b=x,7,bad name=2").unwrap_err();
        assert_eq!(errs.len(), 5, "{errs:?}");
        assert!(errs[0].contains("1 to 64"), "{errs:?}");
    }
}
