"""A throw-away certificate authority and server certificates for the lab simulators.

The lab gateway speaks real HTTPS, so clients verify it the way they verify a production
gateway signed by a private CA: with a CA bundle (``ca.pem``), never with verification off.

    ca = CertificateAuthority.create()
    leaf = ca.issue_server_cert(["127.0.0.1", "localhost"])
    paths = write_lab_certificates(workdir)          # ca.pem, gateway-cert.pem, gateway-key.pem

Keys are EC P-256 (fast to generate). Certificates carry the extensions strict verifiers
(OpenSSL 3 with VERIFY_X509_STRICT, curl) require: CA basic constraints and key usage, subject
and authority key identifiers, serverAuth and a subjectAltName for every host.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_HOSTS = ("127.0.0.1", "localhost")


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mml-tool lab"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _san(hosts: Sequence[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    valid_days: int,
    *,
    ca: bool,
) -> x509.CertificateBuilder:
    """What a CA and a server certificate share: names, key, serial, validity (from five
    minutes ago, for clocks a little behind) and the critical constraints and key usage of a
    CA (signs certificates) or of an ECDHE server (key agreement)."""
    now = dt.datetime.now(dt.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=not ca,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )


@dataclass(frozen=True)
class ServerCertificate:
    """A leaf certificate and its private key."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey = field(repr=False)

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        return _key_pem(self.key)


@dataclass(frozen=True)
class CertificateAuthority:
    """A self-signed CA that issues server certificates for the lab."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey = field(repr=False)

    @classmethod
    def create(
        cls, common_name: str = "mml-tool lab CA", *, valid_days: int = 30
    ) -> CertificateAuthority:
        key = ec.generate_private_key(ec.SECP256R1())
        name = _name(common_name)
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            _builder(name, name, key, valid_days, ca=True)
            .add_extension(ski, critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                critical=False,
            )
            .sign(key, hashes.SHA256())
        )
        return cls(cert=cert, key=key)

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue_server_cert(
        self,
        hosts: Sequence[str] = DEFAULT_HOSTS,
        *,
        common_name: str | None = None,
        valid_days: int = 30,
    ) -> ServerCertificate:
        """Issue a TLS server certificate whose subjectAltName lists every host."""
        if not hosts:
            raise ValueError("a server certificate needs at least one host name or address")
        key = ec.generate_private_key(ec.SECP256R1())
        ca_ski = self.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        cert = (
            _builder(_name(common_name or hosts[0]), self.cert.subject, key, valid_days, ca=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(_san(hosts), critical=False)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        return ServerCertificate(cert=cert, key=key)

    def write(self, path: Path) -> Path:
        """Write the CA certificate (never its key) to ``path``: the clients' CA bundle."""
        path.write_bytes(self.cert_pem())
        return path


@dataclass(frozen=True)
class LabCertificates:
    """Where write_lab_certificates put its files."""

    ca_path: Path
    cert_path: Path
    key_path: Path


def write_lab_certificates(
    workdir: Path,
    hosts: Sequence[str] = DEFAULT_HOSTS,
    *,
    prefix: str = "gateway",
    ca_name: str = "ca.pem",
) -> LabCertificates:
    """Create a fresh CA and a server certificate for ``hosts``; write them under ``workdir``.

    Files: ``ca.pem`` (give this to clients: ``curl --cacert ca.pem``), ``<prefix>-cert.pem``
    and ``<prefix>-key.pem`` (mode 0600). The CA key stays in memory and is discarded.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    ca = CertificateAuthority.create()
    leaf = ca.issue_server_cert(hosts)
    ca_path = ca.write(workdir / ca_name)
    cert_path = workdir / f"{prefix}-cert.pem"
    cert_path.write_bytes(leaf.cert_pem())
    key_path = workdir / f"{prefix}-key.pem"
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # the mode above applies to a new file only, not to one re-used
    with os.fdopen(fd, "wb") as fh:
        fh.write(leaf.key_pem())
    return LabCertificates(ca_path=ca_path, cert_path=cert_path, key_path=key_path)
