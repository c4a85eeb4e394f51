//! Pure types and rules, no I/O: the canonical invoice, money, the invoice document B2B Edition
//! stores, mapping to it and fingerprints.

pub mod cursor;
pub mod deletion;
pub mod document;
pub mod field_paths;
pub mod fingerprint;
pub mod invoice;
pub mod limits;
pub mod mapping;
pub mod money;
pub mod policy;
pub mod record;
pub mod version;

pub use cursor::Cursor;
pub use deletion::{deletion_action, B2bBalance, DeletionAction};
pub use fingerprint::{fingerprint, Fingerprint};
pub use invoice::{
    amount_text, Lifecycle, PostalAddress, RawAddress, RawInvoice, RawLineItem, SourceInvoice,
    SourceLineItem,
};
pub use limits::check_limits;
pub use mapping::{map_invoice, DesiredInvoice};
pub use money::{Currency, Money};
pub use record::{RecordError, RecordLocator};
pub use version::SourceVersion;
