"""The event contract compiled for the collector's hot path: msgspec types derived, once at
import, from the pydantic models of `platform_core.contract`, which stay the one definition
of the rules.

Why: checking an event with the pydantic models (build the model objects, then the
e-commerce properties' ones) costs more than everything else the collector does per event;
msgspec decodes and checks an event straight from its JSON in one pass in C.

What the compiled check promises, and all it promises, is one direction:

    an event it accepts is an event `contract.parse_message` accepts, and its JSON is JSON
    the collector's parser (orjson) accepts.

An event it refuses may still be valid: the compiled types are stricter in places (no lax
coercions such as "12.5" for a price or a Unix time for a timestamp, integers only within
orjson's 64-bit range, only the fields it names, see below). The caller then asks
`parse_message`, which gives the verdict and its reason. So the rules and the error messages
are the contract's; the compiled check only decides how fast the answer comes.
tests/core/test_contract_compiled.py holds it to that promise on generated events.

How it is derived (`_field_type`): each model field becomes a msgspec field of the same name:
str, int and float with their MinLen/MaxLen/Ge/Gt constraints, `X | None`, `dict[str, Any]`,
`list[Model]`, nested models, and the `text_from_int` coercion of ids (as `str | int`). The
message types share one Struct, `Event`, with every type's fields (a field two types share
has one type, or one type narrows it to not None) and `type` as a plain field: msgspec
decodes it in one pass, where a tagged union would first scan each event for its `type`
(which SDKs send after the context). `shape_valid` then applies what each type's model says:
its `type` literal, its required fields, no field only other types have, and the narrowed
fields not null. The message-level rule (`IDENTITY_FIELDS`) and the e-commerce property
schemas are applied by `messages_valid` (per message) or by `all_identified` and
`properties_valid` (a request's messages at once). Anything else in a
model (another validator, type or model setting) fails the import with CompileError: a rule
added to the contract cannot be skipped here silently; teach `_field_type` first.

Every byte of an accepted event is parsed: msgspec skips fields a type does not name without
checking them (a number that overflows a double, a key repeated so that another reader sees
another value), so messages are decoded with `forbid_unknown_fields`. The contract keeps
unknown fields (raw stores what arrived): the ones official SDKs send are declared here,
untyped (`SDK_FIELDS`); an event with any other unknown top-level field is left to
`parse_message`. Unknown fields inside `context` are fine: a context is checked on its own
(`context_canonical`), typed and then parsed whole, once per distinct value.

Three fields are shaped for the collector, which re-encodes the message it decoded instead of
building a dict: timestamps are kept as the text the client sent (checked by
`datetimes_valid`, so the published JSON keeps it), `context` as its raw JSON (checked and
made compact once per distinct value, `context_canonical`), and `receivedAt`/`writeKey`
only say whether the client sent them (the collector replaces the one and removes the other,
which the exact path does).
"""

from __future__ import annotations

import datetime as dt
import graphlib
import inspect
import operator
import types
import typing
from collections.abc import Callable, Iterable
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
import msgspec
from msgspec import UNSET, Meta, Raw, UnsetType
from pydantic import BaseModel, BeforeValidator
from pydantic.fields import FieldInfo

from platform_core import contract

# orjson reads integers up to 64 bits as int and larger ones as float (which the contract
# judges differently): the compiled check accepts only signed 64-bit ones (msgspec's bounds).
INT_MIN = -(2**63)
INT_MAX = 2**63 - 1

# Top-level fields official SDKs send that the contract does not name (kept, not checked):
# analytics.js and analytics-node `_metadata`, RudderStack's `channel`, Segment's `version`.
SDK_FIELDS = ("_metadata", "channel", "version", "options")

_MODEL_SETTINGS = {"extra": "allow", "populate_by_name": True}
_MESSAGE_RULES = {"_identified"}  # model validators of _Message, see `messages_valid`
_CONTEXT_CACHE_SIZE = 4096


class CompileError(TypeError):
    """The contract uses something the compiled check does not know how to apply."""


# --- compiling -----------------------------------------------------------------------------


