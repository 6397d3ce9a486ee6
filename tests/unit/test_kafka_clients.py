"""vigil.kafka_clients: one set of security settings, in each client library's words."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from vigil.kafka_clients import aiokafka_config, librdkafka_config, ssl_context
from vigil.settings import Settings


def settings(**kafka: object) -> Settings:
    return Settings(kafka_brokers="kafka-1:9093,kafka-2:9093", kafka=kafka)  # type: ignore[arg-type]


def test_plaintext_needs_nothing_but_the_brokers() -> None:
    assert librdkafka_config(settings()) == {
        "bootstrap.servers": "kafka-1:9093,kafka-2:9093",
        "security.protocol": "PLAINTEXT",
    }
    assert aiokafka_config(settings()) == {
        "bootstrap_servers": "kafka-1:9093,kafka-2:9093",
        "security_protocol": "PLAINTEXT",
    }


def test_sasl_ssl_with_a_client_certificate_maps_to_librdkafka_properties(tmp_path: Path) -> None:
    config = librdkafka_config(
        settings(
            security_protocol="SASL_SSL",
            ssl_ca_file=tmp_path / "ca.crt",
            ssl_cert_file=tmp_path / "client.crt",
            ssl_key_file=tmp_path / "client.key",
            ssl_key_password="key-secret",
            sasl_mechanism="SCRAM-SHA-256",
            sasl_username="vigil",
            sasl_password="sasl-secret",
        )
    )
    assert config == {
        "bootstrap.servers": "kafka-1:9093,kafka-2:9093",
        "security.protocol": "SASL_SSL",
        "ssl.ca.location": str(tmp_path / "ca.crt"),
        "ssl.certificate.location": str(tmp_path / "client.crt"),
        "ssl.key.location": str(tmp_path / "client.key"),
        "ssl.key.password": "key-secret",
        "ssl.endpoint.identification.algorithm": "https",
        "sasl.mechanism": "SCRAM-SHA-256",
        "sasl.username": "vigil",
        "sasl.password": "sasl-secret",
    }


def test_sasl_without_tls_sends_no_tls_settings() -> None:
    config = librdkafka_config(
        settings(
            security_protocol="SASL_PLAINTEXT", sasl_username="vigil", sasl_password="s", ssl_ca_file="x"
        )
    )
    assert not [name for name in config if name.startswith("ssl.")]
    assert (
        ssl_context(settings(security_protocol="SASL_PLAINTEXT", sasl_username="v", sasl_password="s"))
        is None
    )


def test_aiokafka_gets_an_ssl_context_with_the_client_certificate(tmp_path: Path) -> None:
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", "client.key", "-out", "client.crt", "-days", "1", "-subj", "/CN=vigil"],
        cwd=tmp_path, check=True, capture_output=True,
    )  # fmt: skip
    options = aiokafka_config(
        settings(
            security_protocol="SASL_SSL",
            ssl_ca_file=tmp_path / "client.crt",
            ssl_cert_file=tmp_path / "client.crt",
            ssl_key_file=tmp_path / "client.key",
            ssl_check_hostname=False,
            sasl_mechanism="PLAIN",
            sasl_username="vigil",
            sasl_password="sasl-secret",
        )
    )
    context = options.pop("ssl_context")
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is False
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "vigil"),),)]
    assert options == {
        "bootstrap_servers": "kafka-1:9093,kafka-2:9093",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "PLAIN",
        "sasl_plain_username": "vigil",
        "sasl_plain_password": "sasl-secret",
    }


def test_incomplete_security_settings_are_refused_at_start() -> None:
    with pytest.raises(ValidationError, match=r"needs kafka\.sasl_username and kafka\.sasl_password"):
        settings(security_protocol="SASL_SSL", sasl_username="vigil")
    with pytest.raises(ValidationError, match="go together"):
        settings(security_protocol="SSL", ssl_cert_file="client.crt")


def test_printed_settings_hide_the_passwords() -> None:
    shown = repr(settings(security_protocol="SASL_SSL", sasl_username="vigil", sasl_password="sasl-secret"))
    assert "sasl-secret" not in shown
