"""The health probes' TLS contexts (no cluster): trust only the lab's CA, present the client
certificate, never load the system's CA bundle, and follow a re-issued PKI file."""

from __future__ import annotations

import os
import ssl
from pathlib import Path

from homekube_lab.embedded.pki import PKI
from homekube_lab.embedded.probes import tls_context


def test_a_probe_trusts_only_the_labs_ca_and_follows_a_reissued_file(tmp_path: Path) -> None:
    pki = PKI(tmp_path / "pki")
    pki.ensure("192.0.2.2")
    ca, crt, key = pki.path("ca.crt"), pki.path("admin.crt"), pki.path("admin.key")

    ctx = tls_context(ca, crt, key)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert ctx.cert_store_stats()["x509_ca"] == 1, "only the lab's CA is trusted"
    assert tls_context(ca, crt, key) is ctx, "unchanged files: the same context is reused"

    # A re-issued certificate (what `up` does after a PKI file was deleted) is picked up.
    st = crt.stat()
    os.utime(crt, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert tls_context(ca, crt, key) is not ctx


def test_a_probe_without_ca_skips_verification_without_loading_the_system_bundle() -> None:
    ctx = tls_context(None, None, None)
    assert ctx.verify_mode == ssl.CERT_NONE and not ctx.check_hostname
    assert ctx.cert_store_stats()["x509_ca"] == 0
