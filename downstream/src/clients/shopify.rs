//! Shopify Admin REST: order lookup by order number
//! (`GET /admin/api/<version>/orders.json?name=%23<n>&status=any`,
//! header `X-Shopify-Access-Token`). Optional enrichment: off in safe mode.
use serde::{Deserialize, Serialize};

use super::{Call, decode, id, url};
use crate::{Bucket, CallError, Clients, Downstream, Method};

/// The order fields switchyard uses (no customer contact data).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    /// Shopify's id of the order.
    #[serde(deserialize_with = "id::string")]
    pub id: String,
    /// `#1001`.
    pub name: String,
    /// `1001`.
    #[serde(default)]
    pub order_number: Option<u64>,
    /// `paid`, `refunded`...
    #[serde(default)]
    pub financial_status: Option<String>,
    /// `fulfilled`, `partial`, or none yet.
    #[serde(default)]
    pub fulfillment_status: Option<String>,
    /// When it was placed.
    #[serde(default)]
    pub created_at: Option<String>,
    /// When it was cancelled, if it was.
    #[serde(default)]
    pub cancelled_at: Option<String>,
    /// Total, as a decimal string.
    #[serde(default)]
    pub total_price: Option<String>,
    /// Currency code of the total.
    #[serde(default)]
    pub currency: Option<String>,
    /// Shipments.
    #[serde(default)]
    pub fulfillments: Vec<Fulfillment>,
}

/// One shipment of an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fulfillment {
    /// `success`, `cancelled`...
    #[serde(default)]
    pub status: Option<String>,
    /// Carrier.
    #[serde(default)]
    pub tracking_company: Option<String>,
    /// Carrier's tracking number.
    #[serde(default)]
    pub tracking_number: Option<String>,
    /// Carrier's tracking page.
    #[serde(default)]
    pub tracking_url: Option<String>,
}

#[derive(Deserialize)]
struct Orders {
    orders: Vec<Order>,
}

/// The Shopify Admin client (a view of [`Clients`]).
#[derive(Debug, Clone)]
pub struct Shopify {
    ds: Clients,
}

impl Shopify {
    pub(crate) fn new(ds: Clients) -> Self {
        Shopify { ds }
    }

    /// The order named `#<number>` (a leading `#` in `number` is accepted),
    /// or `None`.
    pub async fn order_by_number(&self, number: &str) -> Result<Option<Order>, CallError> {
        let cfg = self.ds.config();
        let name = format!("#{}", number.trim().trim_start_matches('#'));
        let mut url = url(
            &cfg.shopify.base_url,
            &["admin", "api", &cfg.shopify_api_version, "orders.json"],
        )?;
        url.query_pairs_mut()
            .append_pair("name", &name)
            .append_pair("status", "any");
        let call = Call {
            ds: &self.ds,
            downstream: Downstream::Shopify,
            bucket: Bucket::Shopify,
        };
        let reply = call.send(Method::Get, url, None, false, true, None).await?;
        let orders: Orders = decode(reply)?;
        // `name=` also matches prefixes on some shops: keep the exact one.
        Ok(orders.orders.into_iter().find(|o| o.name == name))
    }
}
