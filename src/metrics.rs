//! Publishing a run's metrics to CloudWatch: one PutMetricData call per run, no dimensions, in the
//! namespace `MIRROR_METRICS_NAMESPACE`. The values come from `report::metric_values`.

use aws_sdk_cloudwatch::error::ProvideErrorMetadata;
use aws_sdk_cloudwatch::types::{MetricDatum, StandardUnit};

use crate::report::{metric_values, MetricUnit, RunReport};

/// Why the metrics could not be published.
#[derive(Debug, Clone, thiserror::Error)]
#[error("publishing metrics to CloudWatch namespace {namespace:?} failed: {message}")]
pub struct MetricsError {
    pub namespace: String,
    pub message: String,
}

/// Publishes the run's metrics in one call.
pub async fn publish(
    client: &aws_sdk_cloudwatch::Client,
    namespace: &str,
    report: &RunReport,
) -> Result<(), MetricsError> {
    let error = |message: String| MetricsError {
        namespace: namespace.to_owned(),
        message,
    };
    let now = aws_sdk_cloudwatch::primitives::DateTime::from(std::time::SystemTime::now());
    let mut request = client.put_metric_data().namespace(namespace);
    for metric in metric_values(report) {
        let unit = match metric.unit {
            MetricUnit::Count => StandardUnit::Count,
            MetricUnit::Bytes => StandardUnit::Bytes,
            MetricUnit::Seconds => StandardUnit::Seconds,
        };
        let datum = MetricDatum::builder()
            .metric_name(metric.name)
            .unit(unit)
            .value(metric.value)
            .timestamp(now)
            .build();
        request = request.metric_data(datum);
    }
    request.send().await.map_err(|err| {
        error(match (err.code(), err.message()) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            _ => aws_sdk_cloudwatch::error::DisplayErrorContext(&err).to_string(),
        })
    })?;
    Ok(())
}
