//! The BigCommerce B2B Edition Invoice API client (api-docs 000-002 and the OpenAPI spec).
//!
//! - [`client`]: one method per endpoint, every call through the store's [`budget`].
//! - [`model`]: request and response types; `details` is kept whole so nothing is lost.
//! - [`payments`]: payments buyers made in B2B Edition, and the filters of their list.
//! - [`error`]: what went wrong, and whether a failed mutation may have been applied.

pub mod budget;
pub mod client;
pub mod error;
pub mod model;
pub mod payments;
pub mod query;
mod wire;

pub use budget::{BudgetStats, RequestBudget, Reservation};
pub use client::{B2bClient, ClientBuildError};
pub use error::B2bError;
pub use model::*;
pub use payments::{
    Payment, PaymentId, PaymentLine, PaymentQuery, PaymentSearchField, PaymentSortField,
};
pub use query::{InvoiceQuery, InvoiceSearchField, InvoiceSortField, SortOrder};
