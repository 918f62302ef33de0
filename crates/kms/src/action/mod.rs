//! Actions as a type. Each API product this server speaks has one table of its actions,
//! written once with `actions!`, which generates the product's `enum Action` and hangs every
//! fact of an action on the variant: wire name, parameters and help (server checks and CLI),
//! help line, throttle class, audit durability, key-state × action matrix row, and the RAM
//! action(s) with the kind of resource each acts on.
//!
//! Products are keyed by the request's `Version` ([`Product`]); a request names one
//! [`ApiAction`]. The products: KMS ([`kms`], 2016-01-20), RAM ([`ram`], 2015-05-01) and STS
//! ([`sts`], 2015-04-01), each its own module with its own table and a variant in
//! [`Product`] and [`ApiAction`].
//!
//! Adding an action is one table row plus one handler: the row must give every column (the
//! macro refuses a row without one), and the exhaustive `match` in [`crate::api::dispatch`]
//! fails to compile until the handler is there. Service code can only check the state matrix
//! with a row that exists (`kms::row::<Action>` is a constant generated from the table).
//!
//! This module sits at the bottom of the crate: it uses only [`crate::error`]'s
//! [`Rejection`] and [`KmsError`].

use std::fmt;

use crate::error::{KmsError, Rejection};

/// Generates a product's `enum Action` and its facts from one table.
///
/// ```text
/// actions! {
///     product: Kms, version: "2016-01-20", ram: "kms";
///     /// Doc comment of the variant.
///     CreateKey {
///         help: "one line for `kms CreateKey --help`",
///         params: [opt("Description", "…"), …],    // ParamSpec values, in CLI order
///         throttle: Management,                     // a ThrottleClass variant
///         changes_state: true,                      // audit line on disk before the answer
///         state: [OK, OK, OK, OK],                  // matrix row, or `none`
///         ram: [KeyContainer],                      // Resource kinds; `Key(ReEncryptFrom)`
///                                                   // names a RAM action other than kms:<Name>
///     },
///     …
/// }
/// ```
///
/// It generates, in the calling module: `VERSION`, `RAM_SERVICE`, `enum Action` (with
/// `ALL`, `name`, `from_name`, `help`, `params`, `throttle_class`, `changes_state`,
/// `state_row`, `ram`), `struct StateRow` and a module `row` with one `StateRow` constant per
/// action that has a row.
macro_rules! actions {
    (@row_const $name:ident none) => {};
    (@row_const $name:ident [$e:ident, $d:ident, $pd:ident, $pi:ident]) => {
        #[doc = concat!("The key-state row of ", stringify!($name), ".")]
        pub const $name: StateRow = StateRow {
            action: Action::$name,
            cells: [$e, $d, $pd, $pi],
        };
    };
    (@row_opt $name:ident none) => {
        None
    };
    (@row_opt $name:ident [$($cell:ident),*]) => {
        Some(row::$name)
    };
    (@ram $svc:literal $name:ident) => {
        concat!($svc, ":", stringify!($name))
    };
    (@ram $svc:literal $name:ident $other:ident) => {
        concat!($svc, ":", stringify!($other))
    };
    (
        product: $product:ident, version: $version:literal, ram: $svc:literal;
        $(
            $(#[$meta:meta])*
            $name:ident {
                help: $help:literal,
                params: [$($param:expr),* $(,)?],
                throttle: $class:ident,
                changes_state: $changes:literal,
                state: $state:tt,
                ram: [$($res:ident $(($ram:ident))?),* $(,)?] $(,)?
            }
        ),* $(,)?
    ) => {
        /// The `Version` parameter that selects this product.
        pub const VERSION: &str = $version;
        /// The service prefix of this product's RAM actions.
        pub const RAM_SERVICE: &str = $svc;

        /// The actions of this product, generated from its table.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Action {
            $($(#[$meta])* $name,)*
        }

        impl Action {
            /// Every action, in table order (the CLI lists them in this order).
            pub const ALL: &'static [Action] = &[$(Action::$name),*];
            /// The product whose table this is.
            pub const PRODUCT: $crate::action::Product = $crate::action::Product::$product;

            /// The wire name (`Action=` / `x-acs-action`).
            pub const fn name(self) -> &'static str {
                match self {
                    $(Action::$name => stringify!($name),)*
                }
            }

            /// The action with this wire name (exact, case-sensitive).
            pub fn from_name(name: &str) -> Option<Action> {
                match name {
                    $(stringify!($name) => Some(Action::$name),)*
                    _ => None,
                }
            }

            /// One line of help.
            pub const fn help(self) -> &'static str {
                match self {
                    $(Action::$name => $help,)*
                }
            }

            /// The parameters, in the order the CLI shows them.
            pub const fn params(self) -> &'static [$crate::action::ParamSpec] {
                match self {
                    $(Action::$name => {
                        const P: &[$crate::action::ParamSpec] = &[$($param),*];
                        P
                    })*
                }
            }

            /// Which per-account throttle bucket the action draws from.
            pub const fn throttle_class(self) -> $crate::action::ThrottleClass {
                match self {
                    $(Action::$name => $crate::action::ThrottleClass::$class,)*
                }
            }

            /// Whether a successful call changes state, so that its audit line must be on
            /// disk before the answer (API and console alike). Reads and cryptographic calls
            /// are recorded without waiting.
            pub const fn changes_state(self) -> bool {
                match self {
                    $(Action::$name => $changes,)*
                }
            }

            /// The action's row in the key-state × action matrix; None for an action that
            /// touches no key.
            pub const fn state_row(self) -> Option<StateRow> {
                match self {
                    $(Action::$name => actions!(@row_opt $name $state),)*
                }
            }

            /// The RAM authorisation checks the action needs: each a RAM action and the kind
            /// of resource it is checked on. Empty: any authenticated caller may call it.
            pub const fn ram(self) -> &'static [$crate::action::RamCheck] {
                match self {
                    $(Action::$name => {
                        const R: &[$crate::action::RamCheck] = &[$(
                            $crate::action::RamCheck {
                                action: actions!(@ram $svc $name $($ram)?),
                                resource: $crate::action::Resource::$res,
                            }
                        ),*];
                        R
                    })*
                }
            }
        }

        impl std::fmt::Display for Action {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }

        /// One row of the key-state × action matrix: the cells for Enabled, Disabled,
        /// PendingDeletion and PendingImport (see [`crate::model::KeyState::column`]).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct StateRow {
            pub action: Action,
            pub cells: [$crate::action::Cell; 4],
        }

        /// The matrix rows as constants, one per action that has a row: service code checks
        /// a key's state with `row::<Action>`, so a missing row is a compile error.
        #[allow(non_upper_case_globals)]
        pub mod row {
            #[allow(unused_imports)]
            use super::*;
            $(actions!(@row_const $name $state);)*
        }
    };
}

