//! SDK error → [`PortError`], once for every adapter.
//!
//! The AWS SDKs share one error shape (`SdkError<E, R>` with error codes via
//! `ProvideErrorMetadata`), so one generic function serves all services.
//! Adapters that need more than the code (DynamoDB's ALL_OLD item on a
//! failed condition, transaction cancellation reasons) inspect the typed
//! service error first and fall back to [`from_sdk`].
use aws_sdk_dynamodb::error::{BuildError, DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::PortError;

/// Translate any SDK error; `what` names the operation and resource.
pub(crate) fn from_sdk<E, R>(what: &str, err: SdkError<E, R>) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let detail = format!("{what}: {}", DisplayErrorContext(&err));
    match &err {
        SdkError::ServiceError(_) => {}
        SdkError::ConstructionFailure(_) => return PortError::Invalid(detail),
        // Timeouts, connection failures, unreadable responses: transient.
        _ => return PortError::Unavailable(detail),
    }
    from_code(err.code().unwrap_or_default(), detail)
}

/// A conditional write: `Ok(true)` when it went through, `Ok(false)` when
/// its condition did not hold, any other failure translated.
pub(crate) fn condition_held<T, E, R>(
    what: &str,
    res: Result<T, SdkError<E, R>>,
) -> crate::Result<bool>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match res.map_err(|e| from_sdk(what, e)) {
        Ok(_) => Ok(true),
        Err(PortError::ConditionFailed(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// A service error code (of a call, or of one entry of a batch call).
pub(crate) fn from_code(code: &str, detail: String) -> PortError {
    match code {
        "ConditionalCheckFailedException" => PortError::ConditionFailed(detail),
        "ReceiptHandleIsInvalid"
        | "MessageNotInflight"
        | "AWS.SimpleQueueService.NonExistentQueue"
        | "QueueDoesNotExist"
        | "ResourceNotFoundException"
        | "NoSuchKey"
        | "NoSuchBucket" => PortError::NotFound(detail),
        "ValidationException"
        | "InvalidParameterValue"
        | "InvalidParameterException"
        | "InvalidParameterCombination"
        | "InvalidRequestException"
        | "InvalidMessageContents"
        | "InvalidAttributeName"
        | "InvalidAttributeValue"
        | "InvalidBatchEntryId"
        | "BatchEntryIdsNotDistinct"
        | "MissingParameter"
        | "ItemCollectionSizeLimitExceededException"
        | "InvalidIdFormat"
        | "AWS.SimpleQueueService.InvalidBatchEntryId"
        | "AWS.SimpleQueueService.BatchEntryIdsNotDistinct" => PortError::Invalid(detail),
        // Throttling, capacity, internal errors, transaction races, and
        // anything unknown (including credential problems, which an
        // operator must fix while callers back off): retry later.
        _ => PortError::Unavailable(detail),
    }
}

/// A request builder rejected its input (a required field missing).
pub(crate) fn built<T>(what: &str, r: Result<T, BuildError>) -> crate::Result<T> {
    r.map_err(|e| PortError::Invalid(format!("{what}: {e}")))
}
