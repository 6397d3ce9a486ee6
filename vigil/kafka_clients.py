"""How every Kafka client of Vigil connects: the security settings, mapped once per client library.

A managed Kafka cluster requires TLS, often a client certificate (mutual TLS), and SASL
(PLAIN or SCRAM). The settings say it once (``VIGIL_KAFKA_SECURITY_PROTOCOL`` and
friends); each library gets them in its own words from here:

- ``librdkafka_config``: confluent-kafka's dotted properties, for the worker's consumer
  and producers, ``vigil publish`` and the admin client;
- ``aiokafka_config`` / ``ssl_context``: aiokafka's keyword arguments and an
  ``ssl.SSLContext``, for the notifier (faust-streaming takes the same context and SASL
  arguments as ``broker_credentials``, docs/operations.md#secure-kafka).

``check_access`` reaches the cluster once before a command starts its real work, so
that a wrong password or an untrusted certificate ends it with one line saying so,
instead of clients retrying (and logging) forever.
"""

from __future__ import annotations

import logging
import ssl
import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from vigil.settings import KafkaSettings, Settings

log = logging.getLogger(__name__)

ACCESS_TIMEOUT = 10.0
"""Seconds ``check_access`` waits for a cluster that does not answer at all."""


def uses_tls(kafka: KafkaSettings) -> bool:
    return kafka.security_protocol in ("SSL", "SASL_SSL")


def uses_sasl(kafka: KafkaSettings) -> bool:
    return kafka.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")


def librdkafka_config(settings: Settings) -> dict[str, Any]:
    """Bootstrap servers and security properties for any confluent-kafka client."""
    kafka = settings.kafka
    config: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_brokers,
        "security.protocol": kafka.security_protocol,
    }
    if uses_tls(kafka):
        if kafka.ssl_ca_file is not None:
            config["ssl.ca.location"] = str(kafka.ssl_ca_file)
        if kafka.ssl_cert_file is not None and kafka.ssl_key_file is not None:
            config["ssl.certificate.location"] = str(kafka.ssl_cert_file)
            config["ssl.key.location"] = str(kafka.ssl_key_file)
            if kafka.ssl_key_password is not None:
                config["ssl.key.password"] = kafka.ssl_key_password.get_secret_value()
        config["ssl.endpoint.identification.algorithm"] = "https" if kafka.ssl_check_hostname else "none"
    if uses_sasl(kafka):
        config["sasl.mechanism"] = kafka.sasl_mechanism
        config["sasl.username"], config["sasl.password"] = _credentials(kafka)
    return config


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context asyncio-based clients need; ``None`` when the protocol has no TLS."""
    kafka = settings.kafka
    if not uses_tls(kafka):
        return None
    context = ssl.create_default_context(cafile=str(kafka.ssl_ca_file) if kafka.ssl_ca_file else None)
    context.check_hostname = kafka.ssl_check_hostname
    if kafka.ssl_cert_file is not None and kafka.ssl_key_file is not None:
        password = kafka.ssl_key_password.get_secret_value() if kafka.ssl_key_password else None
        context.load_cert_chain(kafka.ssl_cert_file, kafka.ssl_key_file, password)
    return context


def aiokafka_config(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``AIOKafkaProducer``, ``AIOKafkaConsumer`` and ``AIOKafkaAdminClient``."""
    kafka = settings.kafka
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_brokers,
        "security_protocol": kafka.security_protocol,
    }
    context = ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    if uses_sasl(kafka):
        options["sasl_mechanism"] = kafka.sasl_mechanism
        options["sasl_plain_username"], options["sasl_plain_password"] = _credentials(kafka)
    return options


def faust_credentials(settings: Settings) -> Any:
    """``broker_credentials`` of a faust app (the notifier): the same TLS context and SASL
    login as every other client, or None on a plaintext cluster."""
    import faust

    kafka = settings.kafka
    context = ssl_context(settings)
    if uses_sasl(kafka):
        username, password = _credentials(kafka)
        return faust.SASLCredentials(
            username=username, password=password, mechanism=kafka.sasl_mechanism, ssl_context=context
        )
    return faust.SSLCredentials(context) if context is not None else None


def _credentials(kafka: KafkaSettings) -> tuple[str, str]:
    if kafka.sasl_username is None or kafka.sasl_password is None:  # the settings refuse this already
        raise ValueError("SASL needs kafka.sasl_username and kafka.sasl_password")
    return kafka.sasl_username, kafka.sasl_password.get_secret_value()


class KafkaAccessError(RuntimeError):
    """The cluster cannot be used with these settings; the message says why, in one line."""


_REFUSED = {
    KafkaError._AUTHENTICATION: "authentication failed",
    KafkaError._SSL: "TLS failed",
    KafkaError.SASL_AUTHENTICATION_FAILED: "authentication failed",
    KafkaError.TOPIC_AUTHORIZATION_FAILED: "not authorized",
    KafkaError.CLUSTER_AUTHORIZATION_FAILED: "not authorized",
}
"""Errors that no retry mends: the credentials or certificates are wrong."""


def check_access(settings: Settings, timeout: float = ACCESS_TIMEOUT) -> None:
    """Fetch the cluster's metadata once with the configured credentials, or raise ``KafkaAccessError``."""
    errors: list[KafkaError] = []
    # librdkafka's own log lines would repeat what error_cb reports, once per retry.
    try:
        config: dict[str, Any] = {**librdkafka_config(settings), "error_cb": errors.append, "log_level": 0}
        admin = AdminClient(config)
    except KafkaException as error:  # e.g. a certificate file that cannot be read
        raise KafkaAccessError(_describe(settings, "client settings refused", error.args[0])) from None
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin.list_topics(timeout=min(2.0, max(deadline - time.monotonic(), 0.1)))
            return
        except KafkaException as error:
            last = error.args[0]
        admin.poll(0)  # serve error_cb
        refused = [e for e in errors if e.code() in _REFUSED]
        if refused:
            raise KafkaAccessError(_describe(settings, _REFUSED[refused[-1].code()], refused[-1]))
        if time.monotonic() >= deadline:
            cause = errors[-1] if errors else last
            raise KafkaAccessError(
                "cannot reach "
                + _describe(settings, f"no answer within {timeout:.0f}s", cause)
                + "; start the broker or set VIGIL_KAFKA_BROKERS"
            )


def _describe(settings: Settings, what: str, error: KafkaError) -> str:
    hint = {
        "authentication failed": " (check VIGIL_KAFKA_SASL_USERNAME, VIGIL_KAFKA_SASL_PASSWORD and "
        "VIGIL_KAFKA_SASL_MECHANISM)",
        "TLS failed": " (check VIGIL_KAFKA_SSL_CA_FILE, the client certificate and the broker's host name)",
    }.get(what, "")
    return (
        f"Kafka at {settings.kafka_brokers} ({settings.kafka.security_protocol}): {what}: "
        f"{' '.join(error.str().split())}{hint}"
    )
