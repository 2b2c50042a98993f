//! Which shards of a stream a consumer reads, and from where: the bookkeeping of
//! [`StreamConsumer`](super::StreamConsumer), free of I/O and unit-tested. Parents are read
//! before children; each shard starts from its checkpoint, or else from where the caller
//! chose (only on the very first start) or `TRIM_HORIZON` (every shard met later, so nothing
//! is missed).

use super::StartPosition;

/// Where a shard's reading starts (or starts again, when its iterator expired).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Position {
    /// The oldest record the shard still holds.
    TrimHorizon,
    /// Only records written after the iterator is taken.
    Latest,
    /// Right after this sequence number.
    After(String),
}

/// A shard as DescribeStream lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listed {
    pub id: String,
    pub parent: Option<String>,
    /// It has an ending sequence number: no record will be added to it.
    pub closed: bool,
}

#[derive(Debug)]
pub(crate) struct Shard {
    pub id: String,
    pub parent: Option<String>,
    /// Where reading started; later positions come from `last`.
    pub start: Position,
    /// The last sequence number handed out from this shard.
    pub last: Option<String>,
    /// The iterator of the next read, when one is held.
    pub iterator: Option<String>,
    /// Read to its end (its last read returned no next iterator), or skipped.
    pub done: bool,
}

impl Shard {
    /// `true` while no record was handed out from this shard and it had no checkpoint: its
    /// iterators were at `LATEST` or `TRIM_HORIZON`.
    pub(crate) fn nothing_handed_out(&self) -> bool {
        self.last.is_none() && !matches!(self.start, Position::After(_))
    }

    /// Where a new iterator must point: right after the last record handed out, else where
    /// reading started.
    pub(crate) fn position(&self) -> Position {
        match &self.last {
            Some(seq) => Position::After(seq.clone()),
            None => self.start.clone(),
        }
    }
}

/// The shards a consumer knows, in the order it met them.
#[derive(Debug, Default)]
pub(crate) struct Shards {
    shards: Vec<Shard>,
    /// Whether a listing was taken in already (the start position applies to the first).
    started: bool,
    /// Where the next round of reads begins (rotates, so every shard gets its turn).
    next: usize,
}

