//! `[kv] group_segments`: how `mockkv.json` groups keys (see `mockkv::group`).

use super::Validator;
use crate::mockkv::group::GroupRule;
use crate::scenario::raw::RawValue;

/// Most leading segments a group may keep: past a few, groups are keys again.
const MAX_GROUP_SEGMENTS: i64 = 8;

impl Validator<'_> {
    /// The grouping rule; the first segment when absent.
    pub(super) fn kv_group(&mut self, v: Option<&RawValue>) -> Option<GroupRule> {
        let Some(v) = v else {
            return Some(GroupRule::default());
        };
        let segments = self.int_in(
            v,
            "kv.group_segments",
            "group_segments",
            0,
            MAX_GROUP_SEGMENTS,
            "group_segments = 2 (\"user:42:profile\" is counted as \"user:{id}:\")",
        )?;
        Some(GroupRule { segments })
    }
}