pub mod kms;
pub mod ram;
pub mod sts;

/// A parameter of an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamSpec {
    pub name: &'static str,
    pub required: bool,
    pub help: &'static str,
    pub kind: ParamKind,
}

/// How a parameter travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// `Name=value`
    Single,
    /// `Name.1=a&Name.2=b` (the command line takes `--Name a --Name b`)
    List,
    /// `Tag.1.Key=k&Tag.1.Value=v` (the command line takes `--Tag k=v`)
    TagList,
}

impl ParamSpec {
    /// The wire name that must be present for a required parameter.
    pub fn first_wire_name(&self) -> String {
        match self.kind {
            ParamKind::Single => self.name.to_string(),
            ParamKind::List => format!("{}.1", self.name),
            ParamKind::TagList => format!("{}.1.Key", self.name),
        }
    }
}

/// Classes of actions with their own per-account throttle limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ThrottleClass {
    /// Encrypt, Decrypt, GenerateDataKey(WithoutPlaintext), ReEncrypt.
    Cryptographic,
    /// GetParametersForImport, ImportKeyMaterial (RSA work).
    Import,
    /// Everything else.
    Management,
}

/// One cell of the key-state × action matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell {
    Ok,
    Reject(Rejection),
}

/// The kind of resource a RAM action is checked on (reference alibaba-ram-sts.md §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    /// `acs:kms:<region>:<account>:key/<KeyId>`
    Key,
    /// `acs:kms:<region>:<account>:key` (creating and listing keys)
    KeyContainer,
    /// `acs:kms:<region>:<account>:alias/<AliasName>`
    Alias,
    /// `acs:kms:<region>:<account>:alias` (listing aliases)
    AliasContainer,
    /// `acs:kms:<region>:<account>:secret/<SecretName>`
    Secret,
    /// `acs:kms:<region>:<account>:secret`
    SecretContainer,
    /// `*`: the action has no resource of its own.
    Any,
    /// `acs:ram::<account>:user/<UserName>` (RAM actions; the calling user without
    /// `UserName`)
    User,
    /// `acs:ram::<account>:group/<GroupName>`
    Group,
    /// `acs:ram::<account>:role/<RoleName>`
    Role,
    /// `acs:ram::<account>:policy/<PolicyName>`, or `acs:ram::system:policy/<PolicyName>`
    /// for `PolicyType=System`
    Policy,
    /// `acs:ram::<account>:user/*` (creating and listing users)
    AnyUser,
    /// `acs:ram::<account>:group/*`
    AnyGroup,
    /// `acs:ram::<account>:role/*`
    AnyRole,
    /// `acs:ram::<account>:policy/*`
    AnyPolicy,
    /// The `RoleArn` parameter itself (`sts:AssumeRole`; may name another account's role).
    RoleArn,
}

