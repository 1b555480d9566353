"""Session records as bytes: the compact form the session store encrypts into Redis, and the old JSON read back.

Most of a record is text that is really binary: an RS256 ID token is base64url of two small JSON documents and a
256-byte signature, and the Shopify tokens are base62. So a version-1 record is

    0x01 | json length, ID-token header length (2 x uint16, big-endian)
         | raw DEFLATE, with the preset dictionary below, of: compact JSON | ID-token header | ID-token payload
         | the ID token's signature, as raw bytes

The compact JSON holds every stored Session field under a one-letter key (defaults left out, `claims.sub` left out
when it is `sub`); the ID token's segments are stored decoded and re-encoded on the way out, byte for byte (a token
whose segments are not canonical base64url stays in the JSON as text). The signature is random, so it stays out of
the compressed part, where it would only spoil the Huffman tables for the rest. Integrity is AES-GCM's job
(app/crypto.py): a tampered or truncated record never gets here.

Records written before this module are the session's JSON (`{...}`); they still load, so a deploy logs nobody out.
The dictionary is part of version 1: changing it means a new version byte, with version 1 still read.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import struct
import zlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.store.sessions import Session

VERSION_1 = 1
_VERSION_BYTE = bytes([VERSION_1])
_LENGTHS = struct.Struct(">HH")
# A 4 KB window holds the dictionary and a whole record; the default 32 KB one costs more to set up than to use.
_WINDOW_BITS = -12  # negative: raw DEFLATE, no zlib header or checksum (AES-GCM already authenticates)
_TRANSIENT = frozenset({"sid", "generation", "ttl_ms"})  # in the key or the value's prefix, not the record
_SHORT = {
    "sub": "s",
    "claims": "c",
    "access_token": "a",
    "access_expires_at": "e",
    "access_lifetime": "l",
    "refresh_token": "r",
    "id_token": "i",  # only when its segments are not canonical base64url
    "credential": "k",
    "created_at": "t",
    "customer_id": "u",
    "user_agent": "d",
    "carts": "x",
}
_LONG = {short: name for name, short in _SHORT.items()}
_URLSAFE = bytes.maketrans(b"+/", b"-_")

# Strings every record is likely to repeat, so even their first occurrence is a back-reference. DEFLATE codes
# nearer matches more cheaply, so the likeliest come last.
_DICTIONARY = (
    b'{"alg":"RS256","kid":"","typ":"JWT"}'
    b'{"iss":"https://shopify.com/authentication/","sub":"gid://shopify/Customer/","aud":"shp_'
    b'","exp":17,"iat":17,"nonce":"","sid":"","email":"@hotmail.com","email_verified":true,"auth_time":17}'
    b'{"s":"gid://shopify/Customer/","c":{"email":"@gmail.com","email_verified":true},"a":"shcat_","e":17'
    b',"l":3600,"l":86400,"r":"shcrt_","k":"","t":17,"u":"gid://shopify/Customer/","x":["gid://shopify/Cart/'
    b'"],"d":"Safari on iOS","d":"Chrome on Windows","d":"Chrome on Android","d":"Chrome on Mac OS X"}'
)


def _b64decode(segment: str) -> bytes | None:
    """The bytes of a base64url segment, or None unless encoding them gives back exactly `segment`."""
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        return None
    return raw if _b64encode(raw) == segment else None


def _b64encode(raw: bytes) -> str:
    # What base64.urlsafe_b64encode does, in half the time: this runs three times in every decode.
    return binascii.b2a_base64(raw, newline=False).translate(_URLSAFE).rstrip(b"=").decode("ascii")


def _token_parts(id_token: str) -> tuple[bytes, bytes, bytes] | None:
    segments = id_token.split(".")
    if len(segments) != 3:
        return None
    header, payload, signature = (_b64decode(s) for s in segments)
    if header is None or payload is None or signature is None or len(header) > 0xFFFF:
        return None
    return header, payload, signature


def encode(session: Session) -> bytes:
    """The version-1 record of `session` (every field but the id, generation and TTL, which live elsewhere)."""
    record: dict[str, Any] = {}
    for field in dataclasses.fields(session):
        if field.name in _TRANSIENT:
            continue
        short = _SHORT[field.name]  # a new Session field needs a key above: until then every encode raises
        value = getattr(session, field.name)
        if field.default is not dataclasses.MISSING and value == field.default:
            continue
        record[short] = value
    claims = record["c"]
    if claims.get("sub") == session.sub and next(iter(claims)) == "sub":
        record["c"] = {name: value for name, value in claims.items() if name != "sub"}
    else:
        record["c!"] = True  # the claims as they are: put back no `sub`
    parts = _token_parts(session.id_token)
    if parts is None:
        header, payload, signature = b"", b"", b""
    else:
        del record["i"]
        header, payload, signature = parts
    text = json.dumps(record, separators=(",", ":")).encode()
    deflate = zlib.compressobj(9, zlib.DEFLATED, _WINDOW_BITS, 9, zdict=_DICTIONARY)
    packed = deflate.compress(text + header + payload) + deflate.flush()
    return _VERSION_BYTE + _LENGTHS.pack(len(text), len(header)) + packed + signature


def readable(plain: bytes) -> bool:
    """Whether `decode` knows the form of `plain` (its first byte), so a newer one can be treated as absent."""
    return plain[:1] in (b"{", _VERSION_BYTE)


def decode(plain: bytes) -> dict[str, Any]:
    """The stored Session fields of a record, either version, as keyword arguments for `Session`.

    Raises ValueError for bytes that are neither (a record from a newer release, after a rollback).
    """
    if plain[:1] == b"{":  # written before version 1: the session's JSON, field names in full
        fields: dict[str, Any] = json.loads(plain)
    elif plain[:1] == _VERSION_BYTE:
        fields = _decode_v1(plain)
    else:
        raise ValueError(f"unknown session record version {plain[:1]!r}")
    if "carts" in fields:
        fields["carts"] = tuple(fields["carts"])
    return fields


def _decode_v1(plain: bytes) -> dict[str, Any]:
    text_length, header_length = _LENGTHS.unpack_from(plain, 1)
    inflate = zlib.decompressobj(_WINDOW_BITS, zdict=_DICTIONARY)
    body = inflate.decompress(plain[1 + _LENGTHS.size :])
    if not inflate.eof or len(body) < text_length + header_length:
        raise ValueError("truncated session record")
    record = json.loads(body[:text_length])
    fields = {_LONG[short]: value for short, value in record.items() if short != "c!"}
    if "c!" not in record:
        fields["claims"] = {"sub": fields["sub"], **fields["claims"]}
    if "id_token" not in fields:
        header = body[text_length : text_length + header_length]
        payload = body[text_length + header_length :]
        fields["id_token"] = f"{_b64encode(header)}.{_b64encode(payload)}.{_b64encode(inflate.unused_data)}"
    return fields