def _constraints(metadata: Iterable[Any]) -> tuple[dict[str, Any], bool]:
    """(msgspec Meta keywords, whether `text_from_int` applies) from a field's metadata."""
    meta: dict[str, Any] = {}
    from_int = False
    for item in metadata:
        if isinstance(item, FieldInfo):
            inner, inner_from_int = _constraints(item.metadata)
            meta.update(inner)
            from_int = from_int or inner_from_int
        elif isinstance(item, annotated_types.MinLen):
            meta["min_length"] = item.min_length
        elif isinstance(item, annotated_types.MaxLen):
            meta["max_length"] = item.max_length
        elif isinstance(item, annotated_types.Ge):
            meta["ge"] = item.ge
        elif isinstance(item, annotated_types.Gt):
            meta["gt"] = item.gt
        elif isinstance(item, BeforeValidator) and item.func is contract.text_from_int:
            from_int = True
        else:
            raise CompileError(f"unknown constraint {item!r}")
    return meta, from_int


def _bounded_int(meta: dict[str, Any]) -> Any:
    lower = {} if "gt" in meta or "ge" in meta else {"ge": INT_MIN}
    return Annotated[int, Meta(**lower, **{"le": INT_MAX, **meta})]


def _field_type(annotation: Any, metadata: Iterable[Any] = (), *, text_times: bool) -> Any:
    """The msgspec type that accepts a subset of what pydantic accepts for this field."""
    meta, from_int = _constraints(metadata)
    origin = get_origin(annotation)
    if origin is Annotated:
        base, *extra = get_args(annotation)
        return _field_type(base, [*extra, *metadata], text_times=text_times)
    if meta or from_int:
        if annotation is str:
            text = Annotated[str, Meta(**meta)] if meta else str
            if not from_int:
                return text
            # str(any 64-bit int) has 1 to 20 characters: the length rule cannot refuse it
            if meta.get("min_length", 0) > 1 or meta.get("max_length", 20) < 20:
                raise CompileError(f"text_from_int with a length rule {meta} on ints")
            return Union[text, _bounded_int({})]  # noqa: UP007 - a runtime type expression
        if annotation is int:
            return _bounded_int(meta)
        if annotation is float:
            return Annotated[float, Meta(**meta)]
        raise CompileError(f"constraints {meta} on {annotation!r}")
    if origin in (Union, types.UnionType):
        members = tuple(_field_type(a, text_times=text_times) for a in get_args(annotation))
        return Union[members]  # noqa: UP007
    if annotation is type(None):
        return None
    if annotation is str or annotation is float:
        return annotation
    if annotation is int:
        return _bounded_int({})
    if annotation is dt.datetime:
        return str if text_times else dt.datetime
    if origin is dict and get_args(annotation) == (str, Any):
        return dict[str, Any]
    if origin is list:
        (item,) = get_args(annotation)
        return list[_field_type(item, text_times=text_times)]  # type: ignore[misc]
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return _struct(annotation)
    raise CompileError(f"unknown field type {annotation!r}")


def _check_model(model: type[BaseModel], validators: set[str]) -> None:
    decorators = model.__pydantic_decorators__
    found = set(decorators.model_validators)
    others = [
        decorators.validators,
        decorators.field_validators,
        decorators.root_validators,
        decorators.computed_fields,
    ]
    if found != validators or any(others):
        raise CompileError(f"{model.__name__} has validators the compiled check does not know")
    settings = {k: v for k, v in model.model_config.items() if k != "title"}
    if settings != _MODEL_SETTINGS:
        raise CompileError(f"{model.__name__} has model settings {settings}")


_STRUCTS: dict[type[BaseModel], type[msgspec.Struct]] = {}


def _struct(model: type[BaseModel]) -> type[msgspec.Struct]:
    """A nested model (context parts, e-commerce properties) as a check-only Struct: unknown
    fields pass, because the values around it are parsed whole anyway."""
    if model not in _STRUCTS:
        _check_model(model, set())
        fields = []
        for name, info in model.model_fields.items():
            kind = _field_type(info.annotation, info.metadata, text_times=False)
            fields.append((name, kind) if info.is_required() else (name, kind | UnsetType, UNSET))
        _STRUCTS[model] = msgspec.defstruct(
            f"Compiled{model.__name__}", fields, kw_only=True, gc=False
        )
    return _STRUCTS[model]