impl Resource {
    /// The ARN's resource part, with `<…>` for what the request fills in.
    pub const fn arn_resource(self) -> &'static str {
        match self {
            Resource::Key => "key/<KeyId>",
            Resource::KeyContainer => "key",
            Resource::Alias => "alias/<AliasName>",
            Resource::AliasContainer => "alias",
            Resource::Secret => "secret/<SecretName>",
            Resource::SecretContainer => "secret",
            Resource::Any => "*",
            Resource::User => "user/<UserName>",
            Resource::Group => "group/<GroupName>",
            Resource::Role => "role/<RoleName>",
            Resource::Policy => "policy/<PolicyName>",
            Resource::AnyUser => "user/*",
            Resource::AnyGroup => "group/*",
            Resource::AnyRole => "role/*",
            Resource::AnyPolicy => "policy/*",
            Resource::RoleArn => "<RoleArn>",
        }
    }
}

/// One RAM authorisation check of an action: `action` (e.g. `kms:Encrypt`) on a resource of
/// kind `resource`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RamCheck {
    pub action: &'static str,
    pub resource: Resource,
}

/// The API products, each selected by the `Version` parameter of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Product {
    /// Key Management Service, 2016-01-20.
    Kms,
    /// Resource Access Management, 2015-05-01.
    Ram,
    /// Security Token Service, 2015-04-01.
    Sts,
}

impl Product {
    pub const ALL: &'static [Product] = &[Product::Kms, Product::Ram, Product::Sts];

    /// The `Version` that selects this product.
    pub const fn version(self) -> &'static str {
        match self {
            Product::Kms => kms::VERSION,
            Product::Ram => ram::VERSION,
            Product::Sts => sts::VERSION,
        }
    }

    /// The product a `Version` selects; None for a version this server does not speak.
    pub fn from_version(version: &str) -> Option<Product> {
        Product::ALL
            .iter()
            .copied()
            .find(|p| p.version() == version)
    }

    /// This product's action with the wire name `name`.
    pub fn action(self, name: &str) -> Option<ApiAction> {
        match self {
            Product::Kms => kms::Action::from_name(name).map(ApiAction::Kms),
            Product::Ram => ram::Action::from_name(name).map(ApiAction::Ram),
            Product::Sts => sts::Action::from_name(name).map(ApiAction::Sts),
        }
    }

    /// The host name errors carry in `HostId` (RAM is global, STS and KMS regional).
    pub fn host_id(self, region: &str) -> String {
        match self {
            Product::Kms => format!("kms.{region}.aliyuncs.com"),
            Product::Ram => "ram.aliyuncs.com".to_string(),
            Product::Sts => format!("sts.{region}.aliyuncs.com"),
        }
    }
}

/// An action of one product: what a request names with `Version` and `Action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiAction {
    Kms(kms::Action),
    Ram(ram::Action),
    Sts(sts::Action),
}

/// Applies the same expression to the product's own `Action`, whatever the product.
macro_rules! each_product {
    ($self:expr, $a:ident => $e:expr) => {
        match $self {
            ApiAction::Kms($a) => $e,
            ApiAction::Ram($a) => $e,
            ApiAction::Sts($a) => $e,
        }
    };
}

