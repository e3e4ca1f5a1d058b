"""JSON-RPC 2.0: request validation, error codes, method registry and dispatch.

Wire rules (https://www.jsonrpc.org/specification):

- a request is ``{"jsonrpc": "2.0", "method": str, "params"?: object | array, "id"?: str | int | null}``;
  without ``id`` it is a notification (no response); a batch is a non-empty array of requests;
- errors: -32700 parse error, -32600 invalid request, -32601 method not found, -32602 invalid
  params, -32603 internal error, -32001 ``STORE_CORRUPT`` (a stored block or its receipts cannot
  be read: the store is damaged, the node keeps serving what it can). A refused transaction
  answers with its stable ``InvalidTransaction`` code (``errors.ERROR_CODES``; the mempool adds 20 ``MEMPOOL_FULL`` and
  21 ``SENDER_QUOTA``) and ``data.name``; a full mempool also sets HTTP 429.

Each method declares its parameters as a msgspec struct: ``params`` by name (object) or by
position (array, in field order) are converted with ``msgspec.convert``, so wrong types are
answered with -32602 before the handler runs (a number too large to decode too: ``NumberOutOfRange``).
Bytes travel as lowercase hex strings.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from ..chain.mempool import MempoolFull
from ..codec import from_hex
from ..errors import CorruptStore, InvalidTransaction

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
STORE_CORRUPT = -32001  # implementation-defined server error (-32000 to -32099)


class RpcError(Exception):
    """An error answer; ``http_status`` is the status to use when it answers a single request."""

    def __init__(self, code: int, message: str, data: Any = None, http_status: int = 200) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data
        self.http_status = http_status

    def to_json(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            err["data"] = self.data
        return err

    @classmethod
    def from_invalid(cls, exc: InvalidTransaction) -> RpcError:
        status = 429 if isinstance(exc, MempoolFull) else 200
        return cls(exc.code, exc.message, {"name": exc.name}, status)


def invalid_params(message: str) -> RpcError:
    return RpcError(INVALID_PARAMS, f"invalid params: {message}")


@dataclass(frozen=True)
class Method:
    name: str
    params: type[msgspec.Struct]
    handler: Callable[[Any], Any]
    doc: str


class Registry:
    """Methods by name. Handlers take the converted params struct and return JSON-able data."""

    def __init__(self) -> None:
        self.methods: dict[str, Method] = {}

    def add(self, name: str, params: type[msgspec.Struct], handler: Callable[[Any], Any]) -> None:
        self.methods[name] = Method(name, params, handler, (handler.__doc__ or "").strip())

    def call(self, name: str, params: Any) -> Any:
        method = self.methods.get(name)
        if method is None:
            raise RpcError(METHOD_NOT_FOUND, f"method not found: {name}")
        fields = method.params.__struct_fields__
        if params is None:
            params = {}
        elif isinstance(params, list):
            if len(params) > len(fields):
                raise invalid_params(f"{name} takes at most {len(fields)} positional params")
            params = dict(zip(fields, params, strict=False))
        elif not isinstance(params, dict):
            raise RpcError(INVALID_REQUEST, "params must be an object or an array")
        try:
            args = msgspec.convert(params, method.params, strict=True)
        except msgspec.ValidationError as exc:
            raise invalid_params(str(exc)) from None
        return method.handler(args)


def response(req_id: Any, result: Any = None, error: RpcError | None = None) -> dict[str, Any]:
    if error is not None:
        return {"jsonrpc": "2.0", "id": req_id, "error": error.to_json()}
    return {"jsonrpc": "2.0", "id": req_id, "result": result}


def envelope_error(req: Any) -> dict[str, Any] | None:
    """The -32600 answer for a request that is not a JSON-RPC 2.0 request object (with an id
    that is a string, an integer or null, and a string method); None for one that is."""
    if not isinstance(req, dict):
        return response(None, error=RpcError(INVALID_REQUEST, "request must be an object"))
    req_id = req.get("id")
    if not (req_id is None or isinstance(req_id, str) or (isinstance(req_id, int) and not isinstance(req_id, bool))):
        return response(None, error=RpcError(INVALID_REQUEST, "id must be a string, an integer or null"))
    if req.get("jsonrpc") != "2.0" or not isinstance(req.get("method"), str):
        return response(req_id, error=RpcError(INVALID_REQUEST, 'need "jsonrpc": "2.0" and a string "method"'))
    return None


def handle_one(
    registry: Registry, req: Any, on_internal: Callable[[BaseException], None] | None = None
) -> tuple[dict[str, Any] | None, int]:
    """Answer one decoded request: (response or None for a notification, HTTP status)."""
    invalid = envelope_error(req)
    if invalid is not None:
        return invalid, 200
    req_id = req.get("id")
    try:
        result = registry.call(req["method"], req.get("params"))
    except RpcError as exc:
        answer, status = response(req_id, error=exc), exc.http_status
    except InvalidTransaction as exc:
        err = RpcError.from_invalid(exc)
        answer, status = response(req_id, error=err), err.http_status
    except CorruptStore as exc:  # damaged data, not a bug: say what cannot be read, log it
        if on_internal is not None:
            on_internal(exc)
        err = RpcError(STORE_CORRUPT, str(exc), {"name": "STORE_CORRUPT"}, 500)
        answer, status = response(req_id, error=err), err.http_status
    except Exception as exc:  # a bug in a handler: answer, log, keep serving
        if on_internal is not None:
            on_internal(exc)
        answer, status = response(req_id, error=RpcError(INTERNAL_ERROR, f"internal error: {type(exc).__name__}")), 500
    else:
        answer, status = response(req_id, result), 200
    if "id" not in req:
        return None, 204 if status == 200 else status
    return answer, status


def parse_hex(value: str, name: str, size: int | None = None) -> bytes:
    """Decode a hex parameter (optional ``0x`` prefix); -32602 on bad input."""
    try:
        data = from_hex(value)
    except ValueError:
        raise invalid_params(f"{name} is not hex") from None
    if size is not None and len(data) != size:
        raise invalid_params(f"{name} must be {size} bytes, got {len(data)}")
    return data


def jsonable(obj: Any) -> Any:
    """Plain JSON data: bytes become hex, structs become objects, tuples become arrays."""
    if isinstance(obj, bytes | bytearray | memoryview):
        return bytes(obj).hex()
    if isinstance(obj, dict):
        return {(k.hex() if isinstance(k, bytes) else str(k)): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, msgspec.Struct):
        return {f: jsonable(getattr(obj, f)) for f in obj.__struct_fields__}
    if hasattr(obj, "__dataclass_fields__"):
        return {f: jsonable(getattr(obj, f)) for f in obj.__dataclass_fields__}
    if hasattr(obj, "value") and hasattr(obj, "name") and type(obj).__module__ != "builtins":  # enums
        return obj.value
    return obj


class NumberOutOfRange:
    """A JSON number beyond what the decoder takes (an integer of thousands of digits, ``1e400``),
    kept in the decoded request as this marker (``decode_out_of_range``). The JSON around it is
    well formed, so the request is answered with its own id, as any request with a wrong value is:
    -32602 where the number is a param (no param type accepts the marker), -32600 where it is the
    id, rather than -32700 "parse error" with a null id for the whole body."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        shown = self.text if len(self.text) <= 24 else f"{self.text[:20]}... ({len(self.text)} characters)"
        return f"<number out of range: {shown}>"