def _message_fields(model: type[contract._Message]) -> tuple[str, dict[str, tuple[Any, bool]]]:
    """A message type's `type` literal, and its other fields: name -> (msgspec type, required),
    shaped for the collector (see the docstring)."""
    _check_model(model, _MESSAGE_RULES)
    tag = get_args(model.model_fields["type"].annotation)
    if get_origin(model.model_fields["type"].annotation) is not Literal or len(tag) != 1:
        raise CompileError(f"{model.__name__}.type is not one literal")
    fields: dict[str, tuple[Any, bool]] = {}
    for name, info in model.model_fields.items():
        if name == "type":
            continue
        if name in ("context", "receivedAt"):
            kind: Any = Raw  # checked apart / replaced by the collector
        else:
            kind = _field_type(info.annotation, info.metadata, text_times=True)
        fields[name] = (kind, info.is_required())
    return tag[0], fields


def _field_order(orders: Iterable[list[str]]) -> list[str]:
    """One order of the fields in which every message type's fields come in its own order
    (so an event encodes with its keys as its type declares them)."""
    graph: dict[str, set[str]] = {}
    for order in orders:
        for before, name in zip([None, *order], order, strict=False):
            graph.setdefault(name, set()).update([] if before is None else [before])
    merged = list(graphlib.TopologicalSorter(graph).static_order())
    for order in orders:
        if [name for name in merged if name in order] != order:
            raise CompileError(f"no one field order for the message types ({order})")
    return merged


def _common_type(name: str, kinds: list[Any]) -> tuple[Any, Any]:
    """(the superset's type of a field several message types share, the narrower one if a
    type narrows it to not None, else None)."""
    wide = kinds[0]
    narrow = None
    for kind in kinds[1:]:
        if kind == wide:
            continue
        if get_args(kind) == (wide, type(None)) and narrow in (None, wide):
            wide, narrow = kind, wide
        elif get_args(wide) == (kind, type(None)) and narrow in (None, kind):
            narrow = kind
        else:
            raise CompileError(f"{name} has types {kind!r} and {wide!r} in two message types")
    return wide, narrow


def _shape_conditions(tag: str, absent: list[str], required: list[str], not_null: list[str]) -> str:
    """Message type `tag`'s shape as a Python expression on a decoded Event `m`: none of the
    fields only other types have, its required fields present, and not null where it
    narrows a shared field to not None."""
    return " and ".join(
        [f"m.type == {tag!r}"]
        + [f"m.{name} is UNSET" for name in absent]
        + [f"m.{name} is not UNSET" for name in required]
        + [f"m.{name} is not None" for name in not_null]
    )


def _shape_function(shapes: dict[str, str]) -> Callable[[Any], bool]:
    """One function that checks an Event's shape for whichever type it names, written out
    (as dataclasses writes its methods): the collector calls it for every event, and plain
    attribute tests in one function cost a fraction of generic getattr calls."""
    source = "def shape_valid(m):\n" + "".join(
        f"    if {condition}:\n        return True\n" for condition in shapes.values()
    )
    source += "    return False\n"
    namespace: dict[str, Any] = {"UNSET": UNSET}
    exec(source, namespace)  # noqa: S102 - written from the contract's field names
    function: Callable[[Any], bool] = namespace["shape_valid"]
    function.__doc__ = f"Whether a decoded Event is one of the contract's messages:\n\n{source}"
    return function


def _event_type(
    messages: dict[str, dict[str, tuple[Any, bool]]],
) -> tuple[type[msgspec.Struct], dict[str, str]]:
    """The superset of the message types (see `Event`) and, per `type`, its shape (see
    `_shape_conditions`)."""
    order = _field_order([list(fields) for fields in messages.values()])
    # `type` one of the types' literals: decoded as the literal's own str, whose hash is known
    struct_fields: list[tuple[Any, ...]] = [("type", Literal[tuple(messages)])]
    narrowed: dict[str, Any] = {}
    for name in order:
        kinds = [fields[name][0] for fields in messages.values() if name in fields]
        wide, narrowed[name] = _common_type(name, kinds)
        struct_fields.append((name, wide | UnsetType, UNSET))
    struct_fields.append(("writeKey", Raw | UnsetType, UNSET))
    for name in SDK_FIELDS:
        struct_fields.append((name.strip("_"), Any, msgspec.field(default=UNSET, name=name)))
    event = msgspec.defstruct(
        "CompiledEvent", struct_fields, kw_only=True, forbid_unknown_fields=True, gc=False
    )
    shapes = {
        tag: _shape_conditions(
            tag,
            absent=[name for name in order if name not in fields],
            required=[name for name, (_, required) in fields.items() if required],
            not_null=[
                name
                for name, (kind, _) in fields.items()
                if narrowed[name] is not None and kind == narrowed[name]
            ],
        )
        for tag, fields in messages.items()
    }
    return event, shapes


