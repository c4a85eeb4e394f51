//! Pure types and rules, no I/O: the canonical invoice, money, mapping to B2B and fingerprints.

pub mod invoice;
pub mod money;
pub mod record;

pub use invoice::{
    amount_text, Lifecycle, PostalAddress, RawAddress, RawInvoice, RawLineItem, SourceInvoice,
    SourceLineItem,
};
pub use money::{Currency, Money};
pub use record::{RecordError, RecordLocator};
