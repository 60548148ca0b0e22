"""A vector sealed under a secret key: what a pickle keeps of the fit point.

The linearisation at the fit point (``linearization="fit"``) needs the fitted
parameters ``θ*`` between requests; beside the published parameters and the stored
curvature they give the erased rows' summed gradient back (``docs/privacy.md``).
A saved state therefore holds ``θ*`` only sealed: XORed with a keystream of keyed
BLAKE2b (a pseudo-random function in counter mode) under a synthetic nonce (a
keyed hash of the vector), with a keyed tag that detects a wrong key. Without the
key the sealed bytes are indistinguishable from random; the key is never pickled.
"""

import hashlib
import hmac

import numpy as np

__all__ = ["seal", "unseal", "check_key"]

_BLOCK = 64  # bytes of one BLAKE2b output


def check_key(key):
    """``key`` as bytes, or ``ValueError`` unless it is 16 to 64 bytes."""
    if not isinstance(key, bytes | bytearray) or not 16 <= len(key) <= 64:
        raise ValueError("the erasure key must be bytes of length 16 to 64")
    return bytes(key)


def _keystream(key, nonce, size):
    blocks = -(-size // _BLOCK)
    stream = b"".join(
        hashlib.blake2b(
            nonce + i.to_bytes(8, "little"), key=key, person=b"ssse-seal"
        ).digest()
        for i in range(blocks)
    )
    return np.frombuffer(stream[:size], dtype=np.uint8)


def _tag(key, nonce, body):
    return hashlib.blake2b(
        nonce + body, key=key, digest_size=16, person=b"ssse-tag"
    ).hexdigest()


def seal(vector, key):
    """``vector`` (a NumPy array) sealed under ``key``: a dict of plain types."""
    vector = np.ascontiguousarray(vector)
    plain = np.frombuffer(vector.tobytes(), dtype=np.uint8)
    # A synthetic nonce (keyed hash of the vector): one state pickles to the same
    # bytes every time, and two sealed vectors share a nonce only when equal.
    nonce = hashlib.blake2b(
        plain.tobytes(), key=key, digest_size=16, person=b"ssse-nonce"
    ).digest()
    body = plain ^ _keystream(key, nonce, plain.size)
    return {
        "nonce": nonce.hex(),
        "body": body,
        "tag": _tag(key, nonce, body.tobytes()),
        "dtype": vector.dtype.str,
        "shape": list(vector.shape),
    }


def unseal(sealed, key):
    """The vector :func:`seal` sealed, or ``ValueError`` for another key."""
    nonce = bytes.fromhex(sealed["nonce"])
    body = np.asarray(sealed["body"], dtype=np.uint8)
    if not hmac.compare_digest(_tag(key, nonce, body.tobytes()), sealed["tag"]):
        raise ValueError("the erasure key does not open this state (another key)")
    plain = body ^ _keystream(key, nonce, body.size)
    return np.frombuffer(plain.tobytes(), dtype=sealed["dtype"]).reshape(
        sealed["shape"]
    )
