//! The key-state × action matrix of the reference (§3.18). The rows are a column of the action
//! table ([`crate::action::kms`]); every service operation that touches a key asks [`check`]
//! first, with the row of its action (`row::<Action>`), so an action without a row cannot be
//! checked: that is a compile error, not a failure at run time.

use crate::error::KmsError;

pub use crate::action::kms::{row, StateRow};
pub use crate::action::Cell;
pub use crate::model::KeyState;

/// Checks that the action of `row` may run on a key in `state`.
pub fn check(row: StateRow, state: KeyState) -> Result<(), KmsError> {
    match row.cells[state.column()] {
        Cell::Ok => Ok(()),
        Cell::Reject(r) => Err(KmsError::Rejected(r)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::kms::Action;

    /// The reference table, transcribed as text, checked cell by cell against the rows of the
    /// action table.
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
            for name in parts[0].split(',') {
                let action = Action::from_name(name).unwrap_or_else(|| panic!("{name}"));
                let row = action
                    .state_row()
                    .unwrap_or_else(|| panic!("{name} has no row"));
                for (i, state) in KeyState::ALL.into_iter().enumerate() {
                    let got = match check(row, state) {
                        Ok(()) => "OK".to_string(),
                        Err(e) => {
                            assert_eq!(e.status(), 409);
                            e.code().to_string()
                        }
                    };
                    assert_eq!(got, parts[i + 1], "{name} in {state:?}");
                    cells += 1;
                }
            }
        }
        assert_eq!(cells, 4 * 26);
    }

    /// The rows the reference lacks, with the rule chosen for each (see the table's notes).
    #[test]
    fn rows_outside_the_reference() {
        assert_eq!(row::ReEncrypt.cells, row::Encrypt.cells);
        assert_eq!(row::TagResources.cells, row::TagResource.cells);
        assert_eq!(row::UntagResources.cells, row::UntagResource.cells);
        assert_eq!(row::ListTagResources.cells, row::ListResourceTags.cells);
        assert_eq!(
            check(row::SetDeletionProtection, KeyState::PendingDeletion)
                .unwrap_err()
                .code(),
            "Rejected.PendingDeletion"
        );
        assert_eq!(Action::DescribeRegions.state_row(), None);
        // Asymmetric keys (issue 17): every new action follows the Encrypt row
        // (reference asymmetric §11.1, [inference]).
        for r in [
            row::GetPublicKey,
            row::AsymmetricSign,
            row::AsymmetricVerify,
            row::AsymmetricEncrypt,
            row::AsymmetricDecrypt,
            row::ExportDataKey,
            row::GenerateAndExportDataKey,
        ] {
            assert_eq!(r.cells, row::Encrypt.cells, "{:?}", r.action);
        }
    }

    #[test]
    fn state_names_round_trip() {
        for s in KeyState::ALL {
            assert_eq!(KeyState::parse(s.as_str()), Some(s));
        }
        assert_eq!(KeyState::parse("enabled"), None);
    }
}
