//! The BigCommerce B2B Edition Invoice API client (api-docs 000-002 and the OpenAPI spec).
//!
//! - [`client`]: one method per endpoint, every call through the store's [`budget`].
//! - [`model`]: request and response types; `details` is kept whole so nothing is lost (the
//!   invoice document's value types are `domain::document`'s, re-exported).
//! - [`payments`]: payments buyers made in B2B Edition, and the filters of their list.
//! - [`error`]: what went wrong, and whether a failed mutation may have been applied.
//! - [`requests`]: the create and update requests built from a desired invoice.

pub mod budget;
pub mod client;
pub mod error;
pub mod model;
pub mod payments;
pub mod query;
pub mod requests;

// The JSON readers live with the invoice document in `domain`; `super::wire` names them here.
use crate::domain::document::wire;

pub use budget::{BudgetStats, RequestBudget, Reservation};
pub use client::{B2bClient, ClientBuildError};
pub use error::B2bError;
pub use model::*;
pub use payments::{
    Payment, PaymentId, PaymentLine, PaymentQuery, PaymentSearchField, PaymentSortField,
};
pub use query::{InvoiceQuery, InvoiceSearchField, InvoiceSortField, SortOrder};
