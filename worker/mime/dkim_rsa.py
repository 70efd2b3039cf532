"""dkimpy's signer with its one slow step, the RSA signature, done by OpenSSL.

dkimpy computes RSA signatures in pure Python: 6-13 ms per message for a 2048-bit key,
holding the GIL, which capped a worker near 120 sends/s (``tests/benchmarks/bench_dkim.py``).
``cryptography`` signs the same digest in about 0.3 ms. Everything else (canonicalization,
the header hash, the DKIM-Signature header and its folding) stays dkimpy's: this class
only replaces the signing call inside ``DKIM.gen_header``, whose body it follows line for
line (dkimpy 1.1). Every signature is checked with ``dkim.verify`` in the tests.
"""

from __future__ import annotations

import base64
from typing import Any

import dkim
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

_SHA256 = hashes.SHA256()


def load_rsa(pem: bytes) -> rsa.RSAPrivateKey:
    """The key as OpenSSL holds it (ValueError/TypeError when it is not an RSA key)."""
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise TypeError("not an RSA key")
    return key


class OpenSslRsaDKIM(dkim.DKIM):  # type: ignore[misc]  # dkimpy is untyped
    def __init__(self, message: bytes, key: rsa.RSAPrivateKey) -> None:
        super().__init__(message, linesep=b"\r\n")
        self._key = key

    def gen_header(  # noqa: PLR0917 (dkimpy's signature)
        self,
        fields: list[tuple[bytes, bytes]],
        include_headers: tuple[bytes, ...],
        canon_policy: Any,
        header_name: bytes,
        pk: Any,
        standardize: bool = False,
    ) -> bytes:
        if standardize or self.signature_algorithm != b"rsa-sha256":
            return bytes(
                super().gen_header(
                    fields, include_headers, canon_policy, header_name, pk, standardize
                )
            )
        header_value = b"; ".join(b"=".join(x) for x in fields)
        header_value = dkim.fold(header_value, namelen=len(header_name), linesep=b"\r\n")
        header_value = dkim.RE_BTAG.sub(b"\\1", header_value)
        header = (header_name, b" " + header_value)
        hashed = dkim.HashThrough(self.hasher(), self.debug_content)
        headers = canon_policy.canonicalize_headers(self.headers)
        self.signed_headers = dkim.hash_headers(
            hashed, canon_policy, headers, include_headers, header, dict(fields)
        )
        signature = self._key.sign(hashed.digest(), padding.PKCS1v15(), utils.Prehashed(_SHA256))
        index = next(i for i in range(len(fields)) if fields[i][0] == b"b")
        fields[index] = (b"b", base64.b64encode(signature))
        header_value = b"; ".join(b"=".join(x) for x in fields) + self.linesep
        return bytes(dkim.fold(header_value, namelen=len(header_name), linesep=self.linesep))
