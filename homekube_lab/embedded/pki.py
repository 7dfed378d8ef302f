"""A throwaway PKI for the embedded cluster: one CA, the certificates each part needs.

Kubernetes authenticates clients by certificate here (the API server refuses anonymous
requests). Each component gets its own identity so that audit trails and
``kubectl auth whoami`` show who did what; the admin is in ``system:masters``::

    pki = PKI(settings.pki_dir)
    pki.ensure(advertise_ip="192.0.2.2")   # idempotent
    pki.path("admin.crt")

All keys are ECDSA P-256 (fast to make, accepted by every component) and every file is
written 0600 in a 0700 directory.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..state import write_private

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

# cryptography and yaml are imported where keys, certificates and kubeconfigs are made, not
# here: `homekube-lab status` only needs the paths, and starts ~50 ms faster without them.

#: The first address of --service-cluster-ip-range: the `kubernetes` Service's ClusterIP.
SERVICE_CIDR = "10.96.0.0/12"
KUBERNETES_SERVICE_IP = "10.96.0.1"
_VALIDITY = dt.timedelta(days=365)


@dataclass(frozen=True)
class ClientIdentity:
    """A client certificate: file stem, user name (CN) and groups (O)."""

    stem: str
    user: str
    groups: tuple[str, ...] = ()


#: Who talks to the API server. Flux's controllers get one identity in system:masters,
#: like the cluster-admin binding `flux install` gives their service accounts.
CLIENTS = (
    ClientIdentity("admin", "homekube-admin", ("system:masters",)),
    ClientIdentity("kube-controller-manager", "system:kube-controller-manager"),
    ClientIdentity("kube-scheduler", "system:kube-scheduler"),
    ClientIdentity("kwok", "homekube-kwok", ("system:masters",)),
    ClientIdentity("flux", "homekube-flux-controllers", ("system:masters",)),
    ClientIdentity("etcd-client", "kube-apiserver-etcd-client"),
)


def _key() -> ec.EllipticCurvePrivateKey:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert_pem(cert: x509.Certificate) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM)


class PKI:
    """The certificates under ``directory`` (normally ``<state>/pki``)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def path(self, name: str) -> Path:
        return self.dir / name

    def exists(self) -> bool:
        return all(self.path(n).is_file() for n in ("ca.crt", "ca.key", "sa.key", "apiserver.crt",
                                                     "admin.crt", "etcd-server.crt"))

    @staticmethod
    def pairs() -> list[tuple[str, str]]:
        """Every file the cluster needs, as (key-ish, cert-ish) pairs that belong together."""
        stems = ["ca", "apiserver", "etcd-server", *(c.stem for c in CLIENTS)]
        return [("sa.key", "sa.pub"), *((f"{s}.key", f"{s}.crt") for s in stems)]

    def missing(self) -> list[str]:
        """Files of the PKI that are not there (all of them before the first ``up``)."""
        return [n for pair in self.pairs() for n in pair if not self.path(n).is_file()]

    def ensure(self, advertise_ip: str) -> list[str]:
        """Create every key and certificate that is missing (existing ones are kept), and
        return the names of the files written.

        Half a pair (a certificate without its key, or the reverse) is moved to a backup
        directory beside the PKI and the pair issued again; without the CA's certificate or
        key nothing else can be trusted, so the whole PKI is set aside and made anew.
        Nothing is deleted."""
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.dir, 0o700)
        self.backup_dir: Path | None = None
        present = [n for pair in self.pairs() for n in pair if self.path(n).is_file()]
        ca_ok = self.path("ca.crt").is_file() and self.path("ca.key").is_file()
        if present and not ca_ok:
            for name in present:
                self._set_aside(name)
        for pair in self.pairs():
            there = [n for n in pair if self.path(n).is_file()]
            if len(there) == 1:
                self._set_aside(there[0])
        before = set(self.missing())
        self._ensure(advertise_ip)
        return sorted(before - set(self.missing()))

    def _set_aside(self, name: str) -> None:
        if self.backup_dir is None:
            stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
            self.backup_dir = self.dir.with_name(f"pki-backup-{stamp}")
            self.backup_dir.mkdir(mode=0o700, exist_ok=True)
        os.replace(self.path(name), self.backup_dir / name)

    def _ensure(self, advertise_ip: str) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        if not self.path("ca.crt").is_file():
            self._make_ca()
        ca_key = serialization.load_pem_private_key(self.path("ca.key").read_bytes(), None)
        ca_cert = x509.load_pem_x509_certificate(self.path("ca.crt").read_bytes())
        if not self.path("sa.key").is_file():
            sa = _key()
            write_private(self.path("sa.key"), _key_pem(sa))
            write_private(self.path("sa.pub"), sa.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        servers = {
            "apiserver": (["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                           "kubernetes.default.svc.cluster.local"],
                          ["127.0.0.1", "::1", KUBERNETES_SERVICE_IP, advertise_ip]),
            "etcd-server": (["localhost"], ["127.0.0.1", "::1"]),
        }
        for stem, (dns, ips) in servers.items():
            if not self.path(f"{stem}.crt").is_file():
                self._issue(ca_key, ca_cert, stem, stem, (), dns=dns, ips=ips, server=True)
        for client in CLIENTS:
            if not self.path(f"{client.stem}.crt").is_file():
                self._issue(ca_key, ca_cert, client.stem, client.user, client.groups)

    def _make_ca(self) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.x509.oid import NameOID

        key = _key()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "homekube-lab CA")])
        now = dt.datetime.now(dt.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        write_private(self.path("ca.key"), _key_pem(key))
        write_private(self.path("ca.crt"), _cert_pem(cert))

    def _issue(self, ca_key, ca_cert: x509.Certificate, stem: str, cn: str, groups: tuple[str, ...],
               *, dns: list[str] | None = None, ips: list[str] | None = None,
               server: bool = False) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        key = _key()
        attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in groups]
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
        now = dt.datetime.now(dt.timezone.utc)
        usages = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH] if server \
            else [ExtendedKeyUsageOID.CLIENT_AUTH]
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(attrs)).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
        )
        if dns or ips:
            names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns or []]
            names += [x509.IPAddress(ipaddress.ip_address(i)) for i in dict.fromkeys(ips or [])]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        write_private(self.path(f"{stem}.key"), _key_pem(key))
        write_private(self.path(f"{stem}.crt"), _cert_pem(cert))

    def kubeconfig(self, stem: str, server: str, *, cluster: str = "homekube",
                   user: str | None = None) -> str:
        """A kubeconfig (YAML text) for client ``stem`` with the certs embedded."""
        import yaml

        def b64(name: str) -> str:
            return base64.b64encode(self.path(name).read_bytes()).decode()

        user = user or stem
        return yaml.safe_dump({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": cluster, "cluster": {
                "server": server, "certificate-authority-data": b64("ca.crt")}}],
            "users": [{"name": user, "user": {
                "client-certificate-data": b64(f"{stem}.crt"),
                "client-key-data": b64(f"{stem}.key")}}],
            "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": user}}],
            "current-context": cluster,
        }, sort_keys=False)
