//! Key states and the key-state × action matrix of the reference (§3.18), as data in one
//! place. Every service operation that touches a key asks [`check`] first.

use crate::error::{KmsError, Rejection};

pub use crate::model::KeyState;

/// One cell of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell {
    Ok,
    Reject(Rejection),
}

use Cell::Ok as OK;
const DIS: Cell = Cell::Reject(Rejection::Disabled);
const PDEL: Cell = Cell::Reject(Rejection::PendingDeletion);
const PIMP: Cell = Cell::Reject(Rejection::PendingImport);
const SMF: Cell = Cell::Reject(Rejection::StateModifiedFailed);

/// Rows: action names; columns: Enabled, Disabled, PendingDeletion, PendingImport.
/// Copied from the reference's table. Actions not in the reference's table are marked
/// below with the rule chosen for them.
pub const MATRIX: &[(&str, [Cell; 4])] = &[
    ("CreateKey", [OK, OK, OK, OK]),
    ("GenerateDataKey", [OK, DIS, PDEL, PIMP]),
    ("GenerateDataKeyWithoutPlaintext", [OK, DIS, PDEL, PIMP]),
    ("Encrypt", [OK, DIS, PDEL, PIMP]),
    ("Decrypt", [OK, DIS, PDEL, PIMP]),
    // ReEncrypt is not in the reference's table: the Encrypt/Decrypt rule applies to both
    // the source and the destination key ([inference], reference §3.18).
    ("ReEncrypt", [OK, DIS, PDEL, PIMP]),
    ("ListKeys", [OK, OK, OK, OK]),
    ("DescribeKey", [OK, OK, OK, OK]),
    ("ListResourceTags", [OK, OK, OK, OK]),
    ("DescribeKeyVersion", [OK, OK, OK, OK]),
    ("ListKeyVersions", [OK, OK, OK, OK]),
    ("ListAliases", [OK, OK, OK, OK]),
    ("ListAliasesByKeyId", [OK, OK, OK, OK]),
    ("DeleteAlias", [OK, OK, OK, OK]),
    ("UpdateKeyDescription", [OK, OK, PDEL, OK]),
    ("TagResource", [OK, OK, PDEL, OK]),
    ("UntagResource", [OK, OK, PDEL, OK]),
    ("EnableKey", [OK, OK, SMF, SMF]),
    ("DisableKey", [OK, OK, SMF, SMF]),
    ("ScheduleKeyDeletion", [OK, OK, SMF, OK]),
    ("CancelKeyDeletion", [SMF, SMF, OK, SMF]),
    ("CreateAlias", [OK, OK, SMF, OK]),
    ("CreateKeyVersion", [OK, DIS, PDEL, PIMP]),
    ("UpdateRotationPolicy", [OK, DIS, PDEL, PIMP]),
    ("GetParametersForImport", [OK, OK, OK, OK]),
    ("ImportKeyMaterial", [OK, OK, SMF, OK]),
    ("DeleteKeyMaterial", [OK, OK, OK, OK]),
    ("UpdateAlias", [OK, OK, PDEL, OK]),
    // SetDeletionProtection: the reference says "not allowed in PendingDeletion" without a
    // code; we answer Rejected.PendingDeletion like the other metadata updates.
    ("SetDeletionProtection", [OK, OK, PDEL, OK]),
];

/// Checks that `action` may run on a key in `state`.
pub fn check(action: &str, state: KeyState) -> Result<(), KmsError> {
    let row = MATRIX
        .iter()
        .find(|(name, _)| *name == action)
        .map(|(_, row)| row)
        .ok_or_else(|| KmsError::internal(format!("no state rule for {action}")))?;
    match row[state.column()] {
        Cell::Ok => Ok(()),
        Cell::Reject(r) => Err(KmsError::Rejected(r)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference table, transcribed as text, checked cell by cell against MATRIX.
    const REFERENCE: &str = "
GenerateDataKey,GenerateDataKeyWithoutPlaintext,Encrypt,Decrypt | OK | Rejected.Disabled | Rejected.PendingDeletion | Rejected.PendingImport
ListKeys,DescribeKey,ListResourceTags,DescribeKeyVersion,ListKeyVersions,ListAliases,DeleteAlias | OK | OK | OK | OK
UpdateKeyDescription,TagResource,UntagResource | OK | OK | Rejected.PendingDeletion | OK
EnableKey,DisableKey | OK | OK | Rejected.StateModifiedFailed | Rejected.StateModifiedFailed
ScheduleKeyDeletion | OK | OK | Rejected.StateModifiedFailed | OK
CancelKeyDeletion | Rejected.StateModifiedFailed | Rejected.StateModifiedFailed | OK | Rejected.StateModifiedFailed
CreateAlias | OK | OK | Rejected.StateModifiedFailed | OK
CreateKeyVersion,UpdateRotationPolicy | OK | Rejected.Disabled | Rejected.PendingDeletion | Rejected.PendingImport
GetParametersForImport | OK | OK | OK | OK
ImportKeyMaterial | OK | OK | Rejected.StateModifiedFailed | OK
DeleteKeyMaterial | OK | OK | OK | OK
UpdateAlias | OK | OK | Rejected.PendingDeletion | OK
CreateKey | OK | OK | OK | OK
";

    #[test]
    fn matrix_matches_reference_table() {
        let mut cells = 0;
        for line in REFERENCE.lines().filter(|l| !l.trim().is_empty()) {
            let parts: Vec<&str> = line.split('|').map(str::trim).collect();
            assert_eq!(parts.len(), 5, "{line}");
            for action in parts[0].split(',') {
                for (i, state) in KeyState::ALL.into_iter().enumerate() {
                    let got = match check(action, state) {
                        Ok(()) => "OK".to_string(),
                        Err(e) => {
                            assert_eq!(e.status(), 409);
                            e.code().to_string()
                        }
                    };
                    assert_eq!(got, parts[i + 1], "{action} in {state:?}");
                    cells += 1;
                }
            }
        }
        assert_eq!(cells, 4 * 26);
    }

    #[test]
    fn unknown_action_is_an_internal_error_not_a_panic() {
        assert_eq!(
            check("NoSuchAction", KeyState::Enabled).unwrap_err().code(),
            "InternalFailure"
        );
    }

    #[test]
    fn state_names_round_trip() {
        for s in KeyState::ALL {
            assert_eq!(KeyState::parse(s.as_str()), Some(s));
        }
        assert_eq!(KeyState::parse("enabled"), None);
    }
}
