//! The filters of `GET /invoices`.

use chrono::{DateTime, Utc};

use super::model::InvoiceStatus;

/// The most invoices one page may hold.
pub const MAX_PAGE_SIZE: u32 = 250;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvoiceSortField {
    InvoiceNumber,
    CreatedAt,
    CustomerId,
    ExternalCustomerId,
    DueDate,
    UpdatedAt,
    IsPendingPayment,
    OpenBalance,
    OriginalBalance,
    Status,
}

impl InvoiceSortField {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvoiceNumber => "invoiceNumber",
            Self::CreatedAt => "createdAt",
            Self::CustomerId => "customerId",
            Self::ExternalCustomerId => "externalCustomerId",
            Self::DueDate => "dueDate",
            Self::UpdatedAt => "updatedAt",
            Self::IsPendingPayment => "isPendingPayment",
            Self::OpenBalance => "openBalance",
            Self::OriginalBalance => "originalBalance",
            Self::Status => "status",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortOrder {
    Asc,
    Desc,
}

impl SortOrder {
    /// As `orderBy` takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Asc => "ASC",
            Self::Desc => "DESC",
        }
    }
}

/// The paging, sorting and `searchBy` pairs every B2B list endpoint takes.
pub(crate) fn list_pairs(
    offset: u64,
    limit: u32,
    sort_by: Option<&'static str>,
    order: Option<SortOrder>,
    search_by: Option<&'static str>,
) -> Vec<(&'static str, String)> {
    let mut pairs = vec![("offset", offset.to_string()), ("limit", limit.to_string())];
    let optional = [
        ("sortBy", sort_by),
        ("orderBy", order.map(SortOrder::as_str)),
        ("searchBy", search_by),
    ];
    pairs.extend(
        optional
            .into_iter()
            .filter_map(|(key, value)| Some((key, value?.to_owned()))),
    );
    pairs
}

/// The fields `searchBy` + `q` can search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvoiceSearchField {
    InvoiceNumber,
    Type,
    OrderNumber,
    PurchaseOrderNumber,
    CustomerId,
    ExternalCustomerId,
}

impl InvoiceSearchField {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvoiceNumber => "invoiceNumber",
            Self::Type => "type",
            Self::OrderNumber => "orderNumber",
            Self::PurchaseOrderNumber => "purchaseOrderNumber",
            Self::CustomerId => "customerId",
            Self::ExternalCustomerId => "externalCustomerId",
        }
    }
}

/// What to list. The default lists every invoice, 250 a page, in the API's default order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceQuery {
    pub sort_by: Option<InvoiceSortField>,
    pub order: Option<SortOrder>,
    /// `searchBy`; with `q` only, every searchable field is searched.
    pub search_by: Option<InvoiceSearchField>,
    pub q: Option<String>,
    pub customer_name: Option<String>,
    pub customer_id: Option<String>,
    pub status: Option<InvoiceStatus>,
    /// `beginDateAt` / `endDateAt`: the range of creation times.
    pub created_from: Option<DateTime<Utc>>,
    pub created_to: Option<DateTime<Utc>>,
    /// `externalId[]`: any of these ERP invoice ids.
    pub external_ids: Vec<String>,
    pub include_extra_fields: bool,
    pub channel_ids: Vec<u64>,
    /// Invoices per page, 1 to 250.
    pub page_size: u32,
}

impl Default for InvoiceQuery {
    fn default() -> Self {
        Self {
            sort_by: None,
            order: None,
            search_by: None,
            q: None,
            customer_name: None,
            customer_id: None,
            status: None,
            created_from: None,
            created_to: None,
            external_ids: Vec::new(),
            include_extra_fields: false,
            channel_ids: Vec::new(),
            page_size: MAX_PAGE_SIZE,
        }
    }
}

impl InvoiceQuery {
    /// The invoices with these ERP ids.
    pub fn by_external_ids<I, S>(ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            external_ids: ids.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// The invoices whose number contains `number` (B2B searches substrings: filter exact matches).
    pub fn by_invoice_number(number: impl Into<String>) -> Self {
        Self {
            search_by: Some(InvoiceSearchField::InvoiceNumber),
            q: Some(number.into()),
            ..Self::default()
        }
    }

    pub fn page_size(&self) -> u32 {
        self.page_size.clamp(1, MAX_PAGE_SIZE)
    }

    /// Query-string pairs for one page.
    pub fn to_pairs(&self, offset: u64) -> Vec<(&'static str, String)> {
        let mut pairs = list_pairs(
            offset,
            self.page_size(),
            self.sort_by.map(|s| s.as_str()),
            self.order,
            self.search_by.map(|s| s.as_str()),
        );
        let optional = [
            ("q", &self.q),
            ("customerName", &self.customer_name),
            ("customerId", &self.customer_id),
        ];
        for (key, value) in optional {
            if let Some(v) = value {
                pairs.push((key, v.clone()));
            }
        }
        if let Some(s) = self.status {
            pairs.push(("status", s.code().to_string()));
        }
        if let Some(t) = self.created_from {
            pairs.push(("beginDateAt", t.timestamp().to_string()));
        }
        if let Some(t) = self.created_to {
            pairs.push(("endDateAt", t.timestamp().to_string()));
        }
        pairs.extend(
            self.external_ids
                .iter()
                .map(|id| ("externalId[]", id.clone())),
        );
        if self.include_extra_fields {
            pairs.push(("isIncludeExtraFields", "1".to_owned()));
        }
        pairs.extend(
            self.channel_ids
                .iter()
                .map(|id| ("channelIds", id.to_string())),
        );
        pairs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_query_pages_by_250() {
        assert_eq!(
            InvoiceQuery::default().to_pairs(500),
            vec![("offset", "500".to_owned()), ("limit", "250".to_owned())]
        );
    }

    #[test]
    fn external_ids_repeat_with_brackets() {
        let q = InvoiceQuery::by_external_ids(["a", "b"]);
        let pairs = q.to_pairs(0);
        assert!(pairs.contains(&("externalId[]", "a".to_owned())));
        assert!(pairs.contains(&("externalId[]", "b".to_owned())));
    }

    #[test]
    fn page_size_is_clamped_to_the_api_limit() {
        let q = InvoiceQuery {
            page_size: 1000,
            ..InvoiceQuery::default()
        };
        assert_eq!(q.page_size(), 250);
    }
}
