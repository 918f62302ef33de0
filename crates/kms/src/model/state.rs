//! Key states (reference §3.18).

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyState {
    Enabled,
    Disabled,
    PendingDeletion,
    PendingImport,
}

impl KeyState {
    pub const ALL: [KeyState; 4] = [
        KeyState::Enabled,
        KeyState::Disabled,
        KeyState::PendingDeletion,
        KeyState::PendingImport,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Enabled => "Enabled",
            KeyState::Disabled => "Disabled",
            KeyState::PendingDeletion => "PendingDeletion",
            KeyState::PendingImport => "PendingImport",
        }
    }
    pub fn parse(s: &str) -> Option<KeyState> {
        KeyState::ALL.into_iter().find(|k| k.as_str() == s)
    }
    /// Column of this state in the key-state × action matrix.
    pub fn column(self) -> usize {
        match self {
            KeyState::Enabled => 0,
            KeyState::Disabled => 1,
            KeyState::PendingDeletion => 2,
            KeyState::PendingImport => 3,
        }
    }
}