impl Shards {
    /// Shards of `listed` not known yet: they need their checkpoints loaded, then
    /// [`add`](Self::add).
    pub(crate) fn unknown<'l>(&self, listed: &'l [Listed]) -> Vec<&'l Listed> {
        listed
            .iter()
            .filter(|l| self.get(&l.id).is_none())
            .collect()
    }

    /// Takes in a listing: `new` are its unknown shards with their checkpoints. Shards no
    /// longer listed (trimmed away) are forgotten, so their children are free to start.
    pub(crate) fn add(
        &mut self,
        listed: &[Listed],
        new: Vec<(Listed, Option<String>)>,
        start: StartPosition,
    ) {
        self.shards.retain(|s| listed.iter().any(|l| l.id == s.id));
        // The caller's start position holds on a first start only: a consumer that has a
        // checkpoint anywhere, or that is past its first listing, reads every shard it has no
        // checkpoint for from its beginning, so that no change is missed.
        let fresh = !self.started && new.iter().all(|(_, checkpoint)| checkpoint.is_none());
        self.started = true;
        for (shard, checkpoint) in new {
            let (start, done) = match checkpoint {
                Some(seq) => (Position::After(seq), false),
                None if fresh && start == StartPosition::Latest => (Position::Latest, shard.closed),
                None => (Position::TrimHorizon, false),
            };
            self.shards.push(Shard {
                id: shard.id,
                parent: shard.parent,
                start,
                last: None,
                iterator: None,
                done,
            });
        }
    }

    pub(crate) fn get(&self, id: &str) -> Option<&Shard> {
        self.shards.iter().find(|s| s.id == id)
    }

    pub(crate) fn get_mut(&mut self, id: &str) -> Option<&mut Shard> {
        self.shards.iter_mut().find(|s| s.id == id)
    }

    /// The shards to read in this round, in turn: not done, and whose parent is done or no
    /// longer in the stream.
    pub(crate) fn ready(&self) -> Vec<String> {
        let n = self.shards.len();
        (0..n)
            .map(|i| &self.shards[(self.next + i) % n.max(1)])
            .filter(|s| !s.done)
            .filter(|s| match &s.parent {
                Some(parent) => self.get(parent).is_none_or(|p| p.done),
                None => true,
            })
            .map(|s| s.id.clone())
            .collect()
    }

    /// The next round starts after shard `id` (which just delivered records).
    pub(crate) fn rotate_past(&mut self, id: &str) {
        if let Some(i) = self.shards.iter().position(|s| s.id == id) {
            self.next = (i + 1) % self.shards.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(id: &str, parent: Option<&str>, closed: bool) -> Listed {
        Listed {
            id: id.to_owned(),
            parent: parent.map(str::to_owned),
            closed,
        }
    }

    fn take_in(
        shards: &mut Shards,
        listing: &[Listed],
        checkpoints: &[(&str, &str)],
        start: StartPosition,
    ) {
        let new = shards
            .unknown(listing)
            .into_iter()
            .map(|l| {
                let cp = checkpoints
                    .iter()
                    .find(|(id, _)| *id == l.id)
                    .map(|(_, s)| s.to_string());
                (l.clone(), cp)
            })
            .collect();
        shards.add(listing, new, start);
    }

    #[test]
    fn children_wait_for_their_parents() {
        let listing = [
            listed("c", Some("p"), false),
            listed("p", None, true),
            listed("orphan", Some("trimmed"), false),
        ];
        let mut shards = Shards::default();
        take_in(&mut shards, &listing, &[], StartPosition::TrimHorizon);
        assert_eq!(shards.ready(), vec!["p", "orphan"]);
        shards.get_mut("p").unwrap().done = true;
        assert_eq!(shards.ready(), vec!["c", "orphan"]);
    }

    #[test]
    fn a_first_start_from_latest_skips_closed_shards() {
        let listing = [listed("p", None, true), listed("c", Some("p"), false)];
        let mut shards = Shards::default();
        take_in(&mut shards, &listing, &[], StartPosition::Latest);
        assert_eq!(shards.ready(), vec!["c"]);
        assert_eq!(shards.get("c").unwrap().position(), Position::Latest);
        // A shard met later is read from its beginning.
        let later = [
            listing[0].clone(),
            listing[1].clone(),
            listed("g", Some("c"), false),
        ];
        take_in(&mut shards, &later, &[], StartPosition::Latest);
        assert_eq!(shards.get("g").unwrap().position(), Position::TrimHorizon);
    }

    #[test]
    fn checkpoints_win_and_make_every_other_shard_start_at_the_horizon() {
        let listing = [listed("a", None, false), listed("b", None, false)];
        let mut shards = Shards::default();
        take_in(&mut shards, &listing, &[("a", "42")], StartPosition::Latest);
        assert_eq!(
            shards.get("a").unwrap().position(),
            Position::After("42".into())
        );
        assert_eq!(shards.get("b").unwrap().position(), Position::TrimHorizon);
        shards.get_mut("b").unwrap().last = Some("7".into());
        assert_eq!(
            shards.get("b").unwrap().position(),
            Position::After("7".into())
        );
    }

    #[test]
    fn rounds_rotate_and_trimmed_shards_are_forgotten() {
        let listing = [
            listed("a", None, false),
            listed("b", None, false),
            listed("c", Some("a"), false),
        ];
        let mut shards = Shards::default();
        take_in(&mut shards, &listing, &[], StartPosition::TrimHorizon);
        shards.rotate_past("a");
        assert_eq!(shards.ready(), vec!["b", "a"]);
        // "a" is trimmed away: its child is free to start.
        take_in(&mut shards, &listing[1..], &[], StartPosition::TrimHorizon);
        assert!(shards.get("a").is_none());
        assert_eq!(shards.ready().len(), 2);
    }
}
