//! The time a log line says it was written (syslog, ISO 8601, RFC 5424,
//! Apache, epoch), so findtime counts from the event, not from when we read it.
