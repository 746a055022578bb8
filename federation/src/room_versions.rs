//! The room versions Hearth creates and joins, and their rules (ruma's `RoomVersionRules`).

use ruma::{RoomVersionId, room_version_rules::RoomVersionRules};

/// The versions Hearth supports fully: authorization, redaction, event ids and room ids, state
/// resolution (version 1's first algorithm is in `state_res_v1.rs`, ruma runs the second).
pub const SUPPORTED_ROOM_VERSIONS: &[&str] = &["1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12"];

/// The rules of a supported version; None for versions Hearth does not support.
pub fn rules_for(version: &str) -> Option<RoomVersionRules> {
    if !SUPPORTED_ROOM_VERSIONS.contains(&version) {
        return None;
    }
    RoomVersionId::try_from(version).ok()?.rules()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supported_versions_have_rules_and_others_do_not() {
        for version in SUPPORTED_ROOM_VERSIONS {
            assert!(rules_for(version).is_some(), "{version}");
        }
        assert!(rules_for("nonsense").is_none());
        assert!(rules_for("12").unwrap().authorization.room_create_event_id_as_room_id);
        assert!(!rules_for("11").unwrap().authorization.room_create_event_id_as_room_id);
    }
}
