//! Checkpoints: per `mapping/shard`, the last sequence number below which every record is done (processed,
//! filtered out or given up on), or `closed` when the shard is finished; kept in the state directory.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

/// Checkpoints, per `mapping/shard`: the last sequence number done, or `closed` when the shard is finished.
#[derive(Debug, Default)]
pub struct Checkpoints {
    map: Mutex<BTreeMap<String, String>>,
    path: Option<PathBuf>,
}

impl Checkpoints {
    /// Loads the checkpoints kept in `dir`, if any.
    pub fn load(dir: Option<PathBuf>) -> Self {
        let path = dir.map(|d| d.join("checkpoints.json"));
        let map = path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Checkpoints {
            map: Mutex::new(map),
            path,
        }
    }

    pub(super) fn get(&self, key: &str) -> Option<String> {
        self.map.lock().ok()?.get(key).cloned()
    }

    pub(super) fn set(&self, key: &str, value: &str) {
        if let Ok(mut m) = self.map.lock() {
            m.insert(key.to_owned(), value.to_owned());
        }
    }

    /// Writes them to the state directory (atomically: write then rename).
    pub fn save(&self) {
        let (Some(path), Ok(m)) = (&self.path, self.map.lock()) else {
            return;
        };
        let tmp = path.with_extension("json.tmp");
        if std::fs::write(&tmp, serde_json::to_vec_pretty(&*m).unwrap_or_default()).is_ok() {
            let _ = std::fs::rename(tmp, path);
        }
    }
}

/// Which records of a shard are done, in read order; the checkpoint is the last of the done prefix.
#[derive(Debug, Default)]
pub(super) struct Tracker {
    next: u64,
    entries: BTreeMap<u64, (String, bool)>,
    pub(super) checkpoint: Option<String>,
}

impl Tracker {
    pub(super) fn add(&mut self, seq: &str, done: bool) -> u64 {
        let i = self.next;
        self.next += 1;
        self.entries.insert(i, (seq.to_owned(), done));
        self.advance();
        i
    }

    pub(super) fn done(&mut self, index: u64) {
        if let Some(e) = self.entries.get_mut(&index) {
            e.1 = true;
        }
        self.advance();
    }

    fn advance(&mut self) {
        while let Some(entry) = self.entries.first_entry() {
            if !entry.get().1 {
                break;
            }
            self.checkpoint = Some(entry.remove().0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_is_the_end_of_the_done_prefix() {
        let mut t = Tracker::default();
        let a = t.add("1", false);
        let _filtered = t.add("2", true);
        let c = t.add("3", false);
        assert_eq!(t.checkpoint, None);
        t.done(c);
        assert_eq!(t.checkpoint, None, "record 1 is still outstanding");
        t.done(a);
        assert_eq!(t.checkpoint.as_deref(), Some("3"));
        t.add("4", true);
        assert_eq!(
            t.checkpoint.as_deref(),
            Some("4"),
            "filtered records advance the checkpoint"
        );
    }
}