MESSAGE_MODELS = typing.get_args(typing.get_args(contract.Message)[0])
# Event: every message type in one Struct, decoded in one pass. A tagged union of one Struct
# per type would do, but msgspec then scans each event for its `type` before decoding it,
# and SDKs send `type` after the context, so most of an event would be read twice. An Event
# is no message type until `shape_valid` says which it is.
Event, SHAPES = _event_type(dict(map(_message_fields, MESSAGE_MODELS)))
shape_valid = _shape_function(SHAPES)


TIME_FIELDS = tuple(
    name
    for name, info in contract._Message.model_fields.items()
    if dt.datetime in get_args(info.annotation) and name != "receivedAt"
)

_convert = msgspec.convert
_identity = operator.attrgetter(*contract.IDENTITY_FIELDS)
_CONTEXT = msgspec.json.Decoder(_struct(contract.Context))
_ANY = msgspec.json.Decoder()
_ENCODE = msgspec.json.Encoder().encode
_ECOMMERCE = {name: _struct(model) for name, model in contract.ECOMMERCE_EVENTS.items()}
ECOMMERCE_SCHEMAS: dict[str, type[msgspec.Struct]] = _ECOMMERCE  # per track event name
_SCHEMA_LISTS = {schema: list[schema] for schema in _ECOMMERCE.values()}  # type: ignore[valid-type]
_TIMES = list[dt.datetime]
_contexts: dict[bytes, Raw] = {}


# --- checking ------------------------------------------------------------------------------


def context_canonical(raw: bytes) -> Raw | None:
    """A context (its JSON) as the collector publishes it, or None when the contract may
    refuse it. Checked typed and parsed whole, then written back compact (a key repeated in
    the client's JSON appears once, with the value the check saw). Remembered per distinct
    value: the events of a device share one."""
    found = _contexts.get(raw)
    if found is not None:
        return found
    try:
        _CONTEXT.decode(raw)
        canonical = Raw(_ENCODE(_ANY.decode(raw)))
    except (msgspec.DecodeError, RecursionError):
        return None
    if len(_contexts) >= _CONTEXT_CACHE_SIZE:
        _contexts.clear()
    _contexts[raw] = canonical
    return canonical


def datetimes_valid(texts: list[str]) -> bool:
    """Whether every text is a timestamp the contract accepts (RFC 3339; the contract also
    takes other forms, which the exact path judges)."""
    if not texts:
        return True
    try:
        msgspec.convert(texts, _TIMES)
    except msgspec.ValidationError:
        return False
    return True


def all_identified(messages: list[Any]) -> bool:
    """Whether every message names someone (`IDENTITY_FIELDS`, the `_identified` validator):
    one pass in C over a request's messages; `messages_valid` says which do not."""
    return all(map(any, map(_identity, messages)))


def properties_valid(schema: type[msgspec.Struct], properties: list[dict[str, Any]]) -> bool:
    """Whether every track's properties satisfy `schema` (a value of `ECOMMERCE_SCHEMAS`; a
    track without properties is checked as `{}`): one call for a request's tracks of that
    schema; `messages_valid` says which do not."""
    try:
        _convert(properties, _SCHEMA_LISTS[schema])
    except msgspec.ValidationError:
        return False
    return True


def messages_valid(messages: list[Any]) -> list[bool]:
    """The contract's rules on decoded messages that their types do not carry, per message:
    it names someone (`IDENTITY_FIELDS`, the `_identified` validator), and a track's
    properties satisfy its e-commerce event's schema. (One call for a request's messages:
    this runs per event.)"""
    verdicts = []
    for message in messages:
        if not any(_identity(message)):
            verdicts.append(False)
            continue
        schema = _ECOMMERCE.get(message.event) if message.type == "track" else None
        if schema is None:
            verdicts.append(True)
            continue
        properties = message.properties
        try:
            _convert({} if properties is UNSET else properties, schema)
        except msgspec.ValidationError:
            verdicts.append(False)
            continue
        verdicts.append(True)
    return verdicts