impl ApiAction {
    /// Parses a request's `Version` and `Action`, with the wire errors of today: an unknown
    /// version is `InvalidVersion`, an unknown action of a known version `InvalidApi.NotFound`.
    pub fn parse(version: &str, name: &str) -> Result<ApiAction, KmsError> {
        let product = Product::from_version(version).ok_or(KmsError::InvalidVersion)?;
        product
            .action(name)
            .ok_or_else(|| KmsError::InvalidApi(name.to_string()))
    }

    pub const fn product(self) -> Product {
        match self {
            ApiAction::Kms(_) => Product::Kms,
            ApiAction::Ram(_) => Product::Ram,
            ApiAction::Sts(_) => Product::Sts,
        }
    }

    pub const fn name(self) -> &'static str {
        each_product!(self, a => a.name())
    }

    pub const fn params(self) -> &'static [ParamSpec] {
        each_product!(self, a => a.params())
    }

    pub const fn throttle_class(self) -> ThrottleClass {
        each_product!(self, a => a.throttle_class())
    }

    pub const fn changes_state(self) -> bool {
        each_product!(self, a => a.changes_state())
    }

    pub const fn ram(self) -> &'static [RamCheck] {
        each_product!(self, a => a.ram())
    }
}

impl From<kms::Action> for ApiAction {
    fn from(a: kms::Action) -> ApiAction {
        ApiAction::Kms(a)
    }
}

impl From<ram::Action> for ApiAction {
    fn from(a: ram::Action) -> ApiAction {
        ApiAction::Ram(a)
    }
}

impl From<sts::Action> for ApiAction {
    fn from(a: sts::Action) -> ApiAction {
        ApiAction::Sts(a)
    }
}

impl fmt::Display for ApiAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_select_products_and_unknown_ones_are_refused() {
        for p in Product::ALL {
            assert_eq!(Product::from_version(p.version()), Some(*p));
        }
        assert_eq!(
            ApiAction::parse("2016-01-20", "Encrypt"),
            Ok(ApiAction::Kms(kms::Action::Encrypt))
        );
        assert_eq!(
            ApiAction::parse("2015-05-01", "CreateUser"),
            Ok(ApiAction::Ram(ram::Action::CreateUser))
        );
        assert_eq!(
            ApiAction::parse("2015-04-01", "AssumeRole"),
            Ok(ApiAction::Sts(sts::Action::AssumeRole))
        );
        // The same name in two products is two actions, chosen by Version.
        assert_eq!(
            ApiAction::parse("2015-05-01", "Encrypt").map_err(|e| e.code()),
            Err("InvalidApi.NotFound")
        );
        assert_eq!(
            ApiAction::parse("2014-01-01", "Encrypt"),
            Err(KmsError::InvalidVersion)
        );
        assert_eq!(
            ApiAction::parse("2016-01-20", "NoSuchAction").map_err(|e| e.code()),
            Err("InvalidApi.NotFound")
        );
        // Names are exact.
        assert!(ApiAction::parse("2016-01-20", "encrypt").is_err());
        assert!(ApiAction::parse("2016-01-20", "").is_err());
    }

    #[test]
    fn api_action_facts_are_the_products() {
        for a in kms::Action::ALL {
            let any = ApiAction::Kms(*a);
            assert_eq!(any.product(), Product::Kms);
            assert_eq!(any.name(), a.name());
            assert_eq!(any.params(), a.params());
            assert_eq!(any.throttle_class(), a.throttle_class());
            assert_eq!(any.changes_state(), a.changes_state());
            assert_eq!(any.ram(), a.ram());
            assert_eq!(any.to_string(), a.name());
            assert_eq!(ApiAction::parse(kms::VERSION, a.name()), Ok(any));
        }
    }

    #[test]
    fn required_wire_names() {
        let p = |kind| ParamSpec {
            name: "Tag",
            required: true,
            help: "",
            kind,
        };
        assert_eq!(p(ParamKind::Single).first_wire_name(), "Tag");
        assert_eq!(p(ParamKind::List).first_wire_name(), "Tag.1");
        assert_eq!(p(ParamKind::TagList).first_wire_name(), "Tag.1.Key");
    }
}