def _int_or_marker(text: str) -> int | NumberOutOfRange:
    try:
        return int(text)
    except ValueError:  # over Python's digit limit for str -> int (sys.get_int_max_str_digits)
        return NumberOutOfRange(text)


def _float_or_marker(text: str) -> float | NumberOutOfRange:
    value = float(text)
    return NumberOutOfRange(text) if math.isinf(value) else value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN, Infinity: msgspec refuses them too


#: Bodies up to this size get the second decoding (``decode_out_of_range``); a larger one with a
#: number out of range stays a parse error: the stdlib decoder is ~25x slower than msgspec, and
#: it runs on the server's event loop.
OUT_OF_RANGE_MAX_BYTES = 64 * 1024


def _marker_as_null(obj: Any) -> None:
    if isinstance(obj, NumberOutOfRange):
        return None
    raise TypeError(type(obj).__name__)


def decode_out_of_range(data: str | bytes) -> Any:
    """Decode JSON that msgspec refused only for a number out of its range (a
    ``msgspec.ValidationError`` while decoding to any type), each such number a ``NumberOutOfRange``.
    Raises ``ValueError`` (or ``RecursionError``) for JSON that is not well formed after all,
    held to msgspec's rules beyond the number, since msgspec stopped at the first one: bytes
    must be strict UTF-8 (the stdlib decoder lets surrogates encoded in bytes through) and no
    string may hold a lone surrogate (``"\\ud800"``: nothing could encode the answer); and for a
    body over ``OUT_OF_RANGE_MAX_BYTES``."""
    if len(data) > OUT_OF_RANGE_MAX_BYTES:
        raise ValueError(f"a number out of range in a body over {OUT_OF_RANGE_MAX_BYTES} bytes")
    text = data.decode("utf-8") if isinstance(data, bytes) else data  # strict: UnicodeDecodeError
    decoded = json.loads(text, parse_int=_int_or_marker, parse_float=_float_or_marker, parse_constant=_no_constant)
    msgspec.json.encode(decoded, enc_hook=_marker_as_null)  # UnicodeEncodeError (a ValueError) on a lone surrogate
    return decoded
