//! Secrets on AWS Secrets Manager: secret `<prefix>/<name>`, or the id
//! [`crate::AwsSettings::secret_ids`] gives for that name; string values.
//! Values are never logged; errors name the secret only.
use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;

use super::error::from_sdk;
use crate::{PortError, Result, SecretSource};

#[derive(Debug, Clone)]
pub(crate) struct AwsSecrets {
    client: Client,
    prefix: String,
    ids: BTreeMap<String, String>,
}

impl AwsSecrets {
    pub fn new(client: Client, prefix: &str, ids: BTreeMap<String, String>) -> Self {
        AwsSecrets {
            client,
            prefix: prefix.to_owned(),
            ids,
        }
    }

    fn id(&self, name: &str) -> String {
        match self.ids.get(&crate::secrets::env_name("", name)) {
            Some(id) => id.clone(),
            None => format!("{}/{name}", self.prefix),
        }
    }
}

#[async_trait]
impl SecretSource for AwsSecrets {
    fn location(&self, name: &str) -> String {
        format!("Secrets Manager secret {}", self.id(name))
    }

    async fn fetch(&self, name: &str) -> Result<Option<String>> {
        let id = self.id(name);
        match self.client.get_secret_value().secret_id(&id).send().await {
            Ok(out) => match out.secret_string() {
                Some(v) => Ok(Some(v.to_owned())),
                None => Err(PortError::Corrupt(format!(
                    "secret {id} holds binary data, not a string"
                ))),
            },
            Err(e) => match from_sdk(&format!("get secret {id}"), e) {
                PortError::NotFound(_) => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn store(&self, name: &str, value: &str) -> Result<()> {
        let id = self.id(name);
        let put = self
            .client
            .put_secret_value()
            .secret_id(&id)
            .secret_string(value)
            .send()
            .await;
        let missing = match put {
            Ok(_) => return Ok(()),
            Err(e) => from_sdk(&format!("put secret {id}"), e),
        };
        if !matches!(missing, PortError::NotFound(_)) {
            return Err(missing);
        }
        let create = self
            .client
            .create_secret()
            .name(&id)
            .secret_string(value)
            .send()
            .await;
        match create {
            Ok(_) => Ok(()),
            // Created concurrently by someone else: put our value over it.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_exists_exception()) =>
            {
                self.client
                    .put_secret_value()
                    .secret_id(&id)
                    .secret_string(value)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| from_sdk(&format!("put secret {id}"), e))
            }
            Err(e) => Err(from_sdk(&format!("create secret {id}"), e)),
        }
    }
}
