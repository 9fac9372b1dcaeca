"""Alerting: rules over the event stream, evaluated as events are stored, notified by webhook.

``signals`` keeps cheap per-second state per function as batches arrive, ``evaluator`` turns rule values
into pending → firing → resolved instances, ``store`` keeps instances and deliveries in ClickHouse, and
``notify`` delivers webhooks (generic JSON or Slack) with retries.
"""
